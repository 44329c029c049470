"""continuation"""

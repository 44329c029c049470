"""Engagement trends (DIGMN, WSDM 2023): trend labels, period-1 inputs, session intents, seven
models for two tasks, and their report.
"""

"""Session continuation (Zooniverse): at each feed request, will the session go on for 10, 20, 30
more minutes? Requests and examples, nine models, their report.
"""

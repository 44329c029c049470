"""Features of the observation window: sessions, static and KPI features. Wiring: :mod:`.sessions`,
:mod:`.user_features`; SQL: :mod:`.sql`.
"""

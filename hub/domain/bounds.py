"""Bounds on values that come from the wire or the API: one definition for the hub, the API and the store."""

MAX_ID_LEN = 64  # characters in any id (station, vehicle, session, request); transport/serversession.py holds the same
MAX_EPOCH = 2**40  # seconds; a time beyond this (year ~36800) is a broken clock
INT64_LIMIT = 2**63  # ids and times must fit a signed 64-bit column (SQLite INTEGER, PostgreSQL bigint)
MAX_RESERVATION_ID = INT64_LIMIT  # reservation ids are the store's integer keys
MAX_ENERGY_WH = 10**9  # 1 GWh: anything above is a broken meter, not a session

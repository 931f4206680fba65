"""The hub's durable state: one access layer, one schema.

api.py       StoreAPI: the interface actors, readers, the OCPP ledger and the CLI use
store.py     Store: the connection, migrations, stations, keys, vehicles, on SQLite or PostgreSQL
rows_reservations.py  Store's reservation rows (batch insert, states, moves, idempotency lookups)
rows_sessions.py      Store's charging-session rows (start, end, history, open sessions)
errors.py    StoreError, StoreConflict
backend.py   which engine a --db value names, the dialect layer, DB_ERRORS, password masking
migrations.py numbered schema migrations, the same numbers on both engines
ops.py       operators' writes: display names, protocols, `stations update`, last positions
requests.py  the RESERVE idempotency key
ledger.py    the OCPP central system's transactions and idTags
keys.py      who may connect: key and token lookups for the I/O loop
reads.py     history reads for the HTTP API, in a small thread pool
backup.py    `evhub db backup`: SQLite's online backup
lock.py      one hub per embedded store: the lock beside the SQLite file (not for PostgreSQL)
"""

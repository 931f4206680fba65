"""The hub's durable state: one access layer, one schema.

store.py     Store: stations, keys, vehicles, reservations, sessions (the only writer)
authz.py     schema additions for authorisation and accounts
ops.py       schema additions for operators (display names, last positions)
requests.py  the RESERVE idempotency key
keys.py      who may connect: key and token lookups for the I/O loop
reads.py     history reads for the HTTP API, in a small thread pool
lock.py      one hub per embedded store: the lock beside the SQLite file
"""

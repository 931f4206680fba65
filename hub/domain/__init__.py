"""The hub's rules, pure: no actor, no thread, no socket. Each module has unit tests of its own.
mypy checks this package with its strict flags (pyproject.toml).

booking.py       ReservationBook: windows, conflicts, alternatives, no-shows, per-vehicle limits
                 + booking_changes.py (cancel, move, expire, sessions, other hubs' changes)
                 + booking_batch.py (a batch of RESERVEs decided in order, one COMMIT, refusals retried)
                 + booking_types.py (reservations, results, events, limits, BookingError)
stations.py      Stations: display status, session rules, request correlation (the registry's core)
station_sync.py  which reservations a station should hold, and what to do with its answer
locator.py       nearest charge points: lat/lon grids searched outward
geo.py           WGS-84 positions: validation and great-circle distance
capacity.py      what a station may offer when its provisioning and its BOOT disagree
authz.py         who may start a charge where, and whom it is billed to
boardfloats.py   floats from a board read the same in single or double precision
ports.py         what booking and authz need from the store, as Protocols (BookStore, AuthzStore)
"""

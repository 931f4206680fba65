"""The hub's actors: thin Pykka shells, one thread each, around the pure rules of hub/domain.

book.py      ReservationBookActor: reservations and their group-committed store writes
registry.py  StationRegistry: live stations, their links, BOOT and STATUS, other hubs' stations
             + registry_sessions.py (session records) + registry_requests.py (requests to stations)
locator.py   LocatorActor: the spatial index, published as a frozen snapshot for readers
tracker.py   VehicleTracker: the last known position (and charge) of every vehicle

Each fact has one owner. Actors talk only with the typed messages of hub/messages.py and never
wait on one another (`tell`, not `ask`): replies leave through the gateway's Outbox.
"""

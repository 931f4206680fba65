"""The hub's I/O room: bytes in and out, and the limits that keep one peer from hurting the rest.

gateway.py      one asyncio loop owns every socket and serial line; the Outbox the actors write to
link.py         one authenticated link (TCP or serial): handshake, sealed frames, validation
limits.py       named per-peer limits (rates, sizes, counts)
framelimits.py  how large a frame a peer may send, per kind
fdlimits.py     file descriptors: the start-up raise and the share unauthenticated links may hold
peerclash.py    two devices with one id: which link wins
logsafe.py      wire text made safe to log
revocation.py   keys replaced or removed with the CLI stop working on the running hub

Nothing here decides a booking or a station's state: a validated message goes to hub/router.py.
"""

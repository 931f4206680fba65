"""The reservations a station holds: booked by RESERVE_NOW, possibly for a future window.

A reservation shows Reserved on a connector from ``start - hold_before_s`` until
its vehicle starts a session, it is cancelled, or it expires at
``start + grace_s`` with no session. ``connector == 0`` means "any": the station
picks a free connector when the hold begins. The table is bounded.
"""

import sys

from transport.errors import E_BAD_FIELD, E_CONFLICT, E_OVERLOADED

from firmware.connector import Refused
from transport.kinds import MAX_RESERVATIONS  # the hub sends no more open windows than this


class Reservation:
    def __init__(self, rid, connector, vehicle, start, end):
        self.id = rid
        self.connector = connector  # as booked; 0 = any
        self.vehicle = vehicle
        self.start = start
        self.end = end
        self.assigned = 0  # connector currently showing Reserved for it

    if sys.implementation.name != "micropython":  # logs and debugging on CPython

        def __repr__(self):
            return "Reservation(%d, c%d, %s, %d..%d)" % (self.id, self.connector, self.vehicle, self.start, self.end)


class Reservations:
    def __init__(self, limit=MAX_RESERVATIONS):
        self.limit = limit
        self.items = []

    def __len__(self):
        return len(self.items)

    def get(self, rid):
        for r in self.items:
            if r.id == rid:
                return r
        return None

    def add(self, rid, connector, vehicle, start, end, connectors, now, grace_s):
        """Book (or re-book, same id) a reservation; returns (reservation, the one it replaced or None)."""
        if connector < 0 or connector > connectors:
            raise Refused(E_BAD_FIELD, "connector must be 0..%d" % connectors)
        if end <= start:
            raise Refused(E_BAD_FIELD, "reservation end must be after its start")
        if now > start + grace_s or now > end:
            raise Refused(E_BAD_FIELD, "reservation window already over")
        old = self.get(rid)
        if (
            old is not None
            and old.connector == connector
            and old.vehicle == vehicle
            and old.start == start
            and old.end == end
        ):
            return old, None  # the hub repeats its windows after every reconnect: nothing changes
        if connector:
            for r in self.items:
                if r is not old and r.connector == connector and r.start < end and start < r.end:
                    raise Refused(
                        E_CONFLICT,
                        "connector %d is reserved %d..%d (reservation %d)" % (connector, r.start, r.end, r.id),
                    )
        if old is None and len(self.items) >= self.limit:
            raise Refused(E_OVERLOADED, "reservation table full (%d)" % self.limit)
        if old is not None:
            self.items.remove(old)
        r = Reservation(rid, connector, vehicle, start, end)
        self.items.append(r)
        return r, old

    def remove(self, r):
        if r in self.items:
            self.items.remove(r)

    def expired(self, now, grace_s):
        """Reservations whose vehicle never came (start + grace passed); removed from the table."""
        out = None
        for r in self.items:
            if now > r.start + grace_s or now > r.end:
                if out is None:
                    out = []
                out.append(r)
        if out:
            for r in out:
                self.items.remove(r)
        return out

    def due(self, now, hold_before_s):
        """Reservations whose hold period has begun, earliest start first (new list)."""
        out = [r for r in self.items if r.start - hold_before_s <= now]
        out.sort(key=_start)
        return out

    def for_vehicle(self, vehicle, connector, now, hold_before_s):
        """A reservation of `vehicle` usable on `connector` now (hold begun), or None."""
        best = None
        for r in self.items:
            if r.vehicle != vehicle or r.start - hold_before_s > now:
                continue
            if r.assigned == connector or (r.assigned == 0 and r.connector in (0, connector)):
                if best is None or r.start < best.start:
                    best = r
        return best


def _start(r):
    return r.start

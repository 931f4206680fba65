"""ReservationBook: who holds which charge point when. Pure logic over memory plus the Store.

A reservation holds one connector of a station for [start, end) (UTC epoch seconds,
half-open, so back-to-back windows do not collide). A window conflicts when, at some
instant inside it, the confirmed reservations and the running sessions at that
station would need more connectors than the station has.

Fast at 100k reservations: each station keeps its confirmed windows sorted by start
(parallel lists, bisect). Because no window is longer than `max_len` (24 h), only
windows starting in (s - max_len, e) can overlap [s, e), so a check costs
O(log n + windows nearby), never a scan of the book.

Durability and double booking: the book is owned by one thread (the actor). A
request is decided against memory, which already holds every earlier decision
(including earlier ones in the same batch), then the batch is written in one store
transaction, and only then are results returned for sending. If the write fails,
the batch is undone in memory and its requests are refused with E_INTERNAL.

Changes other parts must hear about (to tell the station: RESERVE_NOW / cancel)
are queued as events: ("reserved", Reservation) and ("ended", Reservation, why)
with why in fulfilled/cancelled/expired. The owner drains them with take_events().
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import math
from typing import Optional

from hub.domain.booking_types import (  # re-exported: callers import the book's names from here
    MAX_DURATION_S as MAX_DURATION_S,
    MAX_AHEAD_S as MAX_AHEAD_S,
    PAST_SLACK_S as PAST_SLACK_S,
    DEFAULT_GRACE_S as DEFAULT_GRACE_S,
    DEFAULT_SESSION_S as DEFAULT_SESSION_S,
    EARLY_ARRIVAL_S as EARLY_ARRIVAL_S,
    MAX_NEARBY_ALTERNATIVES as MAX_NEARBY_ALTERNATIVES,
    MAX_NEIGHBOURS_TRIED as MAX_NEIGHBOURS_TRIED,
    MAX_WINDOW_CANDIDATES as MAX_WINDOW_CANDIDATES,
    DEFAULT_MAX_OPEN_PER_VEHICLE as DEFAULT_MAX_OPEN_PER_VEHICLE,
    STORE_RETRIES as STORE_RETRIES,
    OVERRUN_HOLD_S as OVERRUN_HOLD_S,
    Reservation as Reservation,
    Alternative as Alternative,
    ReserveResult as ReserveResult,
    _Session as _Session,
    Event as Event,
    Nearby as Nearby,
    _Item as _Item,
    _Busy as _Busy,
    BookingError as BookingError,
    Outcome as Outcome,
    _Station as _Station,
    _Held as _Held,
)
from hub.domain.booking_batch import BookBatches
from hub.domain.booking_changes import BookChanges
from hub.domain.ports import BookStore
from hub.store.backend import DB_ERRORS
from hub.timefmt import Window
from transport.errors import E_BAD_FIELD, E_NOT_FOUND

log = logging.getLogger(__name__)


class ReservationBook(BookBatches, BookChanges):
    def __init__(
        self,
        store: BookStore,
        nearby: Optional[Nearby] = None,
        grace_s: float = DEFAULT_GRACE_S,
        session_estimate_s: float = DEFAULT_SESSION_S,
        max_open_per_vehicle: Optional[int] = DEFAULT_MAX_OPEN_PER_VEHICLE,
    ) -> None:
        self._store = store
        self._nearby = nearby  # station_id -> iterable of (distance_km, station_id), nearest first
        self.max_open_per_vehicle = max_open_per_vehicle  # None: no cap
        self.grace_s = grace_s
        self.session_estimate_s = session_estimate_s
        self._reset()

    def _reset(self) -> None:
        self._stations: dict[str, _Station] = {}
        self._by_id: dict[int, Reservation] = {}  # confirmed reservations only
        self._by_vehicle: dict[str, set[int]] = {}  # vehicle_id -> set of confirmed reservation ids
        self._starts_heap: list[tuple[int, int]] = []  # (start, id): windows that have begun, for no-show expiry
        self._begun: dict[int, Reservation] = {}  # id -> Reservation whose window has begun, not yet closed
        self._events: list[Event] = []

    # --- setup ------------------------------------------------------------------------

    def set_nearby(self, nearby: Optional[Nearby]) -> None:
        self._nearby = nearby

    def load(self, store: Optional[BookStore] = None) -> None:
        """Rebuild memory from the store (startup): stations, confirmed reservations, open sessions."""
        if store is not None:
            self._store = store
        self._reset()
        for row in self._store.all_stations():
            self._stations[row["id"]] = _Station(row["id"], row["connectors"])
        for row in self._store.load_open_reservations():
            st = self._stations.get(row["station_id"])
            if st is not None:
                self._hold(st, Reservation(*(row[f] for f in Reservation._fields)))
        for row in self._store.load_open_sessions():
            st = self._stations.get(row["station_id"])
            if st is not None:
                started = row["started"] or 0
                st.sessions[row["connector"]] = _Session(
                    row["session_id"],
                    row["vehicle_id"],
                    row["reservation_id"],
                    started,
                    started + self.session_estimate_s,
                )
        log.info(
            "book: %d stations, %d confirmed reservations, %d open sessions loaded",
            len(self._stations),
            len(self._by_id),
            sum(len(s.sessions) for s in self._stations.values()),
        )

    def set_station(self, station_id: str, connectors: int) -> None:
        """Learn or update a station's capacity (a station provisioned or rebooted while running)."""
        st = self._stations.get(station_id)
        if st is None:
            self._stations[station_id] = _Station(station_id, connectors)
        elif st.connectors != connectors:
            log.info("station %s: capacity %d -> %d connectors", station_id, st.connectors, connectors)
            st.connectors = connectors
            self._rehome(st)

    def _rehome(self, st: _Station) -> None:
        """Confirmed reservations on connectors the station no longer has move to a free one; one
        with no free connector stays confirmed (never silently dropped) and is logged as an ERROR."""
        moves = []
        for i, (s, e, rid, conn) in enumerate(st.items):
            if rid <= 0 or conn <= st.connectors:
                continue
            used = {it[3] for it in st.items if it[2] != rid and it[0] < e and it[1] > s}
            n_overlap = sum(1 for it in st.items if it[2] != rid and it[0] < e and it[1] > s)
            free = (
                None
                if n_overlap >= st.connectors
                else next((c for c in range(1, st.connectors + 1) if c not in used), None)
            )
            if free is None:
                log.error(
                    "station %s: reservation %d (connector %d, %s) has no connector left after the station"
                    " reported %d; it stays confirmed: cancel or move it by hand",
                    st.id,
                    rid,
                    conn,
                    Window(s, e),
                    st.connectors,
                )
                continue
            st.items[i] = (s, e, rid, free)
            r = self._by_id.get(rid)
            if r is not None:
                self._by_id[rid] = r._replace(connector=free)
                self._events.append(("reserved", self._by_id[rid]))  # the station is sent the new connector
            moves.append((rid, free))
            log.warning("station %s: reservation %d moved from connector %d to %d", st.id, rid, conn, free)
        if moves and self._store is not None:
            try:
                self._store.move_reservations(moves)
            except DB_ERRORS as exc:
                log.error("station %s: could not store %d moved reservations: %s", st.id, len(moves), exc)

    def _station(self, station_id: str) -> Optional[_Station]:
        st = self._stations.get(station_id)
        if st is None and self._store is not None and type(station_id) is str:
            # Provisioned by the CLI while the hub runs: the store knows it, memory not yet.
            row = self._store.get_station(station_id)
            if row is not None:
                st = _Station(station_id, row["connectors"])
                self._stations[station_id] = st
        return st

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # --- the interval lists ------------------------------------------------------------

    def _hold(self, st: _Station, r: Reservation) -> None:
        i = bisect.bisect_right(st.starts, r.start)
        st.starts.insert(i, r.start)
        st.items.insert(i, (r.start, r.end, r.id, r.connector))
        if r.end - r.start > st.max_len:
            st.max_len = r.end - r.start
        if r.id > 0:
            self._by_id[r.id] = r
            self._by_vehicle.setdefault(r.vehicle_id, set()).add(r.id)
            heapq.heappush(self._starts_heap, (r.start, r.id))

    def _release(self, st: _Station, start: int, rid: int) -> None:
        for i in range(bisect.bisect_left(st.starts, start), bisect.bisect_right(st.starts, start)):
            if st.items[i][2] == rid:
                del st.starts[i], st.items[i]
                return

    def _close(self, r: Reservation, why: str) -> Reservation:
        """Drop a confirmed reservation from memory (already persisted as `why`)."""
        st = self._stations.get(r.station_id)
        if st is not None:
            self._release(st, r.start, r.id)
        self._by_id.pop(r.id, None)
        self._begun.pop(r.id, None)
        ids = self._by_vehicle.get(r.vehicle_id, set())
        ids.discard(r.id)
        if not ids:
            self._by_vehicle.pop(r.vehicle_id, None)
        ended = r._replace(state=why)
        self._events.append(("ended", ended, why))
        return ended

    def _fit(self, st: _Station, s: float, e: float, now: float) -> Optional[int]:
        """A connector for [s, e) at st (0 = any: room by count, no single one free throughout),
        or None on conflict."""
        lo = bisect.bisect_right(st.starts, s - st.max_len)
        hi = bisect.bisect_left(st.starts, e)
        # (start, end, id, connector) overlapping [s, e); the sessions' (started, until, None, connector) join
        busy: list[_Busy] = [it for it in st.items[lo:hi] if it[1] > s]
        for conn, sess in st.sessions.items():
            # A session past its expected end still holds the connector until it ends.
            end = max(sess.expected_end, now + OVERRUN_HOLD_S)
            if sess.started < e and end > s:
                busy.append((sess.started, end, None, conn))
        cap = st.connectors
        if len(busy) >= cap:  # enough overlaps to matter: sweep for the busiest instant
            spans = _connector_spans(busy, s, e)
            # At equal times -1 sorts first: an end frees a connector before a start takes it.
            events = sorted([(a, 1) for a, _b in spans] + [(b, -1) for _a, b in spans])
            level = peak = 0
            for _t, d in events:
                level += d
                peak = max(peak, level)
            if peak >= cap:
                return None
        used = {it[3] for it in busy}
        return next((c for c in range(1, cap + 1) if c not in used), 0)

    def _next_free(self, st: _Station, t0: float, length: float, now: float) -> Optional[float]:
        """Earliest t >= t0 with [t, t+length) free at st, or None within the search bounds.
        Only t0 and the ends of busy intervals can be the earliest feasible start."""
        lo = bisect.bisect_right(st.starts, t0 - st.max_len)
        hi = min(bisect.bisect_left(st.starts, t0 + MAX_AHEAD_S), lo + MAX_WINDOW_CANDIDATES)
        cands: set[float] = {it[1] for it in st.items[lo:hi] if it[1] > t0}
        # whole seconds: the clock is a float, and an alternative's start goes on the wire as an integer
        cands.update(math.ceil(max(sess.expected_end, now + OVERRUN_HOLD_S)) for sess in st.sessions.values())
        for t in [t0] + sorted(cands):
            if self._fit(st, t, t + length, now) is not None:
                return t
        return None

    # --- queries -------------------------------------------------------------------------

    def is_free(self, station_id: str, start: float, end: float, now: float) -> bool:
        st = self._station(station_id)
        return st is not None and self._fit(st, start, end, now) is not None

    def list_for(self, vehicle_id: str) -> list[Reservation]:
        """The vehicle's confirmed reservations, earliest first."""
        ids = self._by_vehicle.get(vehicle_id, ())
        return sorted((self._by_id[i] for i in ids), key=lambda r: (r.start, r.id))

    def open_reservations(self) -> list[Reservation]:
        """Every confirmed reservation, earliest first."""
        return sorted(self._by_id.values(), key=lambda r: (r.start, r.id))

    def get(self, reservation_id: int) -> Optional[Reservation]:
        return self._by_id.get(reservation_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def next_change(self, station_id: str, now: float) -> tuple[Optional[float], Optional[int]]:
        """(busy_until, next_reservation_start) for "Free in X min": busy_until is None while a
        connector is free, else the earliest time one frees up; next start is after now, or None."""
        st = self._station(station_id)
        if st is None:
            return (None, None)
        busy_until = None
        if self._fit(st, now, now + 1, now) is None:
            busy_until = self._next_free(st, now, 1, now)
            if busy_until is None:
                busy_until = now + MAX_AHEAD_S
        i = bisect.bisect_right(st.starts, now)
        return (busy_until, st.starts[i] if i < len(st.starts) else None)

    # --- reserve -----------------------------------------------------------------------

    def _validate(self, vehicle_id: str, station_id: str, start: int, end: int, now: float) -> _Station:
        if type(vehicle_id) is not str or not vehicle_id:
            raise BookingError(E_BAD_FIELD, "vehicle id must be a non-empty string")
        if type(start) is not int or type(end) is not int:
            raise BookingError(E_BAD_FIELD, "start and end must be integer UTC epoch seconds")
        st = self._station(station_id)
        if st is None:
            raise BookingError(E_NOT_FOUND, "station %s is not known" % (station_id,))
        for bad, text in (
            (end <= start, "end must be after start"),
            (start < now - PAST_SLACK_S, "start is %d s in the past" % (now - start)),
            (end - start > MAX_DURATION_S, "a reservation lasts at most %d h" % (MAX_DURATION_S // 3600)),
            (start > now + MAX_AHEAD_S, "start must be within %d days" % (MAX_AHEAD_S // 86400)),
        ):
            if bad:
                raise BookingError(E_BAD_FIELD, text)
        return st

    def alternatives(self, st: _Station, start: int, end: int, now: float) -> list[Alternative]:
        """The next free window of the same length here, then up to 3 nearby stations free in
        [start, end); each {"station_id", "start", "end", "distance_km"}."""
        out: list[Alternative] = []
        length = end - start
        t = self._next_free(st, start, length, now)
        if t is not None and t <= now + MAX_AHEAD_S:
            out.append({"station_id": st.id, "start": t, "end": t + length, "distance_km": 0.0})
        if self._nearby is None:
            return out
        wanted = len(out) + MAX_NEARBY_ALTERNATIVES
        try:
            neighbours = ((km, sid) for km, sid in self._nearby(st.id) if sid != st.id)
            for km, sid in itertools.islice(neighbours, MAX_NEIGHBOURS_TRIED):
                other = self._station(sid)
                if other is not None and self._fit(other, start, end, now) is not None:
                    out.append({"station_id": sid, "start": start, "end": end, "distance_km": round(km, 3)})
                    if len(out) >= wanted:
                        break
        except Exception:  # a broken neighbour source must not lose the reply
            log.exception("station %s: nearby stations lookup failed", st.id)
        return out

    def reserve(self, vehicle_id: str, station_id: str, start: int, end: int, now: float) -> ReserveResult:
        """One request; returns ReserveResult, raises BookingError if it is refused outright."""
        result = self.reserve_many([(vehicle_id, station_id, start, end)], now)[0]
        if isinstance(result, BookingError):
            raise result
        return result


def _connector_spans(busy: list[_Busy], s: float, e: float) -> list[tuple[float, float]]:
    """The busy items clipped to [s, e), those of one connector merged: a session running past its
    expected end overlaps the next reservation of its own connector (and `move` blocks a refused
    connector over the window), and one connector busy twice at an instant is still one connector.
    Items for connector 0 ("any") each count on their own."""
    spans: list[tuple[float, float]] = []
    per_connector: dict[int, list[tuple[float, float]]] = {}
    for it in busy:
        span = (max(it[0], s), min(it[1], e))
        if it[3]:
            per_connector.setdefault(it[3], []).append(span)
        else:
            spans.append(span)
    for items in per_connector.values():
        items.sort()
        a, b = items[0]
        for a2, b2 in items[1:]:
            if a2 <= b:
                b = max(b, b2)
            else:
                spans.append((a, b))
                a, b = a2, b2
        spans.append((a, b))
    return spans

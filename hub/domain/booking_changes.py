"""What happens to a reservation after it is booked: cancelled, moved, expired, fulfilled by a session,
dropped with its vehicle or station, or changed by another hub (adopt, resync).

Mixed into ReservationBook (hub/domain/booking.py), which holds the windows and decides new bookings.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING, Optional

from hub.domain.booking_types import (
    EARLY_ARRIVAL_S,
    BookingError,
    Event,
    Nearby,
    Reservation,
    _Session,
    _Station,
)
from hub.domain.bounds import MAX_RESERVATION_ID
from hub.domain.ports import BookStore, Row
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_INVALID_STATE, E_NOT_FOUND

log = logging.getLogger("hub.domain.booking")  # one logger for the book's both halves


class BookChanges:
    """Mixed into ReservationBook: the changes to booked reservations, and sessions."""

    if TYPE_CHECKING:  # what ReservationBook provides
        _store: BookStore
        _nearby: Optional[Nearby]
        grace_s: float
        session_estimate_s: float
        _stations: dict[str, _Station]
        _by_id: dict[int, Reservation]
        _by_vehicle: dict[str, set[int]]
        _starts_heap: list[tuple[int, int]]
        _begun: dict[int, Reservation]
        _events: list[Event]

        def _hold(self, st: _Station, r: Reservation) -> None: ...
        def _release(self, st: _Station, start: int, rid: int) -> None: ...
        def _close(self, r: Reservation, why: str) -> Reservation: ...
        def _fit(self, st: _Station, s: float, e: float, now: float) -> Optional[int]: ...
        def _station(self, station_id: str) -> Optional[_Station]: ...

    # --- cancel and expiry ---------------------------------------------------------------

    def cancel(self, vehicle_id: str, reservation_id: int) -> Reservation:
        """Cancel the vehicle's own confirmed reservation; returns it with state "cancelled"."""
        if type(reservation_id) is not int:
            raise BookingError(E_BAD_FIELD, "reservation id must be an integer")
        if not 0 < reservation_id < MAX_RESERVATION_ID:
            raise BookingError(E_NOT_FOUND, "no reservation %d" % reservation_id)
        r = self._by_id.get(reservation_id)
        if r is None:
            row = self._store.get_reservation(reservation_id) if self._store is not None else None
            if row is None:
                raise BookingError(E_NOT_FOUND, "no reservation %d" % reservation_id)
            if row["vehicle_id"] != vehicle_id:
                raise BookingError(E_FORBIDDEN, "reservation %d is not yours" % reservation_id)
            raise BookingError(
                E_INVALID_STATE, "reservation %d has already ended (%s)" % (reservation_id, row["state"])
            )
        if r.vehicle_id != vehicle_id:
            log.warning("vehicle %s: tried to cancel reservation %d of vehicle %s", vehicle_id, r.id, r.vehicle_id)
            raise BookingError(E_FORBIDDEN, "reservation %d is not yours" % reservation_id)
        self._store.update_reservation_state(r.id, "cancelled")
        log.info("vehicle %s: reservation %d at station %s cancelled", vehicle_id, r.id, r.station_id)
        return self._close(r, "cancelled")

    def move(self, reservation_id: int, refused_connector: int, now: float) -> Optional[Reservation]:
        """The station refused `refused_connector` for this reservation: book it on another connector
        of the station for the same window (0 = any, if no single one is free throughout). Returns
        the moved Reservation (a "reserved" event is queued), or None if the station has no room."""
        r = self._by_id.get(reservation_id)
        st = self._stations.get(r.station_id) if r is not None else None
        if r is None or st is None:
            return None
        self._release(st, r.start, r.id)
        blocker = Reservation(0, "", r.station_id, refused_connector, r.start, r.end, "blocked")
        self._hold(st, blocker)  # the refused connector counts as taken for the window
        conn = self._fit(st, r.start, r.end, now)
        self._release(st, r.start, 0)
        if conn is None or conn == refused_connector:
            self._hold(st, r)
            return None
        moved = r._replace(connector=conn)
        self._store.move_reservations([(r.id, conn)])
        self._hold(st, moved)
        self._events.append(("reserved", moved))
        log.warning(
            "station %s: reservation %d moved from connector %d to %d (the station refused it)",
            st.id,
            r.id,
            refused_connector,
            conn,
        )
        return moved

    def cancel_refused(self, reservation_id: int, why: str) -> Reservation:
        """The station cannot hold this reservation and no other connector can: cancelled in the
        store and memory; returns it with state "cancelled" (the caller tells the vehicle)."""
        r = self._by_id[reservation_id]
        self._store.update_reservation_state(r.id, "cancelled")
        log.warning(
            "vehicle %s: reservation %d at station %s cancelled: the station refused it (%s)",
            r.vehicle_id,
            r.id,
            r.station_id,
            why,
        )
        return self._close(r, "cancelled")

    def resync(self, station_id: Optional[str] = None) -> int:
        """What another hub changed while we were not told (a lost NOTIFY): memory follows the store for
        one station, or all. Returns how many reservations changed here."""
        rows = self._store.load_open_reservations(station_id)
        open_ids = {row["id"] for row in rows}
        known = {rid for rid, r in self._by_id.items() if station_id is None or r.station_id == station_id}
        changed = 0
        for rid in sorted(open_ids ^ known):  # new there, or ended there
            changed += self.adopt(rid) is not None
        return changed

    def adopt(self, reservation_id: int) -> Optional[str]:
        """Another hub confirmed, moved or ended this reservation in the shared store: memory follows.
        Returns "reserved", the end state, or None when memory already agreed (events are queued as
        for this hub's own changes, so the registry tells the station)."""
        row = self._store.get_reservation(reservation_id) if self._store is not None else None
        if row is None:
            return None
        r = self._by_id.get(reservation_id)
        state: str = row["state"]
        if state != "confirmed":
            if r is None:
                return None
            self._close(r, state)
            return state
        fresh = Reservation(*(row[f] for f in Reservation._fields))
        st = self._station(fresh.station_id)
        if st is None or r == fresh:
            return None
        if r is not None:
            self._release(st, r.start, r.id)
        self._hold(st, fresh)
        self._events.append(("reserved", fresh))
        return "reserved"

    def forget_peer(self, role: str, peer_id: str) -> list[Reservation]:
        """A station or vehicle was removed (`evhub ... remove`, which already marked its open
        reservations cancelled in the store): drop them from memory; returns them, state "cancelled"."""
        if role == "vehicle":
            gone = [self._by_id[i] for i in list(self._by_vehicle.get(peer_id, ()))]
        else:
            gone = [r for r in self._by_id.values() if r.station_id == peer_id]
        out = [self._close(r, "cancelled") for r in gone]
        if role == "station":
            self._stations.pop(peer_id, None)
        if out:
            log.info("%s %s removed: %d open reservations cancelled", role, peer_id, len(out))
        return out

    def expire_no_shows(self, now: float, grace_s: Optional[float] = None) -> list[Reservation]:
        """Release confirmed reservations nobody showed up for by start + grace (or by the end
        of a shorter window); returns them with state "expired", persisted in one transaction."""
        grace = self.grace_s if grace_s is None else grace_s
        heap = self._starts_heap
        while heap and heap[0][0] <= now:
            _start, rid = heapq.heappop(heap)
            r = self._by_id.get(rid)
            if r is not None:
                self._begun[rid] = r
        due = [r for r in self._begun.values() if min(r.start + grace, r.end) <= now]
        if not due:
            return []
        self._store.update_reservation_states([(r.id, "expired") for r in due])
        out = []
        for r in due:
            log.info(
                "vehicle %s: reservation %d at station %s expired, no show by %d",
                r.vehicle_id,
                r.id,
                r.station_id,
                min(r.start + grace, r.end),
            )
            out.append(self._close(r, "expired"))
        return out

    # --- sessions ----------------------------------------------------------------------

    def _match(self, st: _Station, vehicle_id: str, started: int) -> Optional[Reservation]:
        for rid in self._by_vehicle.get(vehicle_id, ()):
            r = self._by_id[rid]
            if r.station_id == st.id and r.start - EARLY_ARRIVAL_S <= started < r.end:
                return r
        return None

    def session_started(
        self,
        station_id: str,
        connector: int,
        vehicle_id: Optional[str],  # None: a local session, billed to no vehicle
        reservation_id: Optional[int],
        started: int,
        expected_end: Optional[float] = None,
        session_id: Optional[str] = None,
    ) -> Optional[Reservation]:
        """A session occupies `connector`. Its reservation (given, or this vehicle's window at
        this station) is fulfilled: the vehicle showed up. Returns that reservation or None."""
        st = self._station(station_id)
        if st is None:
            log.warning("station %s: session start on an unknown station ignored", station_id)
            return None
        r = self._by_id.get(reservation_id) if reservation_id is not None else None
        if r is not None and (r.station_id != station_id or r.vehicle_id != vehicle_id):
            # Left confirmed: holding a connector twice is safer than freeing someone else's.
            log.warning(
                "station %s: vehicle %s started on reservation %d of vehicle %s at %s; not fulfilled",
                station_id,
                vehicle_id,
                r.id,
                r.vehicle_id,
                r.station_id,
            )
            r = None
        if r is None and vehicle_id is not None:
            r = self._match(st, vehicle_id, started)
        if expected_end is None:
            expected_end = r.end if r is not None else started + self.session_estimate_s
        st.sessions[connector] = _Session(session_id, vehicle_id, r.id if r else reservation_id, started, expected_end)
        log.info(
            "station %s: connector %d busy with vehicle %s until ~%d%s",
            station_id,
            connector,
            vehicle_id,
            expected_end,
            "" if r is None else " (reservation %d fulfilled)" % r.id,
        )
        if r is None:
            return None
        self._store.update_reservation_state(r.id, "fulfilled")
        return self._close(r, "fulfilled")

    def session_ended(
        self,
        session_id: Optional[str],
        station_id: str,
        connector: int,
        vehicle_id: Optional[str] = None,
        reservation_id: Optional[int] = None,
        ended: Optional[int] = None,
    ) -> Optional[Reservation]:
        """The connector is free again; a reservation still open for it is closed as fulfilled."""
        st = self._station(station_id)
        if st is None:
            return None
        sess = st.sessions.get(connector)
        if sess is not None:
            # Matched by connector; the ids we have (the registry sends the session id) must agree.
            clash = (session_id and sess.session_id and session_id != sess.session_id) or (
                vehicle_id and sess.vehicle_id and vehicle_id != sess.vehicle_id
            )
            if clash:
                log.warning(
                    "station %s: end of session %s does not match the one on connector %d; kept",
                    station_id,
                    session_id,
                    connector,
                )
            else:
                del st.sessions[connector]
        log.info("station %s: connector %d free (session %s ended)", station_id, connector, session_id)
        r = self._by_id.get(reservation_id) if reservation_id is not None else None
        if r is None or r.station_id != station_id:
            return None
        # The start never reached us (or came before the hub restarted): close it now.
        self._store.update_reservation_state(r.id, "fulfilled")
        return self._close(r, "fulfilled")

    def follow_sessions(self, station_id: str, rows: list[Row]) -> None:
        """Another hub, the station's home, started or ended a session there: the open sessions the store
        holds for it occupy its connectors here too (a reservation is not booked over them)."""
        st = self._station(station_id)
        if st is None:
            return
        sessions = {}
        for row in rows:
            started = row["started"] or 0
            sessions[row["connector"]] = _Session(
                row["session_id"], row["vehicle_id"], row["reservation_id"], started, started + self.session_estimate_s
            )
        st.sessions = sessions

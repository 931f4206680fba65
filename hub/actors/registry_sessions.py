"""The registry's session handling: METER, SESSION_START and SESSION_END from a station.

A record is written to the store before the station gets its ACK, so an acknowledged COMPLETE is
never lost; a replayed SESSION_END is ACKed again and changes nothing. Who is billed is decided by
hub/domain/authz.py, what is plausible by hub/domain/stations.py.
"""

import logging
from typing import TYPE_CHECKING, Any, Callable, Optional


from hub.domain import authz
from hub.io.logsafe import wire_text
from hub.messages import (
    Meter,
    SessionEnd,
    SessionEnded,
    SessionStart,
    SessionStarted,
)
from hub.domain.stations import (
    Station,
    StationRequests,
    Stations,
)
from transport import kinds as K
from transport.messages import make


# The registry's log: operators (and tests) read one logger for the whole actor.
log = logging.getLogger("hub.actors.registry")


class SessionHandling:
    """Mixed into StationRegistry: the handlers of a station's session records."""

    # What the actor (hub/actors/registry.py) provides; declared here for the type checker.
    stations: Stations
    store: Any
    outbox: Any
    clock: Callable[[], float]
    config: dict
    book: Any
    events: Any
    cluster: Any
    requests: StationRequests
    actor_ref: Any
    _epochs: "dict[str, int]"
    _forwarded: "dict[int, tuple[Callable[[Any], None], float]]"

    if TYPE_CHECKING:  # the actor's own methods, which these handlers call

        def _ack(self, link_id: Any, seq: int) -> None: ...
        def _error(self, link_id: Any, seq: int, code: int, text: str) -> None: ...
        def _station(self, station_id: str) -> Station: ...
        def _known(self, station_id: str) -> Optional[Station]: ...
        def _publish(self, st: Station) -> None: ...
        def _sync_windows(self, st: Station) -> None: ...

    def _on_meter(self, msg: Meter) -> None:
        st = self.stations.get(msg.station_id)
        if st is None:
            return
        s = self.stations.metered(st, msg.session_id, msg.energy_wh, msg.power_w)
        if s is None:
            return
        if self.events is not None:
            self.events.publish(
                "meter",
                {
                    "station_id": msg.station_id,
                    "connector": msg.connector,
                    "session_id": msg.session_id,
                    "vehicle_id": s.vehicle_id,
                    "energy_wh": msg.energy_wh,
                    "power_w": msg.power_w,
                    "time": msg.time,
                },
            )
        if s.vehicle_id is not None:  # a local session is nobody's to watch
            self.outbox.send_to_peer(
                "vehicle",
                s.vehicle_id,
                make(K.CHARGE_PROGRESS, 0, msg.session_id, msg.station_id, msg.energy_wh, msg.power_w),
            )

    def _recorded(self, station_id: str, session_id: str) -> Optional[dict]:
        """The session's stored row (None if new); refused if it belongs to another station."""
        row = self.store.get_session(session_id)
        try:
            Stations.check_owner(station_id, session_id, None if row is None else row["station_id"])
        except authz.Refusal:
            log.warning(
                "station %s: refused a record for session %s of station %s",
                station_id,
                wire_text(session_id),
                row["station_id"],
            )
            raise
        return row

    def _on_session_start(self, msg: SessionStart) -> None:
        station_id, session_id, started = msg.station_id, msg.session_id, msg.time
        st = self._station(station_id)
        Stations.check_session_start(st, session_id, msg.connector, msg.reservation_id, msg.meter_start_wh, started)
        row = self._recorded(station_id, session_id)
        claimed = msg.vehicle_id
        vehicle_id, reservation_id = self._attributed(st, row, session_id, claimed, msg.reservation_id, started)
        had_window = reservation_id is not None and reservation_id in st.windows
        first = self.store.record_session_start(
            session_id,
            station_id,
            msg.connector,
            vehicle_id,
            reservation_id,
            msg.meter_start_wh,
            started,
            None if claimed == vehicle_id else claimed,
        )
        new = self.stations.session_started(st, session_id, msg.connector, vehicle_id, reservation_id, started)
        if new is not None:
            if first and self.book is not None:
                self.book.tell(
                    SessionStarted(
                        station_id, msg.connector, vehicle_id, reservation_id, started, new.expected_end, session_id
                    )
                )
            if self.events is not None:
                self.events.publish("session_start", dict(new._asdict(), session_id=session_id, station_id=station_id))
            if self.cluster is not None:
                self.cluster.announce_sessions(station_id)  # the other hubs' books: the connector is busy
        if had_window:
            self._sync_windows(st)  # the station used its row: the next window may go
        log.info(
            "station %s: session %s started on connector %d for vehicle %s",
            station_id,
            wire_text(session_id),
            msg.connector,
            wire_text(vehicle_id),
        )
        self._publish(st)
        self._ack(msg.link_id, msg.seq)
        if vehicle_id is not None:
            self.outbox.send_to_peer(
                "vehicle", vehicle_id, make(K.SESSION_STARTED, 0, session_id, station_id, msg.connector)
            )

    def _attributed(
        self,
        st: Station,
        row: Optional[dict],
        session_id: str,
        claimed: Optional[str],
        reservation_id: Optional[int],
        started: int,
    ) -> "tuple[Optional[str], Optional[int]]":
        """(vehicle_id, reservation_id) the session is billed to: decided once, at its first record."""
        if row is not None:
            return row["vehicle_id"], row["reservation_id"] if row["vehicle_id"] is not None else None
        vehicle_id, rid, why = authz.attribute(
            self.store, st.windows, st.id, session_id, claimed, reservation_id, started, self.clock()
        )
        if vehicle_id is None and claimed is not None:
            log.warning(
                "station %s: session %s names vehicle %r but %s: recorded as a local session",
                st.id,
                wire_text(session_id),
                wire_text(claimed),
                wire_text(why),
            )
        return vehicle_id, rid

    def _on_session_end(self, msg: SessionEnd) -> None:
        station_id, session_id = msg.station_id, msg.session_id
        st = self._station(station_id)
        Stations.check_session_end(
            st, session_id, msg.connector, msg.reservation_id, msg.energy_wh, msg.started, msg.ended
        )
        row = self._recorded(station_id, session_id)
        claimed = msg.vehicle_id
        vehicle_id, reservation_id = self._attributed(st, row, session_id, claimed, msg.reservation_id, msg.started)
        flagged = self._implausible(st, session_id, msg.energy_wh, msg.started, msg.ended)
        first = self.store.record_session_end(
            session_id,
            station_id,
            msg.connector,
            vehicle_id,
            reservation_id,
            msg.energy_wh,
            msg.started,
            msg.ended,
            msg.reason,
            None if claimed == vehicle_id else claimed,
            flagged,
        )
        self.stations.session_ended(st, session_id)
        self._ack(msg.link_id, msg.seq)  # after the store: an acknowledged COMPLETE is on disk
        if not first:
            log.info("station %s: session %s end replayed, already recorded", station_id, wire_text(session_id))
            return
        if self.events is not None:
            self.events.publish(
                "session_end",
                {
                    "session_id": session_id,
                    "station_id": station_id,
                    "connector": msg.connector,
                    "vehicle_id": vehicle_id,
                    "reservation_id": reservation_id,
                    "energy_wh": msg.energy_wh,
                    "started": msg.started,
                    "ended": msg.ended,
                    "reason": msg.reason,
                    "implausible": flagged,
                },
            )
        log.info(
            "station %s: session %s COMPLETE vehicle=%s energy=%.2f kWh reason=%s",
            station_id,
            wire_text(session_id),
            wire_text(vehicle_id),
            msg.energy_wh / 1000.0,
            wire_text(msg.reason),
        )
        self._publish(st)
        if self.book is not None:
            self.book.tell(SessionEnded(station_id, msg.connector, session_id, vehicle_id, reservation_id, msg.ended))
        if self.cluster is not None:
            self.cluster.announce_sessions(station_id)  # the other hubs' books: the connector is free
        if vehicle_id is not None:
            self.outbox.send_to_peer(
                "vehicle",
                vehicle_id,
                make(K.COMPLETE, 0, session_id, station_id, msg.energy_wh, max(0, msg.ended - msg.started), msg.reason),
            )

    def _implausible(self, st: Station, session_id: str, energy_wh: int, started: int, ended: int) -> bool:
        """Flag (and log) energy beyond what max_kw delivers in the session's duration."""
        provisioned = None
        if self.config.get("speedup", 1.0) == 1.0 and self.config.get("epoch0") is None:  # hub clock = wall clock
            row = self.store.get_station(st.id)
            provisioned = row["created"] if row is not None else None
        if not authz.implausible(energy_wh, st.max_kw, started, ended, provisioned, self.clock()):
            return False
        log.warning(
            "station %s: session %s reports %d Wh in %d s, more than %s kW can deliver: flagged implausible",
            st.id,
            wire_text(session_id),
            energy_wh,
            max(0, ended - started),
            st.max_kw,
        )
        return True

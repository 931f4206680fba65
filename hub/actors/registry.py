"""StationRegistry: the Pykka actor around hub/domain/stations.py (the stations' rules).

It owns the store connection, the Outbox and the tells to the book, the locator and the event
bus; the decisions are `Stations`'. It publishes `view` (station id -> StationView, the
`Stations.view` dict), so the gateway answers nearest and list queries from the I/O loop without
asking this actor anything.

Session records are written to the store before the station gets its ACK, so an acknowledged
COMPLETE is never lost; a replayed SESSION_END is ACKed again and changes nothing.

Which reservations a station is sent (RESERVE_NOW / CANCEL_RESERVATION) and what each of its
answers means is decided by hub/domain/station_sync.py (each Station's `sync`); this actor sends the
requests, resends an unanswered one, and tells the book StationRefused when one must move or go.

Messages (hub/messages.py): Boot, Status, Meter, SessionStart, SessionEnd, StationOnline,
StationOffline, Reserved, ReservationEnded, StartCharge, StopCharge, ListSessions,
ReservationHistory, StationAnswer, RegistryTick, StationRemoved, UseBook.
"""

import logging
import time
from typing import Any, Callable, Optional

import pykka

from hub.domain import authz
from hub.domain import capacity
from hub.domain import station_sync
from hub.domain.boardfloats import board_float
from hub.io.logsafe import wire_text
from hub.messages import (
    Boot,
    HomeMoved,
    ListSessions,
    Meter,
    RegistryTick,
    RemoteAnswer,
    RemoteRequest,
    RemoteViews,
    RemoveStation,
    ReservationEnded,
    ReservationHistory,
    ReservationRefused,
    Reserved,
    SessionEnd,
    SessionEnded,
    SessionStart,
    SessionStarted,
    StartCharge,
    StationAnswer,
    StationCapacity,
    StationOffline,
    StationOnline,
    StationRefused,
    StationRemoved,
    Status,
    StopCharge,
    Upsert,
    UseBook,
)
from hub.domain.stations import (  # noqa: F401 (StationView, display_status: imported from here by tools and tests)
    Station,
    StationRequests,
    Stations,
    StationView,
    display_status,
    relay_outcome,
)
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_INTERNAL, E_INVALID_STATE, E_NOT_FOUND, E_TIMEOUT, error_name
from transport.messages import make

log = logging.getLogger(__name__)

REQUEST_TRIES = 3  # sends of one hub->station request before "the station did not answer"
FORWARD_TIMEOUT_S = 20.0  # real seconds a request forwarded to another hub waits (its home resends meanwhile)


class StationRegistry(pykka.ThreadingActor):
    def __init__(
        self,
        store_factory: Callable[[], Any],
        outbox: Any,
        clock: Callable[[], float],
        config: dict,
        book: Any = None,
        locator: Any = None,
        events: Any = None,
        cluster: Any = None,
    ) -> None:
        super().__init__()
        self.cluster = cluster  # hub.cluster.node.ClusterNode when several hubs share PostgreSQL, else None
        self._epochs: "dict[str, int]" = {}  # station id -> our home epoch, for the stations homed here
        # Requests forwarded to another hub (the station's home): request id -> (on_answer, deadline)
        self._forwarded: "dict[int, tuple[Callable[[Any], None], float]]" = {}
        self.events = events  # hub.events.EventBus or None: publish(kind, data) from this thread
        self._store_factory = store_factory
        self.store: Any = None
        self.outbox = outbox
        self.clock = clock
        self.config = config
        self.book = book
        self.locator = locator
        self.stations = Stations(clock, config["session_estimate_min"] * 60)
        self.view = self.stations.view
        self.requests = StationRequests()
        self._answered = False  # whether the message being handled has had its answer (ACK or ERROR)

    # --- lifecycle ------------------------------------------------------------------

    def on_start(self) -> None:
        self.store = self._store_factory()  # the sqlite connection belongs to this thread
        for row in self.store.all_stations():
            self._learn(row["id"], row["lat"], row["lon"], row["connectors"], row["max_kw"], row.get("name"))
        # Sessions running when the hub stopped still occupy their connectors until the station's
        # SESSION_END (replayed from its journal) closes them.
        reopened = 0
        for row in self.store.load_open_sessions():
            st = self.stations.get(row["station_id"])
            if st is None:
                continue
            self.stations.session_started(
                st, row["session_id"], row["connector"], row["vehicle_id"], row["reservation_id"], row["started"]
            )
            reopened += 1
        log.info("registry: %d provisioned stations, %d sessions still open", len(self.stations), reopened)

    def on_stop(self) -> None:
        if self.store is not None:
            self.store.close()

    def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        log.error("registry crashed: %s", exc_value)

    def _learn(
        self, station_id: str, lat: float, lon: float, connectors: int, max_kw: float, name: Optional[str] = None
    ) -> Station:
        st = self.stations.learn(station_id, lat, lon, connectors, max_kw, name)
        if self.locator is not None:
            self.locator.tell(Upsert(station_id, lat, lon))
        if self.book is not None:
            self.book.tell(StationCapacity(station_id, st.connectors))
        self._publish(st)
        return st

    def _publish(self, st: Station) -> None:
        view, old = self.stations.refresh(st)
        self._news(view, old)
        epoch = self._epochs.get(st.id)
        if epoch is not None and Stations.news(view, old):
            self.cluster.publish(view, epoch)  # the other hubs show what this home sees

    def _news(self, view: StationView, old: Optional[StationView]) -> None:
        if self.events is not None and Stations.news(view, old):
            self.events.publish("station", (view, None if old is None else old.status))

    # --- messages --------------------------------------------------------------------------

    def on_receive(self, message: object) -> object:
        handler = self._handlers.get(type(message))
        if handler is None:
            log.error("registry: unknown message %s", type(message).__name__)
            return None
        self._answered = False
        try:
            return handler(self, message)
        except authz.Refusal as exc:  # a rule said no: the sender is told why
            self._error(message.link_id, message.seq, exc.code, exc.text)  # type: ignore[attr-defined]
        except Exception:
            # pykka stops an actor whose on_receive raises: one bad message must not take the registry.
            log.exception("registry: failed handling %s", type(message).__name__)
            # A request is answered once: a failure after its ACK (publishing, telling the vehicle) is only logged.
            if hasattr(message, "link_id") and hasattr(message, "seq") and not self._answered:
                self._error(message.link_id, message.seq, E_INTERNAL, "internal error; try again")
        return None

    def _ack(self, link_id: Any, seq: int) -> None:
        self._answered = True
        self.outbox.send(link_id, make(K.ACK, seq))

    def _error(self, link_id: Any, seq: int, code: int, text: str) -> None:
        self._answered = True
        self.outbox.send(link_id, make(K.ERROR, seq, code, text))

    def _station(self, station_id: str) -> Station:
        st = self._known(station_id)
        if st is None:
            raise authz.Refusal(E_NOT_FOUND, "station %s is not provisioned" % station_id)
        return st

    def _known(self, station_id: str) -> Optional[Station]:
        """The station, learning it from the store if it was provisioned after we last looked."""
        st = self.stations.get(station_id)
        if st is None:
            row = self.store.get_station(station_id)
            if row is not None:
                st = self._learn(row["id"], row["lat"], row["lon"], row["connectors"], row["max_kw"], row.get("name"))
        return st

    def _on_use_book(self, msg: UseBook) -> None:
        self.book = msg.book

    def _on_online(self, msg: StationOnline) -> None:
        st = self._known(msg.station_id)
        if st is None:
            return
        self.stations.set_online(st, True)
        if self.cluster is not None:
            self._epochs[st.id] = self.cluster.claim(st.id)  # this hub is its home now: the others hear of it
        self._publish(st)
        # Tell the station about reservations it must honour (it may have rebooted and forgotten).
        self._sync_windows(st)

    def _on_offline(self, msg: StationOffline) -> None:
        st = self.stations.get(msg.station_id)
        if st is None:
            return
        if st.online:
            log.warning("station %s: offline (%s)", msg.station_id, msg.why)
        self.stations.set_online(st, False)
        self._publish(st)
        epoch = self._epochs.pop(st.id, None)
        if epoch is not None:
            self.cluster.release(st.id, epoch)
            self.cluster.publish(self.view[st.id], epoch)  # fenced: written only if still our home

    def _on_remote_views(self, msg: RemoteViews) -> None:
        for remote in msg.views:
            if remote.id in self._epochs:
                continue  # homed here: what it tells us wins over any other hub's stale row
            if self._known(remote.id) is None:
                continue
            changed = self.stations.set_remote(remote)
            if changed is not None:
                self._news(*changed)

    def _on_home_moved(self, msg: HomeMoved) -> None:
        """Another hub claimed a station we hold: our link to it is stale (half-open), so we let go."""
        epoch = self._epochs.get(msg.station_id)
        if epoch is None or msg.hub_id is None or msg.epoch <= epoch:
            return
        log.warning("station %s: now homed on hub %s; dropping it here", msg.station_id, msg.hub_id)
        self._epochs.pop(msg.station_id, None)
        st = self.stations.get(msg.station_id)
        if st is not None:
            self.stations.set_online(st, False)
            self._publish(st)

    def _on_boot(self, msg: Boot) -> None:
        station_id = msg.station_id
        lat, lon, max_kw = (
            board_float(msg.lat),
            board_float(msg.lon),
            board_float(msg.max_kw),
        )  # float32 boards read alike
        Stations.check_boot(lat, lon, msg.connectors, max_kw)
        # Provisioning and the station's own report must never silently diverge: use the safe values.
        # A boot also picks up `evhub stations update` (position, name) made since.
        row = self.store.get_station(station_id)
        use_connectors, use_kw, mismatch = capacity.reconcile(station_id, row, msg.connectors, max_kw)
        st = self.stations.get(station_id) or self._learn(station_id, lat, lon, use_connectors, use_kw)
        st.mismatch = mismatch
        if row is not None:
            self._learn(station_id, row["lat"], row["lon"], use_connectors, use_kw, row.get("name"))
        elif st.connectors != use_connectors or st.max_kw != use_kw:
            self._learn(station_id, st.lat, st.lon, use_connectors, use_kw)
        self.stations.booted(st, msg.firmware, mismatch)
        log.info(
            "station %s: boot firmware=%s connectors=%d max_kw=%s",
            station_id,
            wire_text(msg.firmware),
            msg.connectors,
            max_kw,
        )
        self._publish(st)
        self._ack(msg.link_id, msg.seq)
        if use_kw < max_kw:  # the station would deliver more than it was provisioned for: tell it the limit
            self._request_station(
                station_id, K.CONFIGURE, ["max_kw", use_kw], self._logged(station_id, "configure max_kw")
            )

    def _on_status(self, msg: Status) -> None:
        st = self._station(msg.station_id)
        old = self.stations.set_status(st, msg.connector, msg.status)
        if old != msg.status:
            log.info(
                "station %s: connector %d %s -> %s%s",
                msg.station_id,
                msg.connector,
                old,
                msg.status,
                " (%s)" % wire_text(msg.info) if msg.info else "",
            )
        self._publish(st)
        self._ack(msg.link_id, msg.seq)

    def _on_reservation_refused(self, msg: ReservationRefused) -> None:
        st = self._station(msg.station_id)
        rid = msg.reservation_id
        connector = st.sync.connectors.get(rid, 0)
        action = st.sync.dropped(rid, msg.code)
        if action != station_sync.STALE:
            log.warning(
                "station %s: reservation %d (connector %d) dropped by the station: %s: %s: %s",
                st.id,
                rid,
                connector,
                error_name(msg.code) or msg.code,
                wire_text(msg.text),
                action,
            )
            if self.book is not None:
                self.book.tell(StationRefused(rid, st.id, connector, action == station_sync.MOVE, msg.text))
        self._ack(msg.link_id, msg.seq)

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

    # --- reservations told by the book ----------------------------------------------------------

    def _on_reserved(self, msg: Reserved) -> None:
        st = self._known(msg.station_id)
        if st is None:
            return
        self.stations.reserved(st, msg.reservation_id, msg.vehicle_id, msg.start, msg.end, msg.connector)
        self._publish(st)
        self._sync_windows(st)

    def _on_reservation_ended(self, msg: ReservationEnded) -> None:
        st = self.stations.get(msg.station_id)
        if st is None or not self.stations.reservation_ended(st, msg.reservation_id, msg.why):
            return
        self._publish(st)
        self._sync_windows(st)  # a row is free: the next window goes (and this one is cancelled there)

    def _sync_windows(self, st: Station) -> None:
        """Send the station the windows inside its horizon it does not hold yet (hub/domain/station_sync.py)."""
        if not st.online:
            return
        cancel, send = st.sync.plan(st.windows)
        for rid in cancel:
            self._cancel_on_station(st, rid)
        for rid, token in send:
            w = st.windows[rid]
            self._request_station(
                st.id,
                K.RESERVE_NOW,
                [rid, st.sync.connectors.get(rid, 0), w.vehicle_id, int(w.start), int(w.end)],
                self._reserve_now_reply(st.id, rid, token),
            )

    def _logged(self, station_id: str, what: str) -> Callable[[Any], None]:
        """on_reply for a request nobody waits for: a refusal or no answer is logged, never dropped."""

        def on_reply(reply: Any) -> None:
            if reply is None:
                log.warning("station %s: %s not answered", station_id, what)
            elif reply[0] == K.ERROR:
                log.warning(
                    "station %s: %s refused: %s: %s",
                    station_id,
                    what,
                    error_name(reply[1][0]) or reply[1][0],
                    wire_text(reply[1][1]),
                )

        return on_reply

    def _cancel_on_station(self, st: Station, rid: int) -> None:
        logged = self._logged(st.id, "cancel of reservation %d" % rid)

        def on_reply(reply: Any) -> None:
            if reply is None or reply[0] != K.ERROR or reply[1][0] != E_NOT_FOUND:  # not found: already gone
                logged(reply)

        self._request_station(st.id, K.CANCEL_RESERVATION, [rid], on_reply)

    def _reserve_now_reply(self, station_id: str, rid: int, token: int) -> Callable[[Any], None]:
        def on_reply(reply: Any) -> None:
            st = self.stations.get(station_id)
            if st is None:
                return
            connector = st.sync.connectors.get(rid, 0)
            action = st.sync.on_reply(rid, token, reply)
            if action in (station_sync.HELD, station_sync.STALE):
                return
            code, text = (E_TIMEOUT, "no answer") if reply is None else (reply[1][0], reply[1][1])
            log.warning(
                "station %s: RESERVE_NOW %d (connector %d) refused: %s: %s: %s",
                station_id,
                rid,
                connector,
                error_name(code) or code,
                wire_text(text),
                action,
            )
            if action != station_sync.RETRY and self.book is not None:
                self.book.tell(StationRefused(rid, station_id, connector, action == station_sync.MOVE, text))

        return on_reply

    # --- vehicle asks to charge / stop -----------------------------------------------------------

    def _request_station(
        self, station_id: str, kind: int, fields: list, on_reply: Optional[Callable[[Any], None]], tries: int = 1
    ) -> None:
        """Send a hub->station request; on_reply(reply) gets (kind, fields) or None. An unanswered one
        (a frame lost on a serial line) is resent while the station is online, up to REQUEST_TRIES: the
        station handles a repeat idempotently, and a "not found" to a repeated stop or cancel means the
        first copy did it."""
        answered = None
        if on_reply is not None:

            def answered(reply: Any) -> None:
                st = self.stations.get(station_id)
                if reply is None and tries < REQUEST_TRIES and st is not None and st.online:
                    log.info("station %s: %s unanswered, sent again", station_id, K.kind_name(kind))
                    self._request_station(station_id, kind, fields, on_reply, tries + 1)
                    return
                if (
                    tries > 1
                    and reply is not None
                    and reply[0] == K.ERROR
                    and reply[1][0] == E_NOT_FOUND
                    and kind in (K.REMOTE_STOP, K.CANCEL_RESERVATION)
                ):
                    reply = (K.ACK, [])
                on_reply(reply)

        tag = self.requests.new(answered)
        self.outbox.request("station", station_id, kind, fields, self.actor_ref if answered is not None else None, tag)

    def _on_answer(self, msg: StationAnswer) -> None:
        self.requests.answered(msg.tag, msg.answer)

    def _relay_reply(self, link_id: Any, seq: int, what: str) -> Callable[[Any], None]:
        def relay(answer: Any) -> None:
            outcome = relay_outcome(answer, what)
            if outcome is None:
                self._ack(link_id, seq)
            else:
                self._error(link_id, seq, outcome[0], outcome[1])

        return relay

    def _on_start_charge(self, msg: StartCharge) -> None:
        st = self._station(msg.station_id)
        relay = self._relay_reply(msg.link_id, msg.seq, "start")
        if not st.online and self._homed_elsewhere(st.id):
            body = {"vehicle_id": msg.vehicle_id, "reservation_id": msg.reservation_id, "ev": msg.ev}
            self._forward(st.id, "start", body, relay)
            return
        self._start(msg.vehicle_id, st, msg.reservation_id, msg.ev, relay)

    def _start(self, vehicle_id: str, st: Station, reservation_id: Optional[int], ev: Any, relay: Any) -> None:
        """REMOTE_START at a station homed here, for a vehicle on this hub or another; raises Refusal."""
        station_id = st.id
        if not st.online:
            raise authz.Refusal(E_INVALID_STATE, "station %s is offline" % station_id)
        if reservation_id is not None and reservation_id not in st.windows:
            raise authz.Refusal(E_NOT_FOUND, "reservation %d is not open at %s" % (reservation_id, station_id))
        now = self.clock()
        try:
            connector, reservation_id = authz.authorise_start(
                station_id, st.windows, st.connector_status, vehicle_id, reservation_id, now
            )
        except authz.Refusal as exc:
            log.warning(
                "vehicle %s: start at station %s refused: %s", vehicle_id, wire_text(station_id), wire_text(exc.text)
            )
            raise
        # Remembered before it is sent: the session the station reports for it is billed to this vehicle.
        grant = self.store.add_remote_start(station_id, vehicle_id, reservation_id, int(now))

        def on_reply(answer: Any) -> None:
            if answer is not None and answer[0] == K.ERROR:
                self.store.drop_remote_start(grant)  # refused: nothing will start on it
            relay(answer)

        self._request_station(station_id, K.REMOTE_START, [connector, vehicle_id, reservation_id, ev], on_reply)

    def _on_stop_charge(self, msg: StopCharge) -> None:
        relay = self._relay_reply(msg.link_id, msg.seq, "stop")
        if self.cluster is not None and self.stations.session_station(msg.session_id) is None:
            row = self.store.get_session(msg.session_id)  # a session at a station homed on another hub
            if row is not None and self._homed_elsewhere(row["station_id"]):
                body = {"vehicle_id": msg.vehicle_id, "session_id": msg.session_id}
                self._forward(row["station_id"], "stop", body, relay)
                return
        st = self.stations.session_to_stop(msg.vehicle_id, msg.session_id)
        self._request_station(st.id, K.REMOTE_STOP, [msg.session_id], relay)

    # --- requests across hubs (hub/cluster) -----------------------------------------------------------

    def _homed_elsewhere(self, station_id: str) -> bool:
        remote = self.stations.remote.get(station_id)
        return self.cluster is not None and remote is not None and remote.online

    def _forward(self, station_id: str, kind: str, body: "dict[str, Any]", on_answer: Callable[[Any], None]) -> None:
        request_id = self.cluster.send(station_id, kind, body)
        if request_id is None:  # its home let go meanwhile
            raise authz.Refusal(E_INVALID_STATE, "station %s is offline" % station_id)
        self._forwarded[request_id] = (on_answer, time.monotonic() + FORWARD_TIMEOUT_S)

    def _on_remote_answer(self, msg: RemoteAnswer) -> None:
        pending = self._forwarded.pop(msg.request_id, None)
        if pending is not None:
            pending[0](msg.answer)

    def _on_remote_request(self, msg: RemoteRequest) -> None:
        """Another hub's vehicle asks a station homed here: the same rules as for our own vehicles."""
        if self._epochs.get(msg.station_id) != msg.epoch:
            self.cluster.answer(msg, None)  # no longer ours: the asker times out as for a silent station
            return

        def answer(reply: Any) -> None:
            self.cluster.answer(msg, reply)

        body = msg.body
        try:
            if msg.kind == "start":
                self._start(
                    body["vehicle_id"], self._station(msg.station_id), body["reservation_id"], body["ev"], answer
                )
            elif msg.kind == "stop":
                st = self.stations.session_to_stop(body["vehicle_id"], body["session_id"])
                self._request_station(st.id, K.REMOTE_STOP, [body["session_id"]], answer)
            else:
                log.warning("cluster: unknown request %r from hub %s", msg.kind, msg.reply_hub)
                answer((K.ERROR, [E_BAD_FIELD, "unknown request %s" % msg.kind]))
        except authz.Refusal as exc:
            answer((K.ERROR, [exc.code, exc.text]))

    def _on_station_removed(self, msg: StationRemoved) -> None:
        """`evhub stations remove`: the station leaves the map (its link is closed by the gateway)."""
        if not self.stations.remove(msg.station_id):
            return
        if self.locator is not None:
            self.locator.tell(RemoveStation(msg.station_id))
        log.info("station %s: removed (history kept in the store)", msg.station_id)

    def _on_reservation_history(self, msg: ReservationHistory) -> None:
        self.outbox.send(msg.link_id, make(K.RESERVATIONS, msg.seq, self.store.vehicle_reservations(msg.vehicle_id)))

    def _on_list_sessions(self, msg: ListSessions) -> None:
        self.outbox.send(msg.link_id, make(K.SESSIONS, msg.seq, self.store.vehicle_sessions(msg.vehicle_id)))

    def _sync_provisioned(self) -> None:
        """Stations provisioned while the hub runs (`evhub stations add`) show up within a tick."""
        if self.store.station_count() == len(self.stations):
            return
        for row in self.store.all_stations():
            if self.stations.get(row["id"]) is None:
                self._learn(row["id"], row["lat"], row["lon"], row["connectors"], row["max_kw"], row.get("name"))

    def _on_tick(self, msg: RegistryTick) -> None:
        self._sync_provisioned()
        now = time.monotonic()
        for request_id in [r for r, (_a, deadline) in self._forwarded.items() if deadline <= now]:
            self._forwarded.pop(request_id)[0](None)  # the other hub never answered: as a silent station
        for st in list(self.stations.counting_down()):
            self._publish(st)  # "Free in X min" counts down
        for st in list(self.stations.retry_due()):
            self._sync_windows(st)  # resend what was lost or refused for a passing reason

    _handlers: "dict[type, Callable[[StationRegistry, Any], Any]]" = {
        StationOnline: _on_online,
        StationOffline: _on_offline,
        Boot: _on_boot,
        Status: _on_status,
        Meter: _on_meter,
        SessionStart: _on_session_start,
        SessionEnd: _on_session_end,
        ReservationRefused: _on_reservation_refused,
        Reserved: _on_reserved,
        ReservationEnded: _on_reservation_ended,
        StartCharge: _on_start_charge,
        StopCharge: _on_stop_charge,
        ListSessions: _on_list_sessions,
        ReservationHistory: _on_reservation_history,
        StationAnswer: _on_answer,
        RegistryTick: _on_tick,
        UseBook: _on_use_book,
        StationRemoved: _on_station_removed,
        RemoteViews: _on_remote_views,
        HomeMoved: _on_home_moved,
        RemoteRequest: _on_remote_request,
        RemoteAnswer: _on_remote_answer,
    }

"""StationRegistry: the Pykka actor around hub/domain/stations.py (the stations' rules).

It owns the store connection, the Outbox and the tells to the book, the locator and the event
bus; the decisions are `Stations`'. It publishes `view` (station id -> StationView, the
`Stations.view` dict), so the gateway answers nearest and list queries from the I/O loop without
asking this actor anything.

This module holds the actor's lifecycle, a station's link, BOOT and STATUS, and the cluster's news;
its two other halves are mixed in: registry_sessions.py (METER, SESSION_START, SESSION_END: a record
is stored before its ACK, so an acknowledged COMPLETE is never lost) and registry_requests.py
(RESERVE_NOW / CANCEL_RESERVATION for the book's reservations, START / STOP for vehicles, and the
same across hubs).

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
    ResyncReservations,
    RemoveStation,
    ReservationEnded,
    ReservationHistory,
    ReservationRefused,
    Reserved,
    SessionEnd,
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
from transport.errors import E_INTERNAL, E_NOT_FOUND, error_name
from transport.messages import make
from hub.actors.registry_sessions import SessionHandling
from hub.actors.registry_requests import REQUEST_TRIES, StationRequesting  # noqa: F401 (REQUEST_TRIES: tests)

log = logging.getLogger(__name__)


class StationRegistry(SessionHandling, StationRequesting, pykka.ThreadingActor):
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
            self._adopt_sessions(st)
            if self.book is not None:
                self.book.tell(ResyncReservations(st.id))  # what it must hold, as the store says
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

    def _adopt_sessions(self, st: Station) -> None:
        """Sessions another hub recorded at this station (its home before) continue here: they occupy
        the connector, and the book knows the reservation they fulfil."""
        for row in self.store.load_open_sessions():
            if row["station_id"] != st.id or row["session_id"] in st.sessions:
                continue
            args = (row["connector"], row["vehicle_id"], row["reservation_id"], row["started"])
            new = self.stations.session_started(st, row["session_id"], *args)
            if new is not None and self.book is not None:
                self.book.tell(SessionStarted(st.id, *args, new.expected_end, row["session_id"]))

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
        Meter: SessionHandling._on_meter,
        SessionStart: SessionHandling._on_session_start,
        SessionEnd: SessionHandling._on_session_end,
        ReservationRefused: _on_reservation_refused,
        Reserved: StationRequesting._on_reserved,
        ReservationEnded: StationRequesting._on_reservation_ended,
        StartCharge: StationRequesting._on_start_charge,
        StopCharge: StationRequesting._on_stop_charge,
        ListSessions: _on_list_sessions,
        ReservationHistory: _on_reservation_history,
        StationAnswer: StationRequesting._on_answer,
        RegistryTick: _on_tick,
        UseBook: _on_use_book,
        StationRemoved: _on_station_removed,
        RemoteViews: _on_remote_views,
        HomeMoved: _on_home_moved,
        RemoteRequest: StationRequesting._on_remote_request,
        RemoteAnswer: StationRequesting._on_remote_answer,
    }

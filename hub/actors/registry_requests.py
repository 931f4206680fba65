"""The registry's requests to stations: the reservations the book tells it of (RESERVE_NOW,
CANCEL_RESERVATION), a vehicle's START_CHARGE / STOP_CHARGE, and the same asked by or of another hub.

Which reservations a station is sent and what each answer means is decided by
hub/domain/station_sync.py; this sends the requests, resends an unanswered one, and tells the book
StationRefused when one must move or go.
"""

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Optional


from hub.domain import authz
from hub.domain import station_sync
from hub.io.logsafe import wire_text
from hub.messages import (
    RemoteAnswer,
    RemoteRequest,
    ResyncReservations,
    ReservationEnded,
    Reserved,
    StartCharge,
    StationAnswer,
    StationRefused,
    StopCharge,
)
from hub.domain.stations import (
    Station,
    StationRequests,
    Stations,
    relay_outcome,
)
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_INVALID_STATE, E_NOT_FOUND, E_TIMEOUT, error_name


REQUEST_TRIES = 3  # sends of one hub->station request before "the station did not answer"
FORWARD_TIMEOUT_S = 20.0  # real seconds a request forwarded to another hub waits (its home resends meanwhile)


# The registry's log: operators (and tests) read one logger for the whole actor.
log = logging.getLogger("hub.actors.registry")


class StationRequesting:
    """Mixed into StationRegistry: requests to stations, and their answers."""

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
        if self._news_pending(st, msg.vehicle_id, msg.reservation_id, msg):
            return
        self._start(msg.vehicle_id, st, msg.reservation_id, msg.ev, relay)

    def _news_pending(self, st: Station, vehicle_id: str, reservation_id: Optional[int], msg: Any) -> bool:
        """Several hubs: a vehicle may ask to start right after another hub booked its window, before
        that news reached this hub. Then the book re-reads the station's reservations and the request
        comes back after the news (once: `msg` is marked so)."""
        if self.cluster is None or self.book is None or getattr(msg, "retried", False):
            return False
        if authz.current_window(st.windows, vehicle_id, self.clock(), reservation_id) is not None:
            return False
        again = (
            msg._replace(body=dict(msg.body, retried=True))
            if isinstance(msg, RemoteRequest)
            else msg._replace(retried=True)
        )
        self.book.tell(ResyncReservations(st.id, then=(self.actor_ref, again)))
        return True

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
                st = self._station(msg.station_id)
                if not body.get("retried") and self._news_pending(st, body["vehicle_id"], body["reservation_id"], msg):
                    return
                self._start(body["vehicle_id"], st, body["reservation_id"], body["ev"], answer)
            elif msg.kind == "stop":
                st = self.stations.session_to_stop(body["vehicle_id"], body["session_id"])
                self._request_station(st.id, K.REMOTE_STOP, [body["session_id"]], answer)
            else:
                log.warning("cluster: unknown request %r from hub %s", msg.kind, msg.reply_hub)
                answer((K.ERROR, [E_BAD_FIELD, "unknown request %s" % msg.kind]))
        except authz.Refusal as exc:
            answer((K.ERROR, [exc.code, exc.text]))

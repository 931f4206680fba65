"""ReservationBookActor: the thin Pykka actor around hub/domain/booking.py.

It owns its state on its own thread and is driven by the typed messages of hub/messages.py, sent
with `tell`. Nothing here blocks on another actor (no `.get()` inside an actor): replies go out
through the Outbox given at construction (thread-safe `send(link_id, msg)`, drained by the
gateway's loop), and news for other actors goes by `tell`.

Messages: ReserveBatch, Cancel, ListReservations, BookTick, SessionStarted, SessionEnded,
StationCapacity, PeerRemoved, NearbySource, BookCall (see hub/messages.py).
A ReserveBatch is decided in order and stored in ONE transaction (group commit), then each
request is answered exactly once: RESERVE_RESULT(seq, ok, reservation_id, alternatives, reason)
or ERROR(seq, code, text); then its `done` is called, which is how the router learns the
book is free for the next batch. It tells the registry (if given) Reserved and
ReservationEnded, so stations get RESERVE_NOW / CANCEL_RESERVATION.
"""

import logging
import time
from typing import Any, Callable

import pykka

from hub.domain.booking import (
    DEFAULT_GRACE_S,
    DEFAULT_MAX_OPEN_PER_VEHICLE,
    DEFAULT_SESSION_S,
    BookingError,
    ReservationBook,
)
from hub.domain.locator import PublishedIndex
from hub.messages import (
    BookCall,
    BookTick,
    Cancel,
    ListReservations,
    NearbySource,
    PeerRemoved,
    ReservationEnded,
    Reserved,
    ReservationChanged,
    ResyncReservations,
    SessionsChanged,
    ReserveBatch,
    SessionEnded,
    SessionStarted,
    StationCapacity,
    StationRefused,
    Subscribe,
)
from hub.store.store import Store
from transport import kinds as K
from transport.errors import E_INTERNAL
from transport.messages import make

log = logging.getLogger(__name__)


def reservation_map(r: Any) -> "dict[str, Any]":
    """A reservation as sent in RESERVATIONS."""
    return {
        "reservation_id": r.id,
        "station_id": r.station_id,
        "connector": r.connector,
        "start": r.start,
        "end": r.end,
        "state": r.state,
    }


class ReservationBookActor(pykka.ThreadingActor):
    def __init__(
        self,
        store_path: str,
        outbox: Any,
        clock: Callable[[], float] = time.time,
        registry: Any = None,
        locator: Any = None,
        nearby: Any = None,
        grace_s: float = DEFAULT_GRACE_S,
        session_estimate_s: float = DEFAULT_SESSION_S,
        events: Any = None,
        max_open_per_vehicle: int = DEFAULT_MAX_OPEN_PER_VEHICLE,
        cluster: Any = None,
    ) -> None:
        super().__init__()
        self.cluster = cluster  # hub.cluster.node.ClusterNode when several hubs share PostgreSQL, else None
        self._adopting = False  # handling another hub's change: not announced back
        self._max_open = max_open_per_vehicle
        self.events = events  # hub.events.EventBus or None: every reservation change is published
        self.store_path = store_path
        self.outbox = outbox
        self.clock = clock
        self.registry = registry
        self.locator = locator  # a LocatorActor ref or a PublishedIndex; only for alternatives
        self._nearby = nearby
        self._grace_s = grace_s
        self._session_estimate_s = session_estimate_s
        self.store: Any = None
        self.book: Any = None

    def on_start(self) -> None:
        # The sqlite connection is created here, so it belongs to this actor's thread.
        self.store = Store(self.store_path)
        nearby = self._nearby
        if nearby is None and isinstance(self.locator, PublishedIndex):
            nearby = self.locator.nearby()
        self.book = ReservationBook(self.store, nearby, self._grace_s, self._session_estimate_s, self._max_open)
        self.book.load()
        if nearby is None and isinstance(self.locator, pykka.ActorRef):
            self.locator.tell(Subscribe(self.actor_ref))  # answered by a tell, never awaited
        if self.registry is not None:
            # After a restart the registry knows no windows; give it every open one.
            for r in self.book.open_reservations():
                self.registry.tell(Reserved(r.id, r.station_id, r.vehicle_id, r.start, r.end, r.connector))

    def on_stop(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        log.error("book: actor failed: %s", exc_value)
        self.on_stop()

    # --- plumbing -------------------------------------------------------------------------

    def _send(self, link_id: Any, msg: Any) -> None:
        try:
            self.outbox.send(link_id, msg)
        except Exception:  # a vanished link must not take the book down
            log.exception("link %s: reply could not be queued", link_id)

    def _error(self, link_id: Any, seq: int, code: int, text: str) -> None:
        self._send(link_id, make(K.ERROR, seq, code, text))

    def _flush_events(self) -> None:
        events = self.book.take_events()
        if self.cluster is not None and not self._adopting:
            for ev in events:  # after the commit: every other hub's book and registry follow
                self.cluster.announce_reservation(ev[1].id, ev[1].station_id, ev[1].state)
        if self.events is not None:
            for ev in events:
                self.events.publish("reservation", ev[1])  # a Reservation; state confirmed or why it ended
        if self.registry is None:
            return
        for ev in events:
            r = ev[1]
            if ev[0] == "reserved":
                self.registry.tell(Reserved(r.id, r.station_id, r.vehicle_id, r.start, r.end, r.connector))
            else:
                self.registry.tell(ReservationEnded(r.id, r.station_id, ev[2]))

    def on_receive(self, message: object) -> object:
        handler = self._handlers.get(type(message))
        if handler is None:
            log.error("book: unknown message %s", type(message).__name__)
            return None
        try:
            return handler(self, message)
        except Exception:
            # pykka stops an actor whose on_receive raises; the book must outlive one bad message.
            # Each handler answers its own requests, also when it fails: nothing is answered here.
            log.exception("book: failed handling %s", type(message).__name__)
            return None
        finally:
            if self.book is not None:
                self._flush_events()

    # --- handlers --------------------------------------------------------------------------

    def _on_reserve_batch(self, msg: ReserveBatch) -> None:
        now = self.clock() if msg.now is None else msg.now
        requests = list(msg.requests)
        try:
            try:
                results = self.book.reserve_many(
                    [(r.vehicle_id, r.station_id, r.start, r.end, r.request_id) for r in requests], now
                )
            except Exception:
                log.exception("book: a batch of %d reservations failed", len(requests))
                for req in requests:  # each seq answered once, here, and nowhere else
                    self._error(req.link_id, req.seq, E_INTERNAL, "internal error; try again")
                return
            # The registry hears of the new reservations before the vehicles do, so a vehicle that starts
            # charging right after its RESERVE_RESULT finds its window open (actor mailboxes are FIFO).
            try:
                self._flush_events()
            except Exception:  # the batch is committed: its vehicles are answered whatever happens here
                log.exception("book: could not tell the news of a batch")
            # Every reply goes out after the batch's single COMMIT returned.
            for req, res in zip(requests, results):
                if isinstance(res, BookingError):
                    self._error(req.link_id, req.seq, res.code, res.text)
                else:
                    rid = res.reservation.id if res.ok else None
                    self._send(req.link_id, make(K.RESERVE_RESULT, req.seq, res.ok, rid, res.alternatives, res.reason))
        finally:
            if msg.done is not None:
                msg.done()

    def _on_cancel(self, msg: Cancel) -> None:
        try:
            self.book.cancel(msg.vehicle_id, msg.reservation_id)
        except BookingError as exc:
            self._error(msg.link_id, msg.seq, exc.code, exc.text)
            return
        except Exception:
            self._error(msg.link_id, msg.seq, E_INTERNAL, "internal error; try again")
            raise
        self._send(msg.link_id, make(K.ACK, msg.seq))

    def _on_list(self, msg: ListReservations) -> None:
        try:
            maps = [reservation_map(r) for r in self.book.list_for(msg.vehicle_id)]
        except Exception:
            self._error(msg.link_id, msg.seq, E_INTERNAL, "internal error; try again")
            raise
        self._send(msg.link_id, make(K.RESERVATIONS, msg.seq, maps))

    def _on_tick(self, msg: BookTick) -> None:
        self.book.expire_no_shows(self.clock() if msg.now is None else msg.now)

    def _on_session_started(self, msg: SessionStarted) -> None:
        self.book.session_started(
            msg.station_id,
            msg.connector,
            msg.vehicle_id,
            msg.reservation_id,
            msg.started,
            msg.expected_end,
            msg.session_id,
        )

    def _on_session_ended(self, msg: SessionEnded) -> None:
        self.book.session_ended(
            msg.session_id, msg.station_id, msg.connector, msg.vehicle_id, msg.reservation_id, msg.ended
        )

    def _on_peer_removed(self, msg: PeerRemoved) -> None:
        """`evhub stations|vehicles remove`: the CLI cancelled the open reservations in the store; they
        leave memory here, and each vehicle still online is told with an unsolicited RESERVATIONS
        (seq 0) listing its reservations that were cancelled."""
        told: "dict[str, list[dict]]" = {}
        for r in self.book.forget_peer(msg.role, msg.peer_id):
            told.setdefault(r.vehicle_id, []).append(reservation_map(r))
        for vehicle_id, maps in told.items():
            try:
                self.outbox.send_to_peer("vehicle", vehicle_id, make(K.RESERVATIONS, 0, maps))
            except Exception:
                log.exception("vehicle %s: could not be told of its cancelled reservations", vehicle_id)

    def _on_station_refused(self, msg: StationRefused) -> None:
        r = self.book.get(msg.reservation_id)
        if r is None or r.station_id != msg.station_id:
            return  # ended meanwhile
        if msg.movable and self.book.move(msg.reservation_id, msg.connector, self.clock()) is not None:
            return  # the registry hears Reserved(... new connector) and sends it
        r = self.book.cancel_refused(msg.reservation_id, msg.text)
        try:  # as for a removed station: an unsolicited RESERVATIONS lists what was cancelled
            self.outbox.send_to_peer("vehicle", r.vehicle_id, make(K.RESERVATIONS, 0, [reservation_map(r)]))
        except Exception:
            log.exception("vehicle %s: could not be told of its cancelled reservation", r.vehicle_id)

    def _on_station(self, msg: StationCapacity) -> None:
        if type(msg.connectors) is not int or msg.connectors < 1:
            log.warning("station %s: ignoring capacity %r", msg.station_id, msg.connectors)
            return
        self.book.set_station(msg.station_id, msg.connectors)

    def _on_nearby_source(self, msg: NearbySource) -> None:
        self.book.set_nearby(msg.published.nearby())

    def _on_call(self, msg: BookCall) -> None:
        """Run fn(book) on this thread; reply(result, None) or reply(None, exception). For callers that
        must not block (the HTTP API): reply hops back to their loop itself."""
        try:
            result = msg.fn(self.book)
        except Exception as exc:  # BookingError mostly; the caller turns it into an answer
            msg.reply(None, exc)
        else:
            self._flush_events()  # as for RESERVE: the registry first, then the caller
            msg.reply(result, None)

    def _on_reservation_changed(self, msg: ReservationChanged) -> None:
        """Another hub changed a reservation in the shared store (hub/cluster): memory follows, and the
        registry hears of it as of this hub's own, so a station homed here gets RESERVE_NOW."""
        self._adopting = True
        try:
            self.book.adopt(msg.reservation_id)
            self._flush_events()
        finally:
            self._adopting = False

    def _on_resync(self, msg: ResyncReservations) -> None:
        self._adopting = True
        try:
            changed = self.book.resync(msg.station_id)
            if changed:
                log.info("book: %d reservations made or ended on other hubs picked up from the store", changed)
            self._flush_events()
        finally:
            self._adopting = False
        if msg.then is not None:  # after the registry's news (mailboxes are FIFO): a request that waited for it
            msg.then[0].tell(msg.then[1])

    def _on_sessions_changed(self, msg: SessionsChanged) -> None:
        rows = [row for row in self.store.load_open_sessions() if row["station_id"] == msg.station_id]
        self.book.follow_sessions(msg.station_id, rows)

    _handlers: "dict[type, Callable[[ReservationBookActor, Any], Any]]" = {
        SessionsChanged: _on_sessions_changed,
        ReservationChanged: _on_reservation_changed,
        ResyncReservations: _on_resync,
        BookCall: _on_call,
        ReserveBatch: _on_reserve_batch,
        Cancel: _on_cancel,
        ListReservations: _on_list,
        BookTick: _on_tick,
        SessionStarted: _on_session_started,
        SessionEnded: _on_session_ended,
        StationCapacity: _on_station,
        PeerRemoved: _on_peer_removed,
        StationRefused: _on_station_refused,
        NearbySource: _on_nearby_source,
    }

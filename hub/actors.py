"""Thin Pykka actors around the domain core: ReservationBookActor and LocatorActor.

Each actor owns its state on its own thread and is driven by immutable tuples sent
with `tell`. Nothing here blocks on another actor (no `.get()` inside an actor):
replies go out through the injected `outbox` (thread-safe `send(link_id, msg)`,
provided by the gateway), and news for other actors goes by `tell`.

ReservationBookActor messages (op first):
  ("reserve", link_id, seq, vehicle_id, station_id, start, end)
  ("reserve_batch", [(link_id, seq, vehicle_id, station_id, start, end[, request_id]), ...][, now])
        decided in order, stored in ONE transaction (group commit), then answered:
        RESERVE_RESULT(seq, ok, reservation_id, alternatives, reason), or ERROR(seq, code, text)
  ("cancel", link_id, seq, vehicle_id, reservation_id)      -> ACK(seq) or ERROR
  ("list", link_id, seq, vehicle_id)                        -> RESERVATIONS(seq, [map])
  ("tick", now)                                             expire no-shows
  ("session_started", station_id, connector, vehicle_id, reservation_id, started, expected_end[, session_id])
  ("session_ended", station_id, connector, session_id, vehicle_id, reservation_id, ended)
  ("station", station_id, connectors)                       capacity learned at boot
  ("peer_removed", role, peer_id)                           a removed station/vehicle: its reservations go
  ("nearby_source", published_index)                        from the LocatorActor (see below)
  ("next_change", station_id, now)                          returns (busy_until, next_start) to an ask
  ("station_refused", id, station_id, connector, movable, text)  the station refused RESERVE_NOW: moved to
                                                            another connector, else cancelled and its vehicle told
  ("call", fn, reply)                                       reply(fn(book), None) or reply(None, exc)
It tells the registry (if given) ("reserved", id, station_id, vehicle_id, start, end, connector) and
("reservation_ended", id, station_id, why) so stations get RESERVE_NOW / CANCEL_RESERVATION.

LocatorActor messages:
  ("upsert", station_id, lat, lon), ("upsert_many", [(station_id, lat, lon)]), ("remove", station_id)
  ("subscribe", actor_ref)  -> tells actor_ref ("nearby_source", published_index)
Readers on other threads never ask it: they hold its PublishedIndex (from the constructor
or `snapshot_source()`), whose `current` is a frozen SpatialIndex swapped by reference.
Publishing is coalesced: a new snapshot is made only when the inbox is empty, so a burst
of 100k upserts costs one snapshot, not 100k.
"""

import logging
import time

import pykka

from hub.booking import DEFAULT_GRACE_S, DEFAULT_MAX_OPEN_PER_VEHICLE, DEFAULT_SESSION_S, BookingError, ReservationBook
from hub.locator import DEFAULT_CELL_DEG, PublishedIndex, SpatialIndex
from hub.store import Store
from transport import kinds as K
from transport.errors import E_INTERNAL
from transport.messages import make

log = logging.getLogger(__name__)


def reservation_map(r):
    """A reservation as sent in RESERVATIONS."""
    return {"reservation_id": r.id, "station_id": r.station_id, "connector": r.connector,
            "start": r.start, "end": r.end, "state": r.state}


class ReservationBookActor(pykka.ThreadingActor):
    def __init__(self, store_path, outbox, clock=time.time, registry=None, locator=None, nearby=None,
                 grace_s=DEFAULT_GRACE_S, session_estimate_s=DEFAULT_SESSION_S, events=None,
                 max_open_per_vehicle=DEFAULT_MAX_OPEN_PER_VEHICLE):
        super().__init__()
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
        self.store = None
        self.book = None

    def on_start(self):
        # The sqlite connection is created here, so it belongs to this actor's thread.
        self.store = Store(self.store_path)
        nearby = self._nearby
        if nearby is None and isinstance(self.locator, PublishedIndex):
            nearby = self.locator.nearby()
        self.book = ReservationBook(self.store, nearby, self._grace_s, self._session_estimate_s, self._max_open)
        self.book.load()
        if nearby is None and isinstance(self.locator, pykka.ActorRef):
            self.locator.tell(("subscribe", self.actor_ref))  # answered by a tell, never awaited
        if self.registry is not None:
            # After a restart the registry knows no windows; give it every open one.
            for r in self.book.open_reservations():
                self.registry.tell(("reserved", r.id, r.station_id, r.vehicle_id, r.start, r.end, r.connector))

    def on_stop(self):
        if self.store is not None:
            self.store.close()
            self.store = None

    def on_failure(self, exc_type, exc_value, tb):
        log.error("book: actor failed: %s", exc_value)
        self.on_stop()

    # --- plumbing -------------------------------------------------------------------------

    def _send(self, link_id, msg):
        try:
            self.outbox.send(link_id, msg)
        except Exception:  # a vanished link must not take the book down
            log.exception("link %s: reply could not be queued", link_id)

    def _error(self, link_id, seq, code, text):
        self._send(link_id, make(K.ERROR, seq, code, text))

    def _flush_events(self):
        events = self.book.take_events()
        if self.events is not None:
            for ev in events:
                self.events.publish("reservation", ev[1])  # a Reservation; state confirmed or why it ended
        if self.registry is None:
            return
        for ev in events:
            r = ev[1]
            if ev[0] == "reserved":
                self.registry.tell(("reserved", r.id, r.station_id, r.vehicle_id, r.start, r.end, r.connector))
            else:
                self.registry.tell(("reservation_ended", r.id, r.station_id, ev[2]))

    def on_receive(self, message):
        try:
            handler = self._handlers.get(message[0]) if type(message) is tuple and message else None
            if handler is None:
                log.error("book: unknown message %r", message[:1] if type(message) is tuple else type(message))
                return None
            return handler(self, *message[1:])
        except Exception:
            # pykka stops an actor whose on_receive raises; the book must outlive one bad message.
            log.exception("book: failed handling %r", message[0])
            if len(message) > 2 and message[0] in ("reserve", "cancel", "list"):  # batch answers itself
                self._error(message[1], message[2], E_INTERNAL, "internal error; try again")
            return None
        finally:
            if self.book is not None:
                self._flush_events()

    # --- handlers --------------------------------------------------------------------------

    def _on_reserve(self, link_id, seq, vehicle_id, station_id, start, end):
        self._on_reserve_batch([(link_id, seq, vehicle_id, station_id, start, end)])

    def _on_reserve_batch(self, requests, now=None):
        now = self.clock() if now is None else now
        requests = list(requests)
        try:
            results = self.book.reserve_many([tuple(req[2:7]) for req in requests], now)
        except Exception:
            for req in requests:
                self._error(req[0], req[1], E_INTERNAL, "internal error; try again")
            raise
        # The registry hears of the new reservations before the vehicles do, so a vehicle that starts
        # charging right after its RESERVE_RESULT finds its window open (actor mailboxes are FIFO).
        self._flush_events()
        # Every reply goes out after the batch's single COMMIT returned.
        for req, res in zip(requests, results):
            link_id, seq = req[0], req[1]
            if isinstance(res, BookingError):
                self._error(link_id, seq, res.code, res.text)
            else:
                rid = res.reservation.id if res.ok else None
                self._send(link_id, make(K.RESERVE_RESULT, seq, res.ok, rid, res.alternatives, res.reason))

    def _on_cancel(self, link_id, seq, vehicle_id, reservation_id):
        try:
            self.book.cancel(vehicle_id, reservation_id)
        except BookingError as exc:
            self._error(link_id, seq, exc.code, exc.text)
            return
        self._send(link_id, make(K.ACK, seq))

    def _on_list(self, link_id, seq, vehicle_id):
        self._send(link_id, make(K.RESERVATIONS, seq, [reservation_map(r) for r in self.book.list_for(vehicle_id)]))

    def _on_tick(self, now=None):
        self.book.expire_no_shows(self.clock() if now is None else now)

    def _on_session_started(self, station_id, connector, vehicle_id, reservation_id, started, expected_end,
                            session_id=None):
        self.book.session_started(station_id, connector, vehicle_id, reservation_id, started, expected_end,
                                  session_id)

    def _on_session_ended(self, station_id, connector, session_id, vehicle_id, reservation_id, ended):
        self.book.session_ended(session_id, station_id, connector, vehicle_id, reservation_id, ended)

    def _on_peer_removed(self, role, peer_id):
        """`evhub stations|vehicles remove`: the CLI cancelled the open reservations in the store; they
        leave memory here, and each vehicle still online is told with an unsolicited RESERVATIONS
        (seq 0) listing its reservations that were cancelled."""
        told = {}
        for r in self.book.forget_peer(role, peer_id):
            told.setdefault(r.vehicle_id, []).append(reservation_map(r))
        for vehicle_id, maps in told.items():
            try:
                self.outbox.send_to_peer("vehicle", vehicle_id, make(K.RESERVATIONS, 0, maps))
            except Exception:
                log.exception("vehicle %s: could not be told of its cancelled reservations", vehicle_id)

    def _on_station_refused(self, rid, station_id, connector, movable, text):
        r = self.book.get(rid)
        if r is None or r.station_id != station_id:
            return  # ended meanwhile
        if movable and self.book.move(rid, connector, self.clock()) is not None:
            return  # the registry hears ("reserved", ... new connector) and sends it
        r = self.book.cancel_refused(rid, text)
        try:  # as for a removed station: an unsolicited RESERVATIONS lists what was cancelled
            self.outbox.send_to_peer("vehicle", r.vehicle_id, make(K.RESERVATIONS, 0, [reservation_map(r)]))
        except Exception:
            log.exception("vehicle %s: could not be told of its cancelled reservation", r.vehicle_id)

    def _on_station(self, station_id, connectors):
        if type(connectors) is not int or connectors < 1:
            log.warning("station %s: ignoring capacity %r", station_id, connectors)
            return
        self.book.set_station(station_id, connectors)

    def _on_nearby_source(self, published):
        self.book.set_nearby(published.nearby())

    def _on_next_change(self, station_id, now=None):
        return self.book.next_change(station_id, self.clock() if now is None else now)

    def _on_call(self, fn, reply):
        """Run fn(book) on this thread; reply(result, None) or reply(None, exception). For callers that
        must not block (the HTTP API): reply hops back to their loop itself."""
        try:
            result = fn(self.book)
        except Exception as exc:  # BookingError mostly; the caller turns it into an answer
            reply(None, exc)
        else:
            self._flush_events()  # as for RESERVE: the registry first, then the caller
            reply(result, None)

    _handlers = {
        "call": _on_call,
        "reserve": _on_reserve,
        "reserve_batch": _on_reserve_batch,
        "cancel": _on_cancel,
        "list": _on_list,
        "tick": _on_tick,
        "session_started": _on_session_started,
        "session_ended": _on_session_ended,
        "station": _on_station,
        "peer_removed": _on_peer_removed,
        "station_refused": _on_station_refused,
        "nearby_source": _on_nearby_source,
        "next_change": _on_next_change,
    }


class LocatorActor(pykka.ThreadingActor):
    def __init__(self, published=None, cell_deg=DEFAULT_CELL_DEG, stations=()):
        super().__init__()
        self.index = SpatialIndex(cell_deg)
        self.published = published if published is not None else PublishedIndex()
        self._initial = list(stations)  # (station_id, lat, lon)
        self._dirty = False

    def on_start(self):
        for station_id, lat, lon in self._initial:
            self._upsert(station_id, lat, lon)
        self._initial = None
        self._publish()

    def snapshot_source(self):
        """The PublishedIndex readers use (fetch it once, at wiring time, from outside any actor)."""
        return self.published

    def _publish(self):
        self.published.publish(self.index.frozen())
        self._dirty = False

    def _upsert(self, station_id, lat, lon):
        try:
            if self.index.upsert(station_id, lat, lon):
                self._dirty = True  # a BOOT that repeats a known position changes nothing to publish
        except ValueError as exc:
            log.warning("station %s: not indexed, bad position: %s", station_id, exc)

    def on_receive(self, message):
        try:
            op = message[0]
            if op == "upsert":
                self._upsert(message[1], message[2], message[3])
            elif op == "upsert_many":
                for station_id, lat, lon in message[1]:
                    self._upsert(station_id, lat, lon)
            elif op == "remove":
                if self.index.remove(message[1]):
                    self._dirty = True
                    log.info("station %s: removed from the locator", message[1])
            elif op == "subscribe":
                message[1].tell(("nearby_source", self.published))
            else:
                log.error("locator: unknown message %r", op)
        except Exception:
            log.exception("locator: failed handling %r", message[:1])
        # Coalesce: one snapshot per burst, made when nothing else is waiting.
        if self._dirty and self.actor_inbox.empty():
            self._publish()
        return None


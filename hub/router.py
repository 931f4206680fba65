"""Routes each validated message from a link to the actor that owns its state.

Runs in the I/O loop. Never asks an actor: it tells, or answers from snapshots
the actors publish (nearest stations, station list). Positions and reservation
requests are gathered per loop wakeup and told as one batch, because a tell
costs ~8 µs and a batch costs the same.
"""

import logging
import math
import struct
import time

from hub.domain.bounds import MAX_ID_LEN
from hub.domain.states import CANNOT_CHARGE, StationStatus
from hub.events import station_entry
from hub.io.limits import LoginThrottle
from hub.messages import (
    Boot,
    BookTick,
    Cancel,
    ListReservations,
    ListSessions,
    Meter,
    Positions,
    RegistryTick,
    ReservationHistory,
    ReservationRefused,
    ReserveBatch,
    ReserveRequest,
    SessionEnd,
    SessionStart,
    StartCharge,
    Status,
    StationOffline,
    StationOnline,
    StopCharge,
)
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_OVERLOADED, ProtocolError
from transport.codec import packb
from transport.messages import make

log = logging.getLogger(__name__)

MAX_K = 50
BOOK_BATCH_STALE_S = 10  # a batch the book never confirmed (it crashed?) stops holding back the next


_NEAREST_HEAD = bytes((0x93, K.NEAREST_RESULT))  # fixarray of 3, then the kind (a positive fixint)
_DISTANCE_KEY = packb("distance_km")
_F64 = struct.Struct(">Bd").pack  # msgpack float 64, as packb packs a Python float
_U16 = struct.Struct(">BH").pack
_U32 = struct.Struct(">BI").pack


def _pack_uint(n):
    """packb(n) for an int in 0..2**32-1 (a seq): the smallest msgpack form, as the codec packs it."""
    if n < 128:
        return bytes((n,))
    if n < 256:
        return bytes((0xCC, n))
    if n < 65536:
        return _U16(0xCD, n)
    return _U32(0xCE, n)


# A station's frame becomes the registry's message of its kind: (station_id, link_id, seq, *fields).
STATION_MESSAGES = {
    K.BOOT: Boot,
    K.STATUS: Status,
    K.METER: Meter,
    K.SESSION_START: SessionStart,
    K.SESSION_END: SessionEnd,
    K.RESERVATION_REFUSED: ReservationRefused,
}
STATION_KINDS = tuple(STATION_MESSAGES)
_NEAREST = K.NEAREST
_POSITION = K.POSITION


def _finite_number(value):
    return type(value) in (int, float) and math.isfinite(value)


FILTER_KEYS = ("available", "eta_min", "min_kw")
MAX_WAITING_RESERVATIONS = 20000  # requests gathered while the book commits the previous batch


def _check_filters(filters, seq):
    """NEAREST filters: {"available": bool, "eta_min": number >= 0, "min_kw": number >= 0}, all optional."""
    for key, value in filters.items():
        if key == "available":
            ok = type(value) is bool
        elif key in ("eta_min", "min_kw"):
            ok = value is None or (_finite_number(value) and value >= 0)
        else:
            raise ProtocolError(E_BAD_FIELD, "unknown filter %r (known: %s)" % (key, ", ".join(FILTER_KEYS)), seq)
        if not ok:
            raise ProtocolError(
                E_BAD_FIELD,
                "filter %s must be %s" % (key, "true or false" if key == "available" else "a number >= 0"),
                seq,
            )


def _check_position(lat, lon, seq):
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or lat != lat or lon != lon:
        raise ProtocolError(E_BAD_FIELD, "position out of range: lat must be -90..90 and lon -180..180", seq)


class Router:
    def __init__(self, registry, book, tracker, locator_index, clock, config):
        self.registry = registry  # actor ref
        self.registry_view = None  # set by the daemon: StationRegistry.view (dict snapshot)
        self.book = book
        self.tracker = tracker
        self.index = locator_index  # object with nearest(lat, lon, k, accept) -> [(km, id)]
        self.clock = clock
        self.config = config
        self.gateway = None
        self.counters = {}
        self._positions = []
        self._reservations = []
        self._flush_scheduled = False
        # Group commit: one reservation batch at the book at a time (each batch is one fsync'd
        # transaction); what arrives meanwhile waits here and becomes the next, bigger batch.
        self._book_busy_since = None
        self._packed = {}  # station id -> (StationView, packed map head, packed map tail), see _nearest
        self.logins = LoginThrottle(
            free=config.get("login_failures_free", 5), global_per_s=config.get("login_failures_per_s", 50)
        )
        self.revocations = None  # hub.io.revocation.RevocationWatch, set by the daemon
        self._waiting_by_vehicle = {}  # vehicle id -> its requests in self._reservations (fair share)
        self.max_waiting_per_vehicle = config.get("max_waiting_reservations_per_vehicle", 10)

    def attach(self, gateway):
        self.gateway = gateway

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    # --- link lifecycle ---------------------------------------------------------------

    def login_wait(self, link):
        return self.logins.wait_s(link.address, link.session.role, link.session.peer_id)

    def login_failed(self, link):
        self.logins.failed(link.address, link.session.role, link.session.peer_id)

    def login_succeeded(self, link):
        self.logins.succeeded(link.address, link.session.role, link.session.peer_id)

    def peer_up(self, link):
        s = link.session
        if self.revocations is not None and self.revocations.revoked_since(s.role, s.peer_id, link.opened_at):
            log.warning("%s: its key was revoked during the handshake, closing", link.label)
            link.shutdown()
            return
        if not self.gateway.bind_peer(link):
            return
        if link.session.role == "station":
            self.registry.tell(StationOnline(link.session.peer_id))

    def peer_down(self, link):
        log.info("%s: link closed", link.label)
        if link.session.role == "station":
            self.registry.tell(StationOffline(link.session.peer_id, "link closed"))

    def peer_silent(self, link):
        if link.session.role == "station":
            self.registry.tell(StationOffline(link.session.peer_id, "missed 3 heartbeats"))
        link.shutdown()

    def tick(self):
        now = self.clock()
        if self._book_busy_since is not None and time.monotonic() - self._book_busy_since > BOOK_BATCH_STALE_S:
            log.warning(
                "book: no word on a reservation batch for %d s; sending the next one anyway", BOOK_BATCH_STALE_S
            )
            self._book_done()
        self.registry.tell(RegistryTick(now))
        self.book.tell(BookTick(now))

    # --- dispatch ------------------------------------------------------------------------

    def dispatch(self, link, kind, seq, fields):
        counters = self.counters
        counters["messages_in"] = counters.get("messages_in", 0) + 1
        if kind == _NEAREST:  # the hot kinds first; kinds are distinct, so the order changes nothing else
            self._nearest(link, seq, fields)
            return
        role = link.session.role
        peer = link.session.peer_id
        if kind == _POSITION:
            lat, lon, when, soc = fields
            _check_position(lat, lon, seq)
            if soc is not None and not (_finite_number(soc) and 0 <= soc <= 1):
                raise ProtocolError(E_BAD_FIELD, "soc must be a number 0..1 (state of charge) or nil", seq)
            self._positions.append((peer, lat, lon, when, soc))
            self._schedule_flush()
        elif kind in STATION_KINDS:
            self.registry.tell(STATION_MESSAGES[kind](peer, link.id, seq, *fields))
        elif kind == K.RESERVE:
            station_id, start, end, request_id = fields
            if request_id is not None and not 0 < len(request_id) <= MAX_ID_LEN:
                raise ProtocolError(E_BAD_FIELD, "request_id must be 1..%d characters or nil" % MAX_ID_LEN, seq)
            if len(self._reservations) >= MAX_WAITING_RESERVATIONS:
                # The book is behind by a whole batch's worth: say so instead of queueing without bound.
                self.count("reservations_overloaded")
                raise ProtocolError(E_OVERLOADED, "the hub is busy with reservations; retry shortly", seq)
            waiting = self._waiting_by_vehicle.get(peer, 0)
            if waiting >= self.max_waiting_per_vehicle:
                # Fair share of the waiting queue: one vehicle cannot fill it and starve the others.
                # Answered, not counted as a bad message: pipelining is allowed, only not past a fair share.
                self.count("reservations_overloaded")
                link.session.send_error(
                    E_OVERLOADED,
                    "you have %d reservation requests waiting (the limit is %d);"
                    " wait for their answers" % (waiting, self.max_waiting_per_vehicle),
                    seq,
                )
                return
            self._waiting_by_vehicle[peer] = waiting + 1
            self._reservations.append(ReserveRequest(link.id, seq, peer, station_id, start, end, request_id))
            self._schedule_flush()
        elif kind == K.CANCEL:
            self.book.tell(Cancel(link.id, seq, peer, fields[0]))
        elif kind == K.LIST_RESERVATIONS:
            self.book.tell(ListReservations(link.id, seq, peer))
        elif kind == K.START_CHARGE:
            station_id, reservation_id, ev = fields
            self.registry.tell(StartCharge(link.id, seq, peer, station_id, reservation_id, ev))
        elif kind == K.STOP_CHARGE:
            self.registry.tell(StopCharge(link.id, seq, peer, fields[0]))
        elif kind == K.RESERVATION_HISTORY:
            self.registry.tell(ReservationHistory(link.id, seq, peer))  # past ones live in the store
        elif kind == K.LIST_SESSIONS:
            self.registry.tell(ListSessions(link.id, seq, peer))  # the registry's store records them
        elif kind == K.STATIONS_LIST:
            link.send(make(K.STATIONS, seq, self.station_list()))
        elif kind == K.HUB_STATS:
            link.send(make(K.STATS, seq, self.stats()))
        else:
            raise ProtocolError(E_FORBIDDEN, "%s may not send %s" % (role, K.kind_name(kind)), seq)

    def _schedule_flush(self):
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.gateway.loop.call_soon(self._flush_batches)

    def _flush_batches(self):
        self._flush_scheduled = False
        if self._positions:
            batch, self._positions = self._positions, []
            self.count("positions", len(batch))
            self.tracker.tell(Positions(batch))
        if self._reservations and self._book_busy_since is None:
            batch, self._reservations = self._reservations, []
            self._waiting_by_vehicle = {}
            self._book_busy_since = time.monotonic()
            # The book calls `done` (on its thread) once the batch is committed and every request answered.
            self.book.tell(ReserveBatch(batch, self.clock(), self._book_done_threadsafe))

    def _book_done_threadsafe(self) -> None:
        try:
            self.gateway.loop.call_soon_threadsafe(self._book_done)
        except RuntimeError:  # the loop is closed: the hub is stopping
            pass

    def _book_done(self):
        self._book_busy_since = None
        if self._reservations:
            self._flush_batches()

    # --- answered from snapshots, in the loop ------------------------------------------------

    def _nearest(self, link, seq, fields):
        lat, lon, k, filters = fields
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):  # NaN fails this too
            _check_position(lat, lon, seq)
        if k < 1 or k > MAX_K:
            raise ProtocolError(E_BAD_FIELD, "k must be 1..%d" % MAX_K, seq)
        view = self.registry_view
        accept = None
        if filters:  # None or {}: no filter
            _check_filters(filters, seq)
            if filters.get("available"):
                accept = lambda sid: (v := view.get(sid)) is not None and v.status == StationStatus.AVAILABLE  # noqa: E731
            elif filters.get("eta_min") is not None:
                eta = self.clock() + float(filters["eta_min"]) * 60

                def accept(sid):
                    v = view.get(sid)
                    if v is None or v.status in CANNOT_CHARGE:
                        return False
                    return v.free_at is None or v.free_at <= eta

            min_kw = filters.get("min_kw")
            if min_kw is not None:
                inner = accept
                accept = lambda sid: (  # noqa: E731
                    (v := view.get(sid)) is not None and v.max_kw >= min_kw and (inner is None or inner(sid))
                )
        # The reply is packed here from per-station pieces packed once per StationView: only the
        # distance is new per query. The bytes equal packb([NEAREST_RESULT, seq, [maps]]).
        packed = self._packed
        parts = [_NEAREST_HEAD, _pack_uint(seq), b""]  # [2]: the array header, once n is known
        add = parts.append
        for km, sid in self.index.nearest(lat, lon, k, accept):
            c = packed.get(sid)
            v = view.get(sid)
            if c is None or c[0] is not v:
                if v is None:
                    continue
                c = self._pack_station(sid, v)
            add(c[1])
            add(_F64(0xCB, round(km, 3)))
            add(c[2])
        n = (len(parts) - 3) // 3
        parts[2] = bytes((0x90 | n,)) if n < 16 else b"\xdc" + n.to_bytes(2, "big")
        link.send(b"".join(parts))

    def _pack_station(self, sid, v):
        """A NEAREST_RESULT entry packed in two halves around its distance_km, cached against the
        StationView it came from (the registry replaces views, never edits them)."""
        head = packb({"id": sid, "lat": v.lat, "lon": v.lon})
        tail = packb({"status": v.status, "free_in_min": v.free_in_min, "connectors": v.connectors, "max_kw": v.max_kw})
        pairs = head[0] + (tail[0] & 0x0F) + 1  # fixmap header: both halves' pairs plus distance_km
        c = (v, bytes((pairs,)) + head[1:] + _DISTANCE_KEY, tail[1:])  # the halves lose their own headers
        self._packed[sid] = c
        return c

    def station_list(self):
        """STATIONS: every station as the wire entry, from the same fields as the HTTP API's."""
        return [station_entry(v) for v in list(self.registry_view.values())]

    def stats(self):
        out = dict(self.counters)
        out["links"] = len(self.gateway.links) if self.gateway else 0
        out["stations"] = len(self.registry_view)
        return out

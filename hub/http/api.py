"""JSON endpoints: stations, their sessions and reservations, reservations, vehicles, health.

Where each answer comes from, so the loop never blocks:
  stations, free_in_min     the registry's published view (a dict read in the loop)
  last_heartbeat            the station's link in the gateway (last frame received)
  live sessions             LiveState, the mirror of the registry's session events
  vehicles                  the VehicleTracker's `last` dict, copied in the loop
  history, reservations     SQLite, read on a pool thread (reads.py)
  create / cancel           the ReservationBookActor, by a tell carrying a callback
"""

import asyncio
import datetime
import logging
import time

import pykka

from hub.domain.booking import MAX_DURATION_S, BookingError
from hub.events import reservation_doc, station_doc
from hub.store.reads import Reads, StoreUnavailable, run_read
from hub.http.server import HttpError, Route, json_response
from hub.messages import BookCall
from hub.domain.bounds import MAX_EPOCH, MAX_ID_LEN, MAX_RESERVATION_ID  # one bound for the wire and the API
from hub.domain.states import ReservationState
from transport import kinds as K
from transport import errors as E

log = logging.getLogger(__name__)

BOOK_TIMEOUT_S = 5.0
MAX_ID = MAX_ID_LEN
RES_STATES = (*ReservationState, "all")
RESERVE_FIELDS = {"station_id", "vehicle_id", "start", "end", "duration_min"}
BOOKING_STATUS = {
    E.E_BAD_FIELD: 400,
    E.E_NOT_FOUND: 404,
    E.E_FORBIDDEN: 403,
    E.E_INVALID_STATE: 409,
    E.E_CONFLICT: 409,
    E.E_INTERNAL: 503,
}


def parse_time(value, name):
    """Integer UTC epoch seconds, or an ISO 8601 time with an offset ("2025-05-01T14:00:00Z")."""
    if type(value) is int:
        t = value
    elif isinstance(value, str):
        try:
            dt = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise HttpError(400, "%s: %r is not an ISO 8601 time (e.g. 2025-05-01T14:00:00Z)" % (name, value)) from None
        if dt.tzinfo is None:
            raise HttpError(400, "%s: give a UTC offset (e.g. 2025-05-01T14:00:00Z), not a local time" % name)
        t = int(dt.timestamp())
    else:
        raise HttpError(400, "%s must be integer UTC epoch seconds or an ISO 8601 string" % name)
    if not 0 <= t < MAX_EPOCH:
        raise HttpError(400, "%s is out of range" % name)
    return t


def _int_or_text(raw):
    """A query argument that may be epoch seconds ("1796495400") or an ISO 8601 time."""
    return int(raw) if raw.isascii() and raw.isdigit() else raw


def _id_field(body, name):
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID:
        raise HttpError(400, "%s must be a string of 1..%d characters" % (name, MAX_ID))
    return value


def int_arg(req, name, default, lo, hi):
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, "%s must be an integer" % name) from None
    if not lo <= value <= hi:
        raise HttpError(400, "%s must be %d..%d" % (name, lo, hi))
    return value


def _settle(fut, result, error):
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class Api:
    def __init__(self, loop, clock, config, router, gateway, book, tracker_last, live, reads):
        self.loop = loop
        self.clock = clock
        self.config = config
        self.router = router
        self.gateway = gateway
        self.book = book
        self.tracker_last = tracker_last
        self.live = live
        self.reads = reads
        self.started = time.time()

    def routes(self):
        return [
            Route("GET", "/api/health", self.health),
            Route("GET", "/api/stations", self.stations),
            Route("GET", "/api/stations/{station_id}", self.station),
            Route("GET", "/api/stations/{station_id}/sessions", self.station_sessions),
            Route("GET", "/api/stations/{station_id}/reservations", self.station_reservations),
            Route("GET", "/api/sessions", self.sessions),
            Route("GET", "/api/reservations", self.reservations),
            Route("POST", "/api/reservations", self.create_reservation, write=True),
            Route("GET", "/api/reservations/{reservation_id}", self.reservation),
            Route("DELETE", "/api/reservations/{reservation_id}", self.cancel_reservation, write=True),
            Route("GET", "/api/vehicles", self.vehicles),
            Route("GET", "/api/vehicles/{vehicle_id}", self.vehicle),
        ]

    # --- helpers ---------------------------------------------------------------------------

    @property
    def view(self):
        return self.router.registry_view

    def last_heartbeat(self, station_id):
        """Hub-clock time of the last frame (ping or message) from the station's live link."""
        link = self.gateway.links.get(self.gateway.peers.get(("station", station_id)))
        if link is None or link.closed:
            return None
        # last_frame_at is on the gateway's monotonic clock, in seconds (the session's own clock counts ms).
        return self.clock() - (time.monotonic() - link.last_frame_at) * self.config["speedup"]

    def station_json(self, v):
        return station_doc(v, self.last_heartbeat(v.id))

    async def read(self, fn, *args):
        try:
            return await run_read(self.reads, fn, *args)
        except StoreUnavailable as exc:
            log.error("http: store read failed: %s", exc)
            raise HttpError(503, "the store is not available: %s" % exc) from None

    async def known_station(self, station_id):
        """The station's view, or a 404. A station provisioned a moment ago is in the store first."""
        v = self.view.get(station_id)
        if v is None:
            if not await self.read(Reads.station_exists, station_id):
                raise HttpError(404, "no station %s" % station_id)
        return v

    async def call_book(self, fn):
        """fn(book) on the book actor's thread; awaited here without blocking the loop."""
        fut = self.loop.create_future()
        loop = self.loop

        def reply(result, error):
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:  # the loop closed meanwhile: the hub is stopping
                pass

        try:
            self.book.tell(BookCall(fn, reply))
        except pykka.ActorDeadError:
            raise HttpError(503, "the reservation book is not running") from None
        try:
            return await asyncio.wait_for(fut, BOOK_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise HttpError(503, "the reservation book did not answer within %d s" % BOOK_TIMEOUT_S) from None
        except BookingError as exc:
            raise HttpError(BOOKING_STATUS.get(exc.code, 500), exc.text) from None

    # --- health ------------------------------------------------------------------------------

    async def health(self, req):
        view = list(self.view.values())
        roles = {}
        for link in list(self.gateway.links.values()):
            role = link.session.role if link.session.authenticated else "handshake"
            roles[role] = roles.get(role, 0) + 1
        return json_response(
            {
                "status": "ok",
                "time": self.clock(),
                "speedup": self.config["speedup"],
                "epoch0": self.clock.epoch0 if hasattr(self.clock, "epoch0") else None,
                "uptime_s": round(time.time() - self.started, 3),
                "stations": len(view),
                "stations_online": sum(1 for v in view if v.online),
                "stations_by_status": _count_by(v.status for v in view),
                "links": roles,
                "vehicles_tracked": len(self.tracker_last),
                "sessions_active": len(self.live.sessions),
                "counters": self.router.stats(),
            }
        )

    # --- stations -----------------------------------------------------------------------------

    async def stations(self, req):
        status = req.arg("status")
        if status is not None and status not in K.STATION_STATUSES:
            raise HttpError(400, "status must be one of %s" % ", ".join(K.STATION_STATUSES))
        views = sorted(self.view.values(), key=lambda v: v.id)
        return json_response(
            {"stations": [self.station_json(v) for v in views if status is None or v.status == status]}
        )

    async def station(self, req):
        sid = req.params["station_id"]
        v = await self.known_station(sid)
        upcoming = await self.read(Reads.reservations, sid, None, "confirmed", 100)
        doc = self.station_json(v) if v is not None else {"id": sid, "status": "Offline", "provisioning": True}
        doc["sessions"] = self.live.sessions_at(sid)
        doc["reservations"] = [reservation_doc(r) for r in upcoming]
        return json_response(doc)

    async def station_sessions(self, req):
        sid = req.params["station_id"]
        limit = int_arg(req, "limit", 50, 1, 1000)
        await self.known_station(sid)
        rows = await self.read(Reads.sessions, sid, limit)
        live = {s["session_id"]: s for s in self.live.sessions_at(sid)}
        for row in rows:
            s = live.get(row["session_id"])
            row["live"] = s is not None and row["ended"] is None
            if row["live"]:
                row["energy_wh"] = s.get("energy_wh")
                row["power_w"] = s.get("power_w")
                row["expected_end"] = s.get("expected_end")
        return json_response({"station_id": sid, "sessions": rows})

    async def station_reservations(self, req):
        sid = req.params["station_id"]
        state = self._state_arg(req)
        limit = int_arg(req, "limit", 200, 1, 1000)
        await self.known_station(sid)
        rows = await self.read(Reads.reservations, sid, None, state, limit)
        return json_response({"station_id": sid, "reservations": [reservation_doc(r) for r in rows]})

    async def sessions(self, req):
        """Running sessions (state=live, the default), or the ended ones from the store (state=ended),
        filtered by station, vehicle and end time, paged by limit/offset (next_offset while more)."""
        sid = req.arg("station_id")
        state = req.arg("state", "live")
        if state == "live":
            return json_response({"sessions": self.live.sessions_at(sid)})
        if state != "ended":
            raise HttpError(400, "state must be live or ended")
        since = None if req.arg("since") is None else parse_time(_int_or_text(req.arg("since")), "since")
        until = None if req.arg("until") is None else parse_time(_int_or_text(req.arg("until")), "until")
        limit = int_arg(req, "limit", 100, 1, 1000)
        offset = int_arg(req, "offset", 0, 0, 10**9)
        rows = await self.read(Reads.session_history, sid, req.arg("vehicle_id"), since, until, limit, offset)
        return json_response({"sessions": rows, "next_offset": offset + len(rows) if len(rows) == limit else None})

    # --- reservations ----------------------------------------------------------------------

    @staticmethod
    def _state_arg(req):
        state = req.arg("state", "confirmed")
        if state not in RES_STATES:
            raise HttpError(400, "state must be one of %s" % ", ".join(RES_STATES))
        return state

    @staticmethod
    def _reservation_id(req):
        raw = req.params["reservation_id"]
        if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < MAX_RESERVATION_ID:
            raise HttpError(400, "a reservation id is a positive integer, not %r" % raw[:40])
        return int(raw)

    async def reservations(self, req):
        state = self._state_arg(req)
        limit = int_arg(req, "limit", 200, 1, 1000)
        rows = await self.read(Reads.reservations, req.arg("station_id"), req.arg("vehicle_id"), state, limit)
        return json_response({"reservations": [reservation_doc(r) for r in rows]})

    async def reservation(self, req):
        rid = self._reservation_id(req)
        row = await self.read(Reads.reservation, rid)
        if row is None:
            raise HttpError(404, "no reservation %d" % rid)
        return json_response({"reservation": reservation_doc(row)})

    async def create_reservation(self, req):
        body = req.json()
        unknown = sorted(set(body) - RESERVE_FIELDS)
        if unknown:
            raise HttpError(
                400, "unknown field(s) %s; expected %s" % (", ".join(unknown), ", ".join(sorted(RESERVE_FIELDS)))
            )
        station_id = _id_field(body, "station_id")
        vehicle_id = _id_field(body, "vehicle_id")
        now = int(self.clock())
        start = now if body.get("start") is None else parse_time(body["start"], "start")
        if body.get("end") is not None and body.get("duration_min") is not None:
            raise HttpError(400, "give end or duration_min, not both")
        if body.get("end") is not None:
            end = parse_time(body["end"], "end")
        elif body.get("duration_min") is not None:
            minutes = body["duration_min"]
            if type(minutes) is not int or not 1 <= minutes <= MAX_DURATION_S // 60:
                raise HttpError(400, "duration_min must be an integer 1..%d" % (MAX_DURATION_S // 60))
            end = start + minutes * 60
        else:
            raise HttpError(400, "give end or duration_min")
        await self.known_station(station_id)
        res = await self.call_book(lambda book: book.reserve(vehicle_id, station_id, start, end, now))
        if not res.ok:
            raise HttpError(409, res.reason or "conflict", {"alternatives": res.alternatives})
        r = res.reservation
        log.info(
            "http: reservation %d at station %s for vehicle %s made by the operator API", r.id, station_id, vehicle_id
        )
        return json_response({"reservation": reservation_doc(r)}, 201, [("Location", "/api/reservations/%d" % r.id)])

    async def cancel_reservation(self, req):
        rid = self._reservation_id(req)

        def cancel(book):
            r = book.get(rid)
            return None if r is None else book.cancel(r.vehicle_id, rid)

        r = await self.call_book(cancel)
        if r is None:
            row = await self.read(Reads.reservation, rid)
            if row is None:
                raise HttpError(404, "no reservation %d" % rid)
            raise HttpError(
                409,
                "reservation %d has already ended (%s)" % (rid, row["state"]),
                {"reservation": reservation_doc(row)},
            )
        log.info("http: reservation %d at station %s cancelled by the operator API", rid, r.station_id)
        return json_response({"reservation": reservation_doc(r)})

    # --- vehicles ------------------------------------------------------------------------------

    def _vehicle_doc(self, vid, last):
        lat, lon, when, soc = last
        return {
            "id": vid,
            "lat": lat,
            "lon": lon,
            "time": when,
            "soc": soc,
            "connected": ("vehicle", vid) in self.gateway.peers,
        }

    async def vehicles(self, req):
        snapshot = self.tracker_last.copy()  # one C-level copy; the tracker keeps writing its dict
        for vid in await self.read(Reads.vehicle_ids):  # provisioned ones that have not reported yet
            snapshot.setdefault(vid, _NOWHERE)
        return json_response({"vehicles": [self._vehicle_doc(vid, snapshot[vid]) for vid in sorted(snapshot)]})

    async def vehicle(self, req):
        vid = req.params["vehicle_id"]
        last = self.tracker_last.get(vid)
        if last is not None:
            return json_response(self._vehicle_doc(vid, last))
        if not await self.read(Reads.vehicle_exists, vid):
            raise HttpError(404, "no vehicle %s" % vid)
        return json_response(
            {
                "id": vid,
                "lat": None,
                "lon": None,
                "time": None,
                "soc": None,
                "connected": ("vehicle", vid) in self.gateway.peers,
            }
        )


_NOWHERE = (None, None, None, None)  # a vehicle with no position yet


def _count_by(values):
    out = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out

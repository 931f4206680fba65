"""StationRegistry: what every charge point is, says and is doing.

Owns: boot info, per-connector status, liveness, live sessions and the
upcoming reservation windows per station (told by the ReservationBook), from
which it derives the status shown to drivers (Available, Occupied, Reserved,
Offline, Unavailable, Faulted) and "Free in X min".

It publishes `view`: station id -> StationView tuple, replaced entry by entry
(a dict item assignment is atomic), so the gateway answers nearest and list
queries from the I/O loop without asking this actor anything.

Session records are written to the store before the station gets its ACK, so
an acknowledged COMPLETE is never lost; a replayed SESSION_END is ACKed again
and changes nothing.
"""

import collections
import logging
import math

import pykka

from hub import authz, capacity, station_sync
from hub.boardfloats import board_float

from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_INTERNAL, E_INVALID_STATE, E_NOT_FOUND, E_TIMEOUT
from transport.errors import error_name
from transport.messages import make
from hub.logsafe import wire_text

log = logging.getLogger(__name__)

StationView = collections.namedtuple(
    "StationView", "id lat lon status free_in_min free_at connectors max_kw online last_seen connector_status mismatch name",
    defaults=(None, None)
)

OCCUPIED = ("Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing")
MAX_ENERGY_WH = 10**9  # 1 GWh: anything above is a broken meter, not a session
MAX_EPOCH = 2**40
REQUEST_TRIES = 3  # sends of one hub->station request before "the station did not answer"


def display_status(online, connector_status):
    """The one word a driver sees for a station, from its connectors' statuses."""
    if not online:
        return "Offline"
    statuses = list(connector_status.values())
    if not statuses:
        return "Available"
    if "Available" in statuses:
        return "Available"
    if all(s == "Faulted" for s in statuses):
        return "Faulted"
    if all(s in ("Unavailable", "Faulted") for s in statuses):
        return "Unavailable"
    if "Reserved" in statuses:
        return "Reserved"
    return "Occupied"


class _Station:
    __slots__ = (
        "id", "lat", "lon", "connectors", "max_kw", "online", "last_seen", "firmware",
        "connector_status", "sessions", "windows", "mismatch", "name", "sync",
    )

    def __init__(self, station_id, lat, lon, connectors, max_kw):
        self.id = station_id
        self.lat = lat
        self.lon = lon
        self.connectors = connectors
        self.max_kw = max_kw
        self.online = False
        self.last_seen = None
        self.firmware = None
        self.connector_status = {n: "Unavailable" for n in range(1, connectors + 1)}
        self.sessions = {}  # session_id -> dict(connector, vehicle_id, reservation_id, started, expected_end, energy_wh, power_w)
        self.windows = {}  # reservation_id -> (vehicle_id, start, end)
        self.mismatch = None  # hub.capacity doc while provisioning and BOOT disagree
        self.name = None  # place label from provisioning (`stations add --name`)
        self.sync = station_sync.StationSync()  # which windows the station was sent (its table is small)


class StationRegistry(pykka.ThreadingActor):
    def __init__(self, store_factory, outbox, clock, config, book=None, locator=None, events=None):
        super().__init__()
        self.events = events  # hub.events.EventBus or None: publish(kind, data) from this thread
        self._store_factory = store_factory
        self.store = None
        self.outbox = outbox
        self.clock = clock
        self.config = config
        self.book = book
        self.locator = locator
        self.stations = {}
        self.view = {}
        self._pending = {}  # reply tag -> what to do with the station's answer
        self._next_tag = 1
        self.energy_wh_total = 0
        self.sessions_completed = 0

    # --- lifecycle ------------------------------------------------------------------

    def on_start(self):
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
            st.sessions[row["session_id"]] = {
                "connector": row["connector"], "vehicle_id": row["vehicle_id"], "reservation_id": row["reservation_id"],
                "started": row["started"], "expected_end": self._expected_end(st, row["reservation_id"], row["started"]),
                "energy_wh": 0, "power_w": 0,
            }
            reopened += 1
        log.info("registry: %d provisioned stations, %d sessions still open", len(self.stations), reopened)

    def on_stop(self):
        if self.store is not None:
            self.store.close()

    def on_failure(self, exc_type, exc_value, tb):
        log.error("registry crashed: %s", exc_value)

    def _on_set_book(self, book):
        self.book = book

    def _learn(self, station_id, lat, lon, connectors, max_kw, name=None):
        st = self.stations.get(station_id)
        if st is None:
            st = _Station(station_id, lat, lon, connectors, max_kw)
            self.stations[station_id] = st
        else:
            st.lat, st.lon, st.max_kw = lat, lon, max_kw
            if connectors != st.connectors:
                st.connectors = connectors
                st.connector_status = {n: st.connector_status.get(n, "Unavailable") for n in range(1, connectors + 1)}
        if name is not None:
            st.name = name
        if self.locator is not None:
            self.locator.tell(("upsert", station_id, lat, lon))
        if self.book is not None:
            self.book.tell(("station", station_id, st.connectors))
        self._publish(st)
        return st

    # --- derived view ------------------------------------------------------------------

    def _publish(self, st):
        now = self.clock()
        status = display_status(st.online, st.connector_status)
        free_at = None
        if status == "Occupied":
            ends = [s["expected_end"] for s in st.sessions.values()]
            free_at = min(ends) if ends else now + self.config["session_estimate_min"] * 60
        elif status == "Reserved":
            current = [w[2] for w in st.windows.values() if w[1] - 3600 <= now]
            free_at = min(current) if current else None
        free_in = None if free_at is None else max(1, int(math.ceil((free_at - now) / 60.0)))
        if status == "Available":
            free_in = 0
        old = self.view.get(st.id)
        view = self.view[st.id] = StationView(
            st.id, st.lat, st.lon, status, free_in, free_at, st.connectors, st.max_kw, st.online, st.last_seen,
            dict(st.connector_status), st.mismatch, st.name,
        )
        if self.events is not None and (old is None or old[3:5] != view[3:5] or old.online != view.online
                                        or old.connector_status != view.connector_status):
            self.events.publish("station", (view, None if old is None else old.status))

    # --- messages --------------------------------------------------------------------------

    def on_receive(self, message):
        op = message[0]
        handler = self._handlers.get(op)
        if handler is None:
            log.error("registry: unknown message %r", op)
            return None
        try:
            return handler(self, *message[1:])
        except Exception:
            # pykka stops an actor whose on_receive raises: one bad message must not take the registry.
            log.exception("registry: failed handling %s from %s", K.kind_name(op) if type(op) is int else op,
                          message[1] if len(message) > 1 else "?")
            if type(op) is int and len(message) > 3:
                self._error(message[2], message[3], E_INTERNAL, "internal error; try again")
            return None

    def _ack(self, link_id, seq):
        self.outbox.send(link_id, make(K.ACK, seq))

    def _error(self, link_id, seq, code, text):
        self.outbox.send(link_id, make(K.ERROR, seq, code, text))

    def _station(self, station_id, link_id, seq):
        st = self._known(station_id)
        if st is None:
            self._error(link_id, seq, E_NOT_FOUND, "station %s is not provisioned" % station_id)
        return st

    def _on_online(self, station_id):
        st = self._known(station_id)
        if st is None:
            return
        st.online = True
        st.last_seen = self.clock()
        self._publish(st)
        # Tell the station about reservations it must honour (it may have rebooted and forgotten).
        st.sync.reset()
        self._sync_windows(st)

    def _on_offline(self, station_id, why):
        st = self.stations.get(station_id)
        if st is None:
            return
        if st.online:
            log.warning("station %s: offline (%s)", station_id, why)
        st.online = False
        st.sync.reset()
        self._publish(st)

    def _on_boot(self, station_id, link_id, seq, fields):
        lat, lon, connectors, max_kw, firmware = fields
        lat, lon, max_kw = board_float(lat), board_float(lon), board_float(max_kw)  # float32 boards read alike
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or connectors < 1 or connectors > K.MAX_CONNECTORS \
                or not (0 < max_kw <= 1000):  # written so that NaN fails too
            self._error(link_id, seq, E_BAD_FIELD, "boot: position, connectors (1..%d) or max_kw out of range" % K.MAX_CONNECTORS)
            return
        # Provisioning and the station's own report must never silently diverge: use the safe values.
        # A boot also picks up `evhub stations update` (position, name) made since.
        row = self.store.get_station(station_id)
        use_connectors, use_kw, st_mismatch = capacity.reconcile(station_id, row, connectors, max_kw)
        st = self.stations.get(station_id) or self._learn(station_id, lat, lon, use_connectors, use_kw)
        st.mismatch = st_mismatch
        if row is not None:
            self._learn(station_id, row["lat"], row["lon"], use_connectors, use_kw, row.get("name"))
        elif st.connectors != use_connectors or st.max_kw != use_kw:
            self._learn(station_id, st.lat, st.lon, use_connectors, use_kw)
        st.firmware = firmware
        st.online = True
        st.last_seen = self.clock()
        log.info("station %s: boot firmware=%s connectors=%d max_kw=%s", station_id, wire_text(firmware), connectors, max_kw)
        self._publish(st)
        self._ack(link_id, seq)
        if use_kw < max_kw:  # the station would deliver more than it was provisioned for: tell it the limit
            self._request_station(station_id, K.CONFIGURE, ["max_kw", use_kw], self._logged(station_id, "configure max_kw"))

    def _on_status(self, station_id, link_id, seq, fields):
        connector, status, info = fields
        st = self._station(station_id, link_id, seq)
        if st is None:
            return
        if status not in K.CONNECTOR_STATUSES:
            self._error(link_id, seq, E_BAD_FIELD, "status %r is not one of %s" % (status, ", ".join(K.CONNECTOR_STATUSES)))
            return
        if connector < 1 or connector > st.connectors:
            self._error(link_id, seq, E_BAD_FIELD, "connector %d does not exist (1..%d)" % (connector, st.connectors))
            return
        old = st.connector_status.get(connector)
        st.connector_status[connector] = status
        st.last_seen = self.clock()
        st.online = True
        if old != status:
            log.info("station %s: connector %d %s -> %s%s", station_id, connector, old, status, " (%s)" % wire_text(info) if info else "")
        self._publish(st)
        self._ack(link_id, seq)

    def _on_meter(self, station_id, link_id, seq, fields):
        connector, session_id, energy_wh, power_w, when = fields
        st = self.stations.get(station_id)
        if st is None:
            return
        st.last_seen = self.clock()
        s = st.sessions.get(session_id) if session_id else None
        if s is None:
            return
        s["energy_wh"] = energy_wh
        s["power_w"] = power_w
        if self.events is not None:
            self.events.publish("meter", {"station_id": station_id, "connector": connector, "session_id": session_id,
                                          "vehicle_id": s["vehicle_id"], "energy_wh": energy_wh, "power_w": power_w,
                                          "time": when})
        if s["vehicle_id"] is not None:  # a local session is nobody's to watch
            self.outbox.send_to_peer(
                "vehicle", s["vehicle_id"], make(K.CHARGE_PROGRESS, 0, session_id, station_id, energy_wh, power_w)
            )

    def _expected_end(self, st, reservation_id, started):
        window = st.windows.get(reservation_id) if reservation_id is not None else None
        if window is not None and window[2] > started:
            return window[2]
        return started + self.config["session_estimate_min"] * 60

    def _on_session_start(self, station_id, link_id, seq, fields):
        session_id, connector, vehicle_id, reservation_id, meter_start, started = fields
        st = self._station(station_id, link_id, seq)
        if st is None:
            return
        if connector < 1 or connector > st.connectors:
            self._error(link_id, seq, E_BAD_FIELD, "connector %d does not exist" % connector)
            return
        if not session_id or len(session_id) > 64 or not 0 <= meter_start < MAX_ENERGY_WH or not 0 <= started < MAX_EPOCH \
                or (reservation_id is not None and not 0 < reservation_id < 2**63):
            self._error(link_id, seq, E_BAD_FIELD, "session_start: session_id, meter or time out of range")
            return
        row = self._session_of_another(session_id, station_id, link_id, seq)
        if row is False:
            return
        claimed = vehicle_id
        vehicle_id, reservation_id = self._attributed(st, row, session_id, claimed, reservation_id, started)
        first = self.store.record_session_start(session_id, station_id, connector, vehicle_id, reservation_id, meter_start,
                                                started, None if claimed == vehicle_id else claimed)
        if session_id not in st.sessions:
            expected_end = self._expected_end(st, reservation_id, started)
            st.sessions[session_id] = {
                "connector": connector, "vehicle_id": vehicle_id, "reservation_id": reservation_id,
                "started": started, "expected_end": expected_end, "energy_wh": 0, "power_w": 0,
            }
            if first and self.book is not None:
                self.book.tell(("session_started", station_id, connector, vehicle_id, reservation_id, started, expected_end))
            if self.events is not None:
                self.events.publish("session_start", dict(st.sessions[session_id], session_id=session_id,
                                                          station_id=station_id))
        if reservation_id is not None and st.windows.pop(reservation_id, None) is not None:
            st.sync.forget(reservation_id, cancel=False)  # the station used its row: the next window may go
            self._sync_windows(st)
        log.info("station %s: session %s started on connector %d for vehicle %s", station_id, wire_text(session_id), connector,
                 wire_text(vehicle_id))
        self._publish(st)
        self._ack(link_id, seq)
        if vehicle_id is not None:
            self.outbox.send_to_peer("vehicle", vehicle_id, make(K.SESSION_STARTED, 0, session_id, station_id, connector))

    def _attributed(self, st, row, session_id, claimed, reservation_id, started):
        """(vehicle_id, reservation_id) the session is billed to: decided once, at its first record."""
        if row is not None:
            return row["vehicle_id"], row["reservation_id"] if row["vehicle_id"] is not None else None
        vehicle_id, rid, why = authz.attribute(self.store, st.windows, st.id, session_id, claimed, reservation_id,
                                               started, self.clock())
        if vehicle_id is None and claimed is not None:
            log.warning("station %s: session %s names vehicle %r but %s: recorded as a local session", st.id,
                        wire_text(session_id), wire_text(claimed), wire_text(why))
        return vehicle_id, rid

    def _session_of_another(self, session_id, station_id, link_id, seq):
        """A station reports only for itself: a session id recorded for another station is refused
        (False is returned); else the session's stored row, or None if it is new."""
        row = self.store.get_session(session_id)
        if row is not None and row["station_id"] != station_id:
            log.warning("station %s: refused a record for session %s of station %s", station_id, session_id,
                        row["station_id"])
            self._error(link_id, seq, E_FORBIDDEN, "session %s belongs to another station" % session_id)
            return False
        return row

    def _on_session_end(self, station_id, link_id, seq, fields):
        session_id, connector, vehicle_id, reservation_id, energy_wh, started, ended, reason = fields
        st = self._station(station_id, link_id, seq)
        if st is None:
            return
        if not (0 <= energy_wh < MAX_ENERGY_WH and 0 <= started <= ended < MAX_EPOCH) or not 0 < connector <= st.connectors:
            self._error(link_id, seq, E_BAD_FIELD, "session_end: energy, times or connector out of range")
            return
        if not session_id or len(session_id) > 64 or (reservation_id is not None and not 0 < reservation_id < 2**63):
            self._error(link_id, seq, E_BAD_FIELD, "session_end: session_id must be 1..64 characters")
            return
        row = self._session_of_another(session_id, station_id, link_id, seq)
        if row is False:
            return
        claimed = vehicle_id
        vehicle_id, reservation_id = self._attributed(st, row, session_id, claimed, reservation_id, started)
        flagged = self._implausible(st, session_id, energy_wh, started, ended)
        first = self.store.record_session_end(
            session_id, station_id, connector, vehicle_id, reservation_id, energy_wh, started, ended, reason,
            None if claimed == vehicle_id else claimed, flagged,
        )
        st.sessions.pop(session_id, None)
        self._ack(link_id, seq)  # after the store: an acknowledged COMPLETE is on disk
        if not first:
            log.info("station %s: session %s end replayed, already recorded", station_id, session_id)
            return
        self.energy_wh_total += energy_wh
        self.sessions_completed += 1
        if self.events is not None:
            self.events.publish("session_end", {
                "session_id": session_id, "station_id": station_id, "connector": connector, "vehicle_id": vehicle_id,
                "reservation_id": reservation_id, "energy_wh": energy_wh, "started": started, "ended": ended,
                "reason": reason, "implausible": flagged})
        log.info(
            "station %s: session %s COMPLETE vehicle=%s energy=%.2f kWh reason=%s",
            station_id, wire_text(session_id), wire_text(vehicle_id), energy_wh / 1000.0, wire_text(reason),
        )
        self._publish(st)
        if self.book is not None:
            self.book.tell(("session_ended", station_id, connector, session_id, vehicle_id, reservation_id, ended))
        if vehicle_id is not None:
            self.outbox.send_to_peer(
                "vehicle", vehicle_id,
                make(K.COMPLETE, 0, session_id, station_id, energy_wh, max(0, ended - started), reason),
            )

    def _implausible(self, st, session_id, energy_wh, started, ended):
        """Flag (and log) energy beyond what max_kw delivers in the session's duration."""
        provisioned = None
        if self.config.get("speedup", 1.0) == 1.0 and self.config.get("epoch0") is None:  # hub clock = wall clock
            row = self.store.get_station(st.id)
            provisioned = row["created"] if row is not None else None
        if not authz.implausible(energy_wh, st.max_kw, started, ended, provisioned, self.clock()):
            return False
        log.warning("station %s: session %s reports %d Wh in %d s, more than %s kW can deliver: flagged implausible",
                    st.id, wire_text(session_id), energy_wh, max(0, ended - started), st.max_kw)
        return True

    # --- reservations told by the book ----------------------------------------------------------

    def _known(self, station_id):
        """The station, learning it from the store if it was provisioned after we last looked."""
        st = self.stations.get(station_id)
        if st is None:
            row = self.store.get_station(station_id)
            if row is not None:
                st = self._learn(row["id"], row["lat"], row["lon"], row["connectors"], row["max_kw"], row.get("name"))
        return st

    def _on_reserved(self, reservation_id, station_id, vehicle_id, start, end, connector=0):
        st = self._known(station_id)
        if st is None:
            return
        st.windows[reservation_id] = (vehicle_id, start, end)
        st.sync.changed(reservation_id, connector)
        self._publish(st)
        self._sync_windows(st)

    def _on_reservation_ended(self, reservation_id, station_id, why):
        st = self.stations.get(station_id)
        if st is None or st.windows.pop(reservation_id, None) is None:
            return
        self._publish(st)
        st.sync.forget(reservation_id, cancel=why != "fulfilled")  # cancelled on the station by the plan
        self._sync_windows(st)  # a row is free: the next window goes

    def _sync_windows(self, st):
        """Send the station the windows inside its horizon it does not hold yet (hub/station_sync.py)."""
        if not st.online:
            return
        cancel, send = st.sync.plan(st.windows)
        for rid in cancel:
            self._cancel_on_station(st, rid)
        for rid, token in send:
            vehicle_id, start, end = st.windows[rid]
            self._request_station(st.id, K.RESERVE_NOW, [rid, st.sync.connectors.get(rid, 0), vehicle_id, int(start), int(end)],
                                  self._reserve_now_reply(st.id, rid, token))

    def _logged(self, station_id, what):
        """on_reply for a request nobody waits for: a refusal or no answer is logged, never dropped."""
        def on_reply(reply):
            if reply is None:
                log.warning("station %s: %s not answered", station_id, what)
            elif reply[0] == K.ERROR:
                log.warning("station %s: %s refused: %s: %s", station_id, what, error_name(reply[1][0]) or reply[1][0],
                            wire_text(reply[1][1]))

        return on_reply

    def _cancel_on_station(self, st, rid):
        logged = self._logged(st.id, "cancel of reservation %d" % rid)

        def on_reply(reply):
            if reply is None or reply[0] != K.ERROR or reply[1][0] != E_NOT_FOUND:  # not found: already gone
                logged(reply)

        self._request_station(st.id, K.CANCEL_RESERVATION, [rid], on_reply)

    def _reserve_now_reply(self, station_id, rid, token):
        def on_reply(reply):
            st = self.stations.get(station_id)
            if st is None:
                return
            connector = st.sync.connectors.get(rid, 0)
            action = st.sync.on_reply(rid, token, reply)
            if action in (station_sync.HELD, station_sync.STALE):
                return
            code, text = (E_TIMEOUT, "no answer") if reply is None else (reply[1][0], reply[1][1])
            log.warning("station %s: RESERVE_NOW %d (connector %d) refused: %s: %s: %s", station_id, rid, connector,
                        error_name(code) or code, wire_text(text), action)
            if action != station_sync.RETRY and self.book is not None:
                self.book.tell(("station_refused", rid, station_id, connector, action == station_sync.MOVE, text))

        return on_reply

    # --- vehicle asks to charge / stop -----------------------------------------------------------

    def _request_station(self, station_id, kind, fields, on_reply, tries=1):
        """Send a hub->station request; on_reply(reply) gets (kind, fields) or None. An unanswered one
        (a frame lost on a serial line) is resent while the station is online, up to REQUEST_TRIES: the
        station handles a repeat idempotently, and a "not found" to a repeated stop or cancel means the
        first copy did it."""
        tag = self._next_tag
        self._next_tag += 1
        if on_reply is not None:
            def answered(reply):
                st = self.stations.get(station_id)
                if reply is None and tries < REQUEST_TRIES and st is not None and st.online:
                    log.info("station %s: %s unanswered, sent again", station_id, K.kind_name(kind))
                    self._request_station(station_id, kind, fields, on_reply, tries + 1)
                    return
                if tries > 1 and reply is not None and reply[0] == K.ERROR and reply[1][0] == E_NOT_FOUND \
                        and kind in (K.REMOTE_STOP, K.CANCEL_RESERVATION):
                    reply = (K.ACK, [])
                on_reply(reply)

            self._pending[tag] = answered
        self.outbox.request("station", station_id, kind, fields, self.actor_ref if on_reply is not None else None, tag)

    def _on_reply(self, tag, reply):
        on_reply = self._pending.pop(tag, None)
        if on_reply is not None:
            on_reply(reply)

    def _relay_reply(self, link_id, seq, what):
        def relay(reply):
            if reply is None:
                self._error(link_id, seq, E_TIMEOUT, "%s: the station did not answer" % what)
            elif reply[0] == K.ERROR:
                self._error(link_id, seq, reply[1][0], "%s refused by the station: %s" % (what, reply[1][1]))
            else:
                self._ack(link_id, seq)

        return relay

    def _on_start_charge(self, link_id, seq, vehicle_id, station_id, reservation_id, ev):
        st = self._station(station_id, link_id, seq)
        if st is None:
            return
        if not st.online:
            self._error(link_id, seq, E_INVALID_STATE, "station %s is offline" % station_id)
            return
        if reservation_id is not None and reservation_id not in st.windows:
            self._error(link_id, seq, E_NOT_FOUND, "reservation %d is not open at %s" % (reservation_id, station_id))
            return
        now = self.clock()
        try:
            connector, reservation_id = authz.authorise_start(station_id, st.windows, st.connector_status, vehicle_id,
                                                              reservation_id, now)
        except authz.Refusal as exc:
            log.warning("vehicle %s: start at station %s refused: %s", vehicle_id, wire_text(station_id), wire_text(exc.text))
            self._error(link_id, seq, exc.code, exc.text)
            return
        # Remembered before it is sent: the session the station reports for it is billed to this vehicle.
        grant = self.store.add_remote_start(station_id, vehicle_id, reservation_id, int(now))
        relay = self._relay_reply(link_id, seq, "start")

        def on_reply(reply):
            if reply is not None and reply[0] == K.ERROR:
                self.store.drop_remote_start(grant)  # refused: nothing will start on it
            relay(reply)

        self._request_station(station_id, K.REMOTE_START, [connector, vehicle_id, reservation_id, ev], on_reply)

    def _on_stop_charge(self, link_id, seq, vehicle_id, session_id):
        for st in self.stations.values():
            s = st.sessions.get(session_id)
            if s is not None:
                if s["vehicle_id"] != vehicle_id:
                    self._error(link_id, seq, E_FORBIDDEN, "session %s belongs to another vehicle" % session_id)
                    return
                self._request_station(st.id, K.REMOTE_STOP, [session_id], self._relay_reply(link_id, seq, "stop"))
                return
        self._error(link_id, seq, E_NOT_FOUND, "no running session %s" % session_id)

    def _on_station_removed(self, station_id):
        """`evhub stations remove`: the station leaves the map (its link is closed by the gateway)."""
        st = self.stations.pop(station_id, None)
        if st is None:
            return
        self.view.pop(station_id, None)
        if self.locator is not None:
            self.locator.tell(("remove", station_id))
        log.info("station %s: removed (history kept in the store)", station_id)

    def _on_reservation_history(self, link_id, seq, vehicle_id):
        self.outbox.send(link_id, make(K.RESERVATIONS, seq, self.store.vehicle_reservations(vehicle_id)))

    def _on_list_sessions(self, link_id, seq, vehicle_id):
        self.outbox.send(link_id, make(K.SESSIONS, seq, self.store.vehicle_sessions(vehicle_id)))

    def _sync_provisioned(self):
        """Stations provisioned while the hub runs (`evhub stations add`) show up within a tick."""
        if self.store.station_count() == len(self.stations):
            return
        for row in self.store.all_stations():
            if row["id"] not in self.stations:
                self._learn(row["id"], row["lat"], row["lon"], row["connectors"], row["max_kw"], row.get("name"))

    def _on_tick(self, now):
        self._sync_provisioned()
        for st in self.stations.values():
            if st.sessions or st.windows:
                self._publish(st)  # "Free in X min" counts down
            if st.sync.retry_due:
                self._sync_windows(st)  # resend what was lost or refused for a passing reason

    def _on_summary(self):
        return {
            "stations": len(self.stations),
            "online": sum(1 for s in self.stations.values() if s.online),
            "sessions_active": sum(len(s.sessions) for s in self.stations.values()),
            "sessions_completed": self.sessions_completed,
            "energy_wh": self.energy_wh_total,
        }

    _handlers = {
        "online": _on_online,
        "offline": _on_offline,
        K.BOOT: _on_boot,
        K.STATUS: _on_status,
        K.METER: _on_meter,
        K.SESSION_START: _on_session_start,
        K.SESSION_END: _on_session_end,
        "reserved": _on_reserved,
        "reservation_ended": _on_reservation_ended,
        "start_charge": _on_start_charge,
        "stop_charge": _on_stop_charge,
        "list_sessions": _on_list_sessions,
        "reservation_history": _on_reservation_history,
        "reply": _on_reply,
        "tick": _on_tick,
        "summary": _on_summary,
        "set_book": _on_set_book,
        "station_removed": _on_station_removed,
    }

"""The decisions of one simulated vehicle, sans-I/O: a battery on wheels that drives, runs low,
reserves a charger, charges and carries on.

``Vehicle`` does no I/O and owns no thread: it is told the (simulated) time by
``tick(now)`` and what the hub said by ``on_net(...)``, and it appends what it wants
sent to a shared list of ops for ``tools.sim.net.VehicleNet``. ``tools.sim.agent.VehicleAgent``
(a Pykka actor) is what calls it. The life of a vehicle::

    connecting -> driving --(soc <= threshold)--> searching --NEAREST--> reserving --RESERVE ok-->
    to_station --(arrived)--> waiting --(window start)--> starting --START_CHARGE ack--> charging
    --SESSION_STARTED, CHARGE_PROGRESS..., COMPLETE--> driving (new destination)

It chooses a station by travel time plus waiting time ("Free in X min"), and books a
window from its ETA as long as the firmware's own charge model says the charge takes,
plus a margin. A conflicting RESERVE is answered with alternatives: the vehicle takes
the one it can start soonest (the same station later, or a nearby one). A start refused
because the connector is still finishing the previous charge is asked again shortly
after. On ``wind_down`` a vehicle cancels a reservation it has not used and stops a
running charge, so the books of the simulation close.
"""

import logging
import math
import random
import secrets

from hub.domain.geo import haversine_km
from tools.sim.world import TRENDS, charge_seconds, step_towards, target_within
from transport import kinds as K
from transport.errors import E_INVALID_STATE, E_NOT_FOUND, ERROR_NAMES

log = logging.getLogger(__name__)

CONNECTING, DRIVING, SEARCHING, RESERVING = "connecting", "driving", "searching", "reserving"
TO_STATION, WAITING, STARTING, CHARGING = "to_station", "waiting", "starting", "charging"
STRANDED, CLOSING, DONE = "stranded", "closing", "done"
MOVING = (DRIVING, SEARCHING, RESERVING, TO_STATION)
HEADING = (TO_STATION, WAITING, STARTING)
UNUSABLE = ("Offline", "Faulted", "Unavailable")
MAX_ERROR_TEXTS = 50
RESERVE_TRIES = 2  # sends of one RESERVE, with one request_id, when the hub does not answer


class Params:
    """What every vehicle of a simulation shares. Times are simulated seconds."""

    def __init__(
        self,
        report_s=60,
        k=6,
        margin_s=300,
        retry_s=30,
        cooldown_s=300,
        max_attempts=4,
        grace_s=600,
        finishing_s=30,
        min_window_s=900,
        max_window_s=3 * 3600,
    ):
        self.report_s = report_s  # POSITION period
        self.k = k  # stations asked for in NEAREST
        self.margin_s = margin_s  # added to the charge time when sizing a reservation window
        self.retry_s = retry_s  # wait before asking again to start on a busy connector
        self.cooldown_s = cooldown_s  # after a search that found nothing usable
        self.max_attempts = max_attempts  # RESERVE requests per search
        self.grace_s = grace_s  # the hub's no-show grace: a start must come before window start + this
        self.finishing_s = finishing_s  # the connector stays Finishing this long after a charge
        self.min_window_s = min_window_s
        self.max_window_s = max_window_s


class Stats(dict):
    def add(self, name, n=1):
        self[name] = self.get(name, 0) + n


class Vehicle:
    def __init__(self, spec, params, places, station_map, out, stats, now):
        self.id = spec.id
        self.spec = spec
        self.p = params
        self.places = places  # [Place]: where vehicles drive to
        self.station_map = station_map  # id -> StationSpec: the public map of the network
        self.out = out  # ops for VehicleNet, shared with the agent
        self.stats = stats
        self.errors = stats.setdefault("error_texts", [])
        self.rng = random.Random(spec.seed)
        self.lat, self.lon = spec.lat, spec.lon
        self.soc = spec.soc
        self.cap = spec.capacity_kwh
        self.kwh_per_km = spec.consumption_kwh_km * TRENDS[spec.trend]
        self.state = CONNECTING
        self.dest = None
        self.speed = 60.0
        self.last_t = now
        self.next_report = now + self.rng.random() * params.report_s
        self.retry_at = 0
        self.wait_until = 0
        self.plan = None  # the reservation being driven to / used: dict
        self.cand = None  # the window being asked for
        self.attempts = 0
        self.session_id = None
        self.soc_at_start = None
        self.energy_wh = 0
        self.winding = False
        self.pending = {}  # tag -> what
        self.dropped = set()  # reservation ids the hub ended for us (a station refused the window)
        self._seq = 0

    # --- plumbing ------------------------------------------------------------------

    def _request(self, kind, fields, what):
        self._seq += 1
        tag = self._seq
        self.pending[tag] = what
        self.out.append(("req", self.id, kind, fields, tag))

    def _error(self, text):
        self.stats.add("errors")
        if len(self.errors) < MAX_ERROR_TEXTS:
            self.errors.append("%s: %s" % (self.id, text))
        log.error("vehicle %s: %s", self.id, text)

    @property
    def settled(self):
        return self.state in (DONE, STRANDED, CONNECTING) and not self.pending

    def _new_destination(self):
        far = [p for p in self.places if haversine_km(self.lat, self.lon, p.lat, p.lon) > 10]
        p = self.rng.choice(far or self.places)
        r = 3.0 * math.sqrt(self.rng.random())
        a = self.rng.random() * 2 * math.pi
        lat = p.lat + r * math.cos(a) / 111.32
        lon = p.lon + r * math.sin(a) / (111.32 * math.cos(math.radians(p.lat)))
        self.dest = (lat, lon)
        d = haversine_km(self.lat, self.lon, lat, lon)
        self.speed = self.rng.uniform(40, 90) if d > 20 else self.rng.uniform(35, 60)

    # --- time passes -----------------------------------------------------------------

    def tick(self, now):
        dt = now - self.last_t
        self.last_t = now
        if self.state in MOVING and dt > 0:
            self._move(dt, now)
        if self.state == DRIVING and not self.winding and self.soc <= self.spec.threshold and now >= self.retry_at:
            self._search()
        elif self.state == WAITING and now >= self.wait_until:
            self._start(now)
        if now >= self.next_report and self.state not in (CONNECTING, DONE):
            # On schedule, not "a period after whichever tick noticed": ticks are coarser at high speedups.
            self.next_report = max(self.next_report + self.p.report_s, now - self.p.report_s)
            self.out.append(("send", self.id, K.POSITION, [self.lat, self.lon, int(now), round(self.soc, 4)]))
            self.stats.add("positions_sent")

    def _move(self, dt, now):
        heading = self.state == TO_STATION
        to = (self.plan["lat"], self.plan["lon"]) if heading else self.dest
        km = (self.plan["speed"] if heading else self.speed) * dt / 3600.0
        reach = self.soc * self.cap / self.kwh_per_km
        self.lat, self.lon, moved, arrived = step_towards(self.lat, self.lon, to[0], to[1], min(km, reach))
        self.soc = max(0.0, self.soc - moved * self.kwh_per_km / self.cap)
        if arrived and self.state == TO_STATION:
            self.state = WAITING
            self.wait_until = max(now, self.plan["start"])
            self.stats.add("arrivals")
        elif arrived:
            self._new_destination()
        elif reach <= km:
            self.state = STRANDED
            self.stats.add("stranded")
            log.warning("vehicle %s: battery empty at %.4f,%.4f", self.id, self.lat, self.lon)
            if self.plan is not None:
                self._cancel(self.plan["rid"])

    # --- finding and booking a charger ----------------------------------------------------

    def _search(self):
        self.state = SEARCHING
        self.attempts = 0
        self.speed = self.rng.uniform(40, 80)
        self.stats.add("nearest_queries")
        self._request(K.NEAREST, [self.lat, self.lon, self.p.k, None], "nearest")

    def _reachable_km(self):
        return max(0.0, self.soc - 0.02) * self.cap / self.kwh_per_km

    def _on_nearest(self, stations, now):
        best = None
        for s in stations:
            if s["status"] in UNUSABLE or s["distance_km"] > self._reachable_km():
                continue
            travel = s["distance_km"] / self.speed * 3600.0
            wait = max(0.0, (s["free_in_min"] or 0) * 60.0 - travel)
            charge = charge_seconds(s["max_kw"], self.spec.ev_max_kw, self.cap, self.soc, self.spec.target_soc)
            cost = (travel + wait, charge)
            if best is None or cost < best[0]:
                best = (cost, s, travel)
        if best is None:
            self._give_up(now, "no usable station in reach")
            return
        s = best[1]
        self._reserve(s["id"], s["lat"], s["lon"], s["max_kw"], now + best[2], None)

    def _reserve(self, sid, lat, lon, max_kw, start, end):
        start = int(math.ceil(start / 60.0) * 60)
        if end is None:
            arrival_soc = max(0.0, self.soc - haversine_km(self.lat, self.lon, lat, lon) * self.kwh_per_km / self.cap)
            need = charge_seconds(max_kw, self.spec.ev_max_kw, self.cap, arrival_soc, self.spec.target_soc)
            length = min(self.p.max_window_s, max(self.p.min_window_s, need + self.p.margin_s))
            end = start + int(math.ceil(length / 300.0) * 300)
        # A fresh request_id per reservation wanted (not seeded: a rerun on the same store must not
        # reuse one), the same one when it is asked again after a timeout (hub answers the first).
        self.cand = {
            "station": sid,
            "lat": lat,
            "lon": lon,
            "max_kw": max_kw,
            "start": start,
            "end": end,
            "speed": self.speed,
            "request_id": secrets.token_hex(8),
            "tries": 1,
        }
        self.state = RESERVING
        self.attempts += 1
        self._request(K.RESERVE, [sid, start, end, self.cand["request_id"]], "reserve")

    def _on_reserve(self, fields, now):
        ok, rid, alternatives = fields[0], fields[1], fields[2]
        if ok:
            self.stats.add("reservations_confirmed")
            if self.attempts > 1:
                self.stats.add("alternatives_taken")
            self.plan = dict(self.cand, rid=rid)
            if self.winding:
                self._cancel(rid)
                return
            self.state = TO_STATION
            return
        self.stats.add("reservations_conflicted")
        if self.winding:
            self.state = DONE
            return
        if self.attempts >= self.p.max_attempts or not alternatives:
            self._give_up(now, "no window after %d tries" % self.attempts)
            return
        best = None
        for alt in alternatives:
            st = self.station_map.get(alt["station_id"])
            if st is None:
                continue
            d = haversine_km(self.lat, self.lon, st.lat, st.lon)
            if d > self._reachable_km():
                continue
            eta = now + d / self.speed * 3600.0
            exact = eta <= alt["start"] + 60
            when = alt["start"] if exact else eta
            if best is None or when < best[0]:
                best = (when, exact, alt, st)
        if best is None:
            self._give_up(now, "no alternative in reach")
            return
        when, exact, alt, st = best
        self._reserve(st.id, st.lat, st.lon, st.max_kw, when, alt["end"] if exact else None)

    def _give_up(self, now, why):
        self.stats.add("searches_failed")
        log.info("vehicle %s: %s; trying again later", self.id, why)
        self.state = DONE if self.winding else DRIVING
        self.retry_at = now + self.p.cooldown_s

    def _cancel(self, rid):
        self.state = CLOSING
        self._request(K.CANCEL, [rid], "cancel")

    # --- charging ----------------------------------------------------------------------------

    def _start(self, now):
        plan = self.plan
        usable = plan["end"] - now - self.p.finishing_s - self.p.retry_s
        target = target_within(plan["max_kw"], self.spec.ev_max_kw, self.cap, self.soc, self.spec.target_soc, usable)
        if target < self.soc + 0.01:
            self._error("reservation %d at %s: no time left in the window to charge" % (plan["rid"], plan["station"]))
            self._cancel(plan["rid"])
            return
        ev = {
            "max_kw": self.spec.ev_max_kw,
            "capacity_kwh": self.cap,
            "soc": round(self.soc, 4),
            "target_soc": round(target, 4),
        }
        self.state = STARTING
        self._request(K.START_CHARGE, [plan["station"], plan["rid"], ev], "start")

    def _on_start_refused(self, code, text, now):
        plan = self.plan
        if code == E_NOT_FOUND and plan["rid"] in self.dropped:
            self._replan()  # the hub's notice came first (same link): the refusal only confirms it
            return
        if code == E_INVALID_STATE and now + self.p.retry_s < plan["start"] + self.p.grace_s - 60 and not self.winding:
            self.stats.add("start_retries")  # the connector is still finishing the previous charge
            self.state = WAITING
            self.wait_until = now + self.p.retry_s
            return
        if not self.winding:
            self._error("start at %s refused: %s (%s)" % (plan["station"], text, ERROR_NAMES.get(code, code)))
        self._cancel(plan["rid"])

    def _on_event(self, kind, fields, now):
        if kind == K.SESSION_STARTED:
            self.session_id = fields[0]
            self.stats.add("sessions_started")
            if self.state == STARTING:
                self._charging()
            if self.winding:
                self._request(K.STOP_CHARGE, [self.session_id], "stop")
        elif kind == K.CHARGE_PROGRESS:
            self.energy_wh = fields[2]
        elif kind == K.COMPLETE:
            energy, reason = fields[2], fields[4]
            if self.soc_at_start is None:
                self.soc_at_start = self.soc
            self.soc = min(1.0, self.soc_at_start + energy / 1000.0 / self.cap)
            self.stats.add("sessions_completed" if reason == "Complete" else "sessions_stopped")
            self.stats.add("energy_wh", energy)
            self.plan = self.session_id = self.soc_at_start = None
            self.energy_wh = 0
            if self.winding:
                self.state = DONE
            else:
                self.state = DRIVING
                self._new_destination()
        elif kind == K.ERROR:
            self._error("hub error: %s" % (fields[1],))
        elif kind == K.RESERVATIONS and fields:
            self._on_reservations_ended(fields[0])

    def _on_reservations_ended(self, rows):
        """An unsolicited RESERVATIONS lists reservations the hub ended for this vehicle: the station
        refused the window (an OCPP charger still Occupied when it opened, with no other connector
        free) or was removed. A driver looks for another charger; a START already sent for it is
        refused (not_found) and that is expected."""
        plan = self.plan
        if plan is None or not isinstance(rows, list):
            return
        for row in rows:
            if isinstance(row, dict) and row.get("reservation_id") == plan["rid"] and row.get("state") != "confirmed":
                self.dropped.add(plan["rid"])
                self.stats.add("reservations_dropped")
                log.info(
                    "vehicle %s: reservation %d at %s ended by the hub (%s)",
                    self.id,
                    plan["rid"],
                    plan["station"],
                    row.get("state"),
                )
                if self.state in (TO_STATION, WAITING):
                    self._replan()
                return

    def _replan(self):
        self.plan = None
        self.state = DONE if self.winding else DRIVING  # low on charge: it searches again at the next tick

    def _charging(self):
        self.state = CHARGING
        self.soc_at_start = self.soc

    # --- what the hub said ------------------------------------------------------------------------

    def on_net(self, what, tag, kind, fields, now):
        if what == "event":
            self._on_event(kind, fields, now)
            return
        if what == "up":
            if self.state == CONNECTING:
                self.state = DONE if self.winding else DRIVING
                self._new_destination()
            return
        if what == "down":
            return
        op = self.pending.pop(tag, None)
        if op is None:
            return
        if (
            what == "timeout"
            and op == "reserve"
            and self.cand is not None
            and self.cand["tries"] < RESERVE_TRIES
            and not self.winding
        ):
            c = self.cand
            c["tries"] += 1
            self.stats.add("reserve_retried")
            self._request(K.RESERVE, [c["station"], c["start"], c["end"], c["request_id"]], "reserve")
            return
        if what == "timeout":
            self._error("no answer to %s" % op)
            self.state = DONE if self.winding else DRIVING
            return
        if kind == K.ERROR:
            self._on_error_reply(op, fields[0], fields[1], now)
            return
        if op == "nearest":
            if self.winding:
                self.state = DONE
            else:
                self._on_nearest(fields[0], now)
        elif op == "reserve":
            self._on_reserve(fields, now)
        elif op == "start":
            if self.state == STARTING:  # SESSION_STARTED may already have moved us on
                self._charging()
        elif op == "cancel":
            self.stats.add("cancelled_at_end" if self.winding else "reservations_cancelled")
            self._after_cancel()

    def _after_cancel(self):
        self.plan = None
        if self.winding:
            self.state = DONE
        elif self.soc <= 0.0:
            self.state = STRANDED
        else:
            self.state = DRIVING
            self._new_destination()

    def _on_error_reply(self, op, code, text, now):
        if op == "start":
            self._on_start_refused(code, text, now)
        elif op == "cancel":
            if code == E_INVALID_STATE:  # it ended meanwhile (expired or fulfilled): nothing left to cancel
                self.stats.add("cancel_raced")
            else:
                self._error("cancel refused: %s" % text)
            self._after_cancel()
        elif op == "stop":
            if code != E_NOT_FOUND and not (self.winding and code == E_INVALID_STATE):
                self._error("stop refused: %s" % text)
        else:
            self._error("%s refused: %s (%s)" % (op, text, ERROR_NAMES.get(code, code)))
            self.state = DONE if self.winding else DRIVING
            self.retry_at = now + self.p.cooldown_s

    # --- the end of the simulation ------------------------------------------------------------

    def wind_down(self):
        """Stop making plans; cancel an unused reservation and stop a running charge."""
        self.winding = True
        if self.state in (DRIVING, CONNECTING):
            self.state = DONE
        elif self.state in (TO_STATION, WAITING):
            self._cancel(self.plan["rid"])
        elif self.state == CHARGING and self.session_id is not None:
            self._request(K.STOP_CHARGE, [self.session_id], "stop")
        # searching, reserving, starting, charging without a session id yet: their answer finishes it

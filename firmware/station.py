"""The station half of a charge point: connectors, sessions, reservation holds, metering and the
offline policy, with no link to the hub. ``firmware.chargepoint.ChargePoint`` is this plus its
uplink (the hub session, request tracking, journal replay): the one class a driver makes.

The two halves meet in a few named places; everything else stays on its own side.

The station calls the uplink (ChargePoint defines them):
    ``usable``               the hub is listening (authenticated, BOOT acknowledged)
    ``report(c)``            connector c's STATUS now if usable (else it goes after the next BOOT)
    ``send(kind, *fields)``  a fire-and-forget message (METER) if usable; dropped otherwise

The uplink calls the station:
    ``set_offline(flag)``    the hub was lost or is back: apply the offline policy
    ``set_offset(off)``      the hub's clock is ``off`` s ahead of ``wall()`` (followed with sync_time)
    ``tick()``               the periodic work: expiries, holds, charges, meters, checkpoints
    ``connectors`` (their ``changed`` flags) and ``journal`` (the records to replay)

Times are ``now()``: wall epoch seconds as an int, on the hub's clock with ``sync_time``.
Energy is integer Wh (mWh inside a charge), power integer W: an ESP32 float is single precision.
"""

from binascii import hexlify

from transport import kinds as K
from transport.compat import const, urandom

from firmware import config as C
from firmware.charging import Charge, ev_check, ev_params, to_milli
from firmware.connector import (
    AVAILABLE,
    CHARGING,
    FAULTED,
    FINISHING,
    PREPARING,
    RESERVED,
    SUSPENDED_EV,
    UNAVAILABLE,
    Connector,
    Refused,
)
from firmware.journal import Journal
from firmware.reservations import Reservations

# transport.errors' codes as private consts: folded into the bytecode, so the module keeps no global
# for them (tests/test_micropython.py checks them against the table).
_E_BAD_FIELD = const(3)
_E_FORBIDDEN = const(9)
_E_INVALID_STATE = const(12)


class Station:
    # A fitted energy meter, meter(n, start=False) -> mWh since the session's start (firmware/evse.py
    # sets it on the instance); a class attribute so a station without one has no extra dict slot.
    meter = None

    def __init__(self, config, clock, wall, journal, relay, log):
        cfg = C.normalize(config)
        self.config = cfg
        self.id = cfg["id"]
        self.clock = clock
        self.wall = wall
        n = cfg["connectors"]
        self.journal = journal if journal is not None else Journal(None, n)
        while len(self.journal.meters) < n:
            self.journal.meters.append(0)
        self.relay = relay  # relay(connector, on) or None
        self.log = log or (lambda level, text: None)  # log(level, text)
        self.connectors = [Connector(i + 1) for i in range(n)]
        self.reservations = Reservations()
        self.offline = False
        self.time_offset = 0
        for c in self.connectors:
            self._relay(c, False)
        # Sessions the journal still has running were cut by a reboot or power loss: end them.
        j = self.journal
        for sid in list(j.running):
            f, energy, at = j.running[sid]
            n = f[1]
            if 1 <= n <= len(j.meters):
                j.meters[n - 1] += energy
            j.session_ended((sid, n, f[2], f[3], energy, f[5], int(at), "PowerLoss"))
            self.log("warning", "session %s was cut by a restart: ended as PowerLoss, %d Wh" % (sid, energy))

    # --- small helpers --------------------------------------------------------------

    def now(self):
        """Station wall time (epoch s), on the hub's clock when sync_time is on."""
        return self.wall() + self.time_offset  # int: the board's wall clock gives whole seconds

    def connector(self, number):
        if type(number) is not int or number < 1 or number > len(self.connectors):
            raise Refused(_E_BAD_FIELD, "connector must be 1..%d" % len(self.connectors))
        return self.connectors[number - 1]

    def status(self, number):
        return self.connector(number).status

    def _relay(self, c, on):
        if self.relay is not None:
            self.relay(c.number, on)

    def limit_w(self):
        kw = self.config["max_kw"]
        if self.offline and self.config["offline_power_kw"] < kw:
            kw = self.config["offline_power_kw"]
        return to_milli(kw)

    def report_all(self):
        """Every connector's STATUS again (TRIGGER status)."""
        for c in self.connectors:
            c.changed = True

    def meter_all(self):
        """A METER for every connector now (TRIGGER meter)."""
        now = self.now()
        for c in self.connectors:
            if c.charge is not None:
                self.advance(c, now)
            self.send_meter(c, now)

    def update_holds_now(self):
        self.update_holds(self.now())

    def apply_limits(self):
        """The power limit changed (offline, CONFIGURE): running charges follow from now on."""
        now = self.now()
        for c in self.connectors:
            if c.charge is not None:
                self.advance(c, now)
                c.charge.set_limit(self.limit_w())

    def set_offset(self, off):
        """The hub's clock is `off` s ahead of wall(): with sync_time, follow it when it is more than
        a second away; charge timers stay on the same timeline."""
        delta = off - self.time_offset
        if not self.config["sync_time"] or -1 <= delta <= 1:
            return
        self.time_offset = off
        for c in self.connectors:
            if c.charge is not None:
                c.last_t += delta
                c.next_meter += delta
            if c.auto_leave_at is not None:
                c.auto_leave_at += delta

    # --- the periodic work -----------------------------------------------------------------

    def tick(self):
        now = self.now()
        expired = self.reservations.expired(now, self.config["grace_s"])
        if expired:
            for r in expired:
                self.log("info", "reservation %d of %s expired unused" % (r.id, r.vehicle))
                self.release(r)
        self.update_holds(now)
        for c in self.connectors:
            if c.charge is not None:
                self.advance(c, now)
                if c.charge.done:
                    self.end_session(c, "Complete", now)
                    continue
                if now >= c.next_meter:
                    self.send_meter(c, now)
                if now >= c.next_checkpoint:
                    c.next_checkpoint = now + self.config["checkpoint_s"]
                    self.journal.checkpoint(c.session_id, c.charge.energy_wh, now)
            elif c.auto_leave_at is not None and now >= c.auto_leave_at:
                self._leave(c, now)

    def set_status(self, c, status, info=None):
        """Change a connector's status; the hub hears it at once if the link is usable, else after BOOT."""
        c.go(status, info)
        if c.changed:
            self.log("info", "connector %d %s%s" % (c.number, status, " (%s)" % info if info else ""))
            self.report(c)

    def set_offline(self, offline):
        now = self.now()
        self.offline = offline
        policy = self.config["offline_policy"]
        if offline:
            self.log("warning", "hub lost: offline policy %r" % policy)
        else:
            self.log("info", "hub back: normal operation")
        for c in self.connectors:
            if c.charge is None:
                continue
            self.advance(c, now)
            if offline and policy == "stop":
                self.end_session(c, "HubLost", now)
            else:
                c.charge.set_limit(self.limit_w())

    def advance(self, c, now):
        if self.meter is not None:  # measured, not simulated: the session ends on unplug or stop
            c.charge.e = c.charge.e0 + self.meter(c.number)
            c.last_t = now
            return
        dt = now - c.last_t  # whole seconds of (possibly accelerated) wall time
        if dt > 0:
            c.charge.advance(dt * 1000)
            c.last_t = now

    def send_meter(self, c, now):
        c.next_meter = now + self.config["meter_interval_s"]
        if c.charge is not None:
            self.send(K.METER, c.number, c.session_id, c.charge.energy_wh, c.charge.power_w(), now)
        else:
            self.send(K.METER, c.number, None, self.journal.meters[c.number - 1], 0, now)

    # --- reservations -----------------------------------------------------------------------

    def update_holds(self, now):
        if not self.reservations.items:
            return
        for r in self.reservations.due(now, self.config["hold_before_s"]):
            if r.assigned:
                continue
            cands = [self.connectors[r.connector - 1]] if r.connector else self.connectors
            for c in cands:
                if c.status == AVAILABLE and c.hold is None:
                    c.hold = r
                    r.assigned = c.number
                    self.set_status(c, RESERVED)
                    break

    def release(self, r):
        """Reservation r no longer holds its connector (cancelled, expired, replaced)."""
        if r.assigned:
            c = self.connectors[r.assigned - 1]
            r.assigned = 0
            if c.hold is r:
                c.hold = None
                if c.status == RESERVED:
                    self.set_status(c, AVAILABLE)
        self.reservations.remove(r)

    def _consume(self, c, rid):
        """A session starts on c: the reservation it used (held or named) is done."""
        if c.hold is not None:
            r = c.hold
            c.hold = None
            r.assigned = 0
            self.reservations.remove(r)
            if rid is None:
                rid = r.id
        if rid is not None:
            r = self.reservations.get(rid)
            if r is not None:
                self.release(r)
        return rid

    # --- sessions ---------------------------------------------------------------------------

    def start_session(self, c, vehicle, rid, ev, now):
        max_w, cap_wh, soc_ppm, target_ppm = ev_params(ev)
        rid = self._consume(c, rid)
        number = self.journal.next_number()
        sid = "%s-%d-%s" % (self.id, number, hexlify(urandom(3)).decode())
        c.vehicle = vehicle
        c.auto_leave_at = None
        if c.status != PREPARING:
            self.set_status(c, PREPARING)
        c.session_id = sid
        c.reservation_id = rid
        c.meter_start_wh = self.journal.meters[c.number - 1]
        c.started = now
        c.last_t = now
        c.next_meter = now + self.config["meter_interval_s"]
        c.charge = Charge(self.limit_w(), max_w, cap_wh, soc_ppm, target_ppm)
        if self.meter is not None:
            self.meter(c.number, True)
            c.charge.target = c.charge.e0 + 0x3FFFFFFF  # the car, not a simulated SoC, ends it
        self.journal.session_started((sid, c.number, vehicle, rid, c.meter_start_wh, c.started))
        c.next_checkpoint = now + self.config["checkpoint_s"]
        self._relay(c, True)
        self.set_status(c, CHARGING)
        self.log(
            "info",
            "session %s started: connector %d, vehicle %s, reservation %s, %d W"
            % (sid, c.number, vehicle, rid, c.charge.power_w()),
        )
        return sid

    def end_session(self, c, reason, now):
        if c.charge is None:
            return
        self.advance(c, now)
        self._relay(c, False)
        energy = c.charge.energy_wh
        self.send(K.METER, c.number, c.session_id, energy, 0, now)
        self.journal.meters[c.number - 1] += energy
        ended = now if now > c.started else c.started  # a clock sync may have stepped time back
        rec = (c.session_id, c.number, c.vehicle, c.reservation_id, energy, c.started, ended, reason)
        self.journal.session_ended(rec)
        self.log("info", "session %s ended: %s, %d Wh in %ds" % (c.session_id, reason, energy, ended - c.started))
        remote = c.remote
        c.clear_session()
        if reason == "EVDisconnected":
            self._leave(c, now)
            return
        self.set_status(c, FINISHING)
        if remote:
            c.auto_leave_at = now + self.config["finishing_s"]

    def _leave(self, c, now):
        """The vehicle is gone: the connector is free again (or Unavailable, or Reserved next)."""
        c.vehicle = None
        c.remote = False
        c.auto_leave_at = None
        if c.status == FAULTED:
            return
        if c.pending_unavailable:
            c.pending_unavailable = False
            self.set_status(c, UNAVAILABLE)
        else:
            self.set_status(c, AVAILABLE)
        self.update_holds(now)

    # --- local events ---------------------------------------------------------------------

    def plug(self, number, vehicle, ev=None):
        """A vehicle plugs in. If the connector (or an "any" reservation) is held for it, charging
        starts and the session id is returned; otherwise the connector is Preparing until the
        hub's REMOTE_START (None is returned). Refused: wrong vehicle, busy, or offline unreserved."""
        c = self.connector(number)
        if type(vehicle) is not str or not vehicle:
            raise Refused(_E_BAD_FIELD, "vehicle id must be a non-empty string")
        if c.vehicle is not None or c.status not in (AVAILABLE, RESERVED):
            raise Refused(_E_INVALID_STATE, "connector %d is %s" % (number, c.status))
        ev_check(ev)
        now = self.now()
        if c.status == RESERVED:
            r = c.hold
            if r.vehicle != vehicle:
                raise Refused(_E_FORBIDDEN, "connector %d is reserved for another vehicle" % number)
        else:
            r = self.reservations.for_vehicle(vehicle, number, now, self.config["hold_before_s"])
        if r is None:
            if self.offline:
                raise Refused(_E_FORBIDDEN, "hub offline: only a reserved vehicle may start")
            c.vehicle = vehicle
            c.remote = False
            self.set_status(c, PREPARING)
            return None
        if self.offline and self.config["offline_policy"] == "stop":
            raise Refused(_E_FORBIDDEN, "hub offline (policy stop): no charging")
        c.remote = False
        return self.start_session(c, vehicle, r.id, ev, now)

    def unplug(self, number):
        c = self.connector(number)
        if c.vehicle is None:
            raise Refused(_E_INVALID_STATE, "nothing is plugged into connector %d" % number)
        now = self.now()
        if c.charge is not None:
            self.end_session(c, "EVDisconnected", now)
        else:
            self._leave(c, now)

    def stop(self, number, reason="Local"):
        """End the running session (local stop button); the vehicle stays plugged (Finishing)."""
        c = self.connector(number)
        if c.charge is None:
            raise Refused(_E_INVALID_STATE, "no session on connector %d" % number)
        if reason not in K.END_REASONS:
            raise Refused(_E_BAD_FIELD, "reason must be one of %s" % (K.END_REASONS,))
        self.end_session(c, reason, self.now())

    def ev_suspend(self, number, suspended):
        """The EV pauses (SuspendedEV) or resumes (Charging) drawing power."""
        c = self.connector(number)
        if c.charge is None:
            raise Refused(_E_INVALID_STATE, "no session on connector %d" % number)
        self.advance(c, self.now())
        self.set_status(c, SUSPENDED_EV if suspended else CHARGING)
        c.charge.paused = suspended

    def fault(self, number, info="fault"):
        c = self.connector(number)
        if c.charge is not None:
            self.end_session(c, "Fault", self.now())
        self.unhold(c)
        c.auto_leave_at = None
        self.set_status(c, FAULTED, info)

    def clear_fault(self, number):
        c = self.connector(number)
        if c.status != FAULTED:
            raise Refused(_E_INVALID_STATE, "connector %d is not Faulted" % number)
        c.vehicle = None
        c.remote = False
        self.set_status(c, UNAVAILABLE if c.pending_unavailable else AVAILABLE)
        c.pending_unavailable = False
        self.update_holds(self.now())

    def unhold(self, c):
        """c stops showing its reservation (which stays booked, to be held elsewhere or later)."""
        if c.hold is not None:
            c.hold.assigned = 0
            c.hold = None

"""The charge point core: connectors, reservations, sessions, journal and link, with no I/O.

A driver (firmware/runner.py on CPython, firmware/micropython/board.py on a board)
owns the transport and calls, in a loop::

    if cp.want_connect(): open the transport; cp.on_connecting(); once it is up: cp.on_connected()
    for obj in decoded frames: cp.receive(obj)
    cp.tick()                          # about every 0.1..1 s
    for obj in cp.take_outgoing(): encode and write
    if cp.should_close: close the transport; cp.on_disconnected()

Local events come in as method calls: ``plug``, ``unplug``, ``fault``, ``clear_fault``,
``stop``, ``ev_suspend``; they raise ``Refused(code, text)`` when not allowed.

Times: ``clock()`` is monotonic integer milliseconds (link timers), ``wall()`` UTC epoch
seconds as an int (possibly accelerated in simulations; charging, meter, reservations). With
``sync_time`` the station follows the hub's clock learnt at WELCOME/PONG. Energy is integer
Wh (mWh inside a charge), power integer W: no float arithmetic on time or energy here, an
ESP32 float is single precision (an epoch in a float32 moves in 128 s steps).
"""

from binascii import hexlify

from transport import kinds as K
from transport.compat import urandom
from transport.errors import (
    E_BAD_FIELD,
    E_FORBIDDEN,
    E_INTERNAL,
    E_INVALID_STATE,
    E_MALFORMED,
    E_NOT_AUTHENTICATED,
    E_UNKNOWN_KIND,
)
from transport.session import Authenticated, ClientSession, Closed, Message, PeerSilent, Reply, Timeout

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
from firmware.link import BACKOFF, CONNECT, GIVE_UP, ONLINE, Link
from firmware.reservations import Reservations
from firmware.hubrequests import HANDLERS

FIRMWARE_VERSION = "evhub-fw/0.1"
END_REASONS = K.END_REASONS
# An ERROR with one of these codes means the hub will never take the record: drop it (logged).
_PERMANENT = (E_BAD_FIELD, E_MALFORMED, E_UNKNOWN_KIND, E_FORBIDDEN)
_BOOT = "boot"
BOOT_TRIES = 3  # BOOTs unanswered on a TCP link before it is dropped (a serial line keeps resending)
HANDSHAKE_TIMEOUT_S = 6  # no answer to HELLO/AUTH this long: the attempt failed
# A serial line answers in milliseconds and loses a frame to noise now and then: a request
# unanswered for this long is sent again (unless the config sets request_timeout_s), and an
# unanswered handshake is restarted on the same line rather than closed and backed off.
SERIAL_REQUEST_TIMEOUT_S = 2
_STATUS = "status"


def _not_authenticated(obj):
    """obj is an ERROR [kind, seq, code, text] with code E_NOT_AUTHENTICATED."""
    t = type(obj)
    return (t is list or t is tuple) and len(obj) > 2 and obj[0] == K.ERROR and obj[2] == E_NOT_AUTHENTICATED


class ChargePoint:
    # A fitted energy meter, meter(n, start=False) -> mWh since the session's start (firmware/evse.py
    # sets it on the instance); a class attribute so a station without one has no extra dict slot.
    meter = None

    def __init__(self, config, clock, wall, journal=None, relay=None, rand=None, log=None, on_config=None):
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
        self._log_fn = log  # log(level, text) or None
        self.on_config = on_config  # on_config(key, value) after a CONFIGURE, e.g. to save it
        self.connectors = [Connector(i + 1) for i in range(n)]
        self.reservations = Reservations()
        self.link = Link(clock, rand, cfg["offline_after_s"])
        # The drivers use the TCP hub when one is configured, else the serial line.
        self.on_serial = not cfg["hub"] and bool(cfg["serial"] or cfg["uart"])
        rt = cfg["request_timeout_s"]
        if self.on_serial and "request_timeout_s" not in config:
            rt = SERIAL_REQUEST_TIMEOUT_S
        self.request_timeout_s = rt
        self.handshake_timeout_s = rt if rt < HANDSHAKE_TIMEOUT_S else HANDSHAKE_TIMEOUT_S
        self.hellos_resent = 0  # serial: handshakes restarted on the line after a lost frame
        self.session = None
        self.booted = False
        self.offline = False
        self.time_offset = 0
        self.close_reason = None
        self._inflight = {}  # seq -> _BOOT | (_STATUS, connector) | (kind, session_id)
        self._sent = {}  # (kind, session_id) -> seq (None: refused, retry on the next link)
        self.dropped_records = 0
        self._boot_tries = 0
        self.internal_errors = 0
        self.rehellos = 0  # handshakes restarted because the hub had forgotten an open session
        for c in self.connectors:
            self._relay(c, False)
        self._close_cut_sessions()

    def _close_cut_sessions(self):
        """Sessions the journal still has running were cut by a reboot or power loss: end them."""
        j = self.journal
        for sid in list(j.running):
            f, energy, at = j.running[sid]
            n = f[1]
            if 1 <= n <= len(j.meters):
                j.meters[n - 1] += energy
            j.session_ended((sid, n, f[2], f[3], energy, f[5], int(at), "PowerLoss"))
            self._log("warning", "session %s was cut by a restart: ended as PowerLoss, %d Wh" % (sid, energy))

    # --- small helpers --------------------------------------------------------------

    def _log(self, level, text):
        if self._log_fn is not None:
            self._log_fn(level, text)

    def now(self):
        """Station wall time (epoch s), on the hub's clock when sync_time is on."""
        return self.wall() + self.time_offset  # int: the board's wall clock gives whole seconds

    def connector(self, number):
        if type(number) is not int or number < 1 or number > len(self.connectors):
            raise Refused(E_BAD_FIELD, "connector must be 1..%d" % len(self.connectors))
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

    @property
    def usable(self):
        """The link is authenticated and BOOT was acknowledged: statuses and records may go."""
        return self.booted and self.session is not None and self.session.authenticated

    # --- the driver's interface --------------------------------------------------------

    def want_connect(self):
        return self.session is None and self.link.poll() == CONNECT

    def on_connecting(self):
        self.link.connecting()

    def on_connected(self):
        """The transport is up: start the handshake (HELLO is queued)."""
        self.link.connected()
        self._new_session()

    def _new_session(self):
        cfg = self.config
        self.session = ClientSession(
            "station",
            self.id,
            cfg["key"],
            clock=self.clock,
            wall=self.wall,
            heartbeat_s=cfg["heartbeat_s"],
            request_timeout_s=self.request_timeout_s,
            handshake_timeout_s=self.handshake_timeout_s,
        )
        self._boot_tries = 0
        self.session.start()
        self.booted = False
        self.close_reason = None
        self._inflight = {}
        self._sent = {}

    def on_disconnected(self, why=None):
        if self.session is None and self.link.state == BACKOFF:
            return
        delay = self.link.lost()
        self._log("info", "link down (%s); next attempt in %d ms" % (why or self.close_reason or "closed", delay))
        self.session = None
        self.booted = False
        self.close_reason = None
        self._inflight = {}
        self._sent = {}

    @property
    def should_close(self):
        return self.close_reason is not None

    def _close(self, why):
        if self.close_reason is None:
            self.close_reason = why

    def take_outgoing(self):
        if self.session is None:
            return []
        return self.session.take_outgoing()

    def receive(self, obj):
        if self.session is None:
            return
        if not self.session.authenticated and _not_authenticated(obj):
            # During our handshake this refuses something sent before our HELLO reached the hub
            # (a ping or record still on a serial line when the hub restarted): not about the new
            # handshake. A HELLO that was itself lost is covered by the handshake timeout.
            return
        for ev in self.session.receive(obj):
            self.handle(ev)
        self._flush()

    # --- session events -----------------------------------------------------------------

    def handle(self, ev):
        if (
            (isinstance(ev, Reply) or isinstance(ev, Message))
            and ev.kind == K.ERROR
            and ev.fields[0] == E_NOT_AUTHENTICATED
            and self.session is not None
            and self.session.authenticated
        ):
            self._hub_forgot(ev.fields[1])
            return
        if isinstance(ev, Message):
            self._on_message(ev)
        elif isinstance(ev, Reply):
            self._on_reply(ev)
        elif isinstance(ev, Timeout):
            self._on_timeout(ev)
        elif isinstance(ev, Authenticated):
            self.link.welcomed()
            self._log("info", "hub welcomed us (heartbeat %ss)" % ev.heartbeat_s)
            self._sync_clock()
            if self.offline:
                self._set_offline(False)
            self.send_boot()
        elif isinstance(ev, PeerSilent):
            self._log("warning", "hub silent for %.0fs" % ev.silent_s)
            self.link.peer_silent()
            self._close("hub silent")
        elif isinstance(ev, Closed):
            self._log("warning", "session closed: %s" % ev.text)
            self._close(ev.text)

    def _hub_forgot(self, text):
        """The hub answers an open session with not_authenticated: its end restarted (a serial line
        outlives the hub process) and forgot us. Start a new handshake at once on the same
        transport instead of pinging into the void until the link is declared silent."""
        self.rehellos += 1
        self._log("warning", "hub does not know this session (%s): new handshake" % (text,))
        if self.link.state == ONLINE:
            self.link.down_since = self.clock()  # offline_after_s counts from here if it fails
        self.on_connected()  # a fresh ClientSession: HELLO queued; journal and statuses follow BOOT

    def _on_message(self, m):
        if m.kind == K.ERROR:
            self._log("warning", "hub error %s: %s" % (m.fields[0], m.fields[1]))
            return
        handler = HANDLERS.get(m.kind)
        if handler is None:
            self.session.send_error(E_UNKNOWN_KIND, "station does not handle %s" % K.kind_name(m.kind), m.seq)
            return
        try:
            after = handler(self, m.fields)
        except Refused as exc:
            self._log("info", "refused %s: %s" % (K.kind_name(m.kind), exc.text))
            self.session.send_error(exc.code, exc.text, m.seq)
            return
        except Exception as exc:  # a bug must not take the station down; the hub sees E_INTERNAL
            self.internal_errors += 1
            self._log("error", "%s failed: %r" % (K.kind_name(m.kind), exc))
            self.session.send_error(E_INTERNAL, "station error", m.seq)
            return
        self.session.send(K.ACK, m.seq)
        if after is not None:
            after()

    def _on_reply(self, r):
        tag = self._inflight.pop(r.seq, None)
        if tag is None:
            return
        if tag == _BOOT:
            if r.ok:
                self.booted = True
                self._log("info", "boot accepted")
                for c in self.connectors:
                    c.changed = True
            else:
                self._log("error", "hub refused BOOT: %s" % (r.fields[1],))
                self._close("boot refused")
            return
        if tag[0] == _STATUS:
            if not r.ok:
                self._log("warning", "hub refused STATUS %d: %s" % (tag[1], r.fields[1]))
            return
        kind, sid = tag
        if r.ok:
            self._sent.pop(tag, None)
            if self.journal.ack(kind, sid):
                self._log("info", "hub stored %s %s" % (K.kind_name(kind), sid))
        elif r.fields[0] in _PERMANENT:
            self._sent.pop(tag, None)
            self.journal.ack(kind, sid)
            self.dropped_records += 1
            self._log("error", "hub rejected %s %s for good (%s); dropped" % (K.kind_name(kind), sid, r.fields[1]))
        else:
            self._sent[tag] = None  # retried on the next link, not in a tight loop
            self._log("warning", "hub refused %s %s (%s); will retry" % (K.kind_name(kind), sid, r.fields[1]))

    def _on_timeout(self, t):
        tag = self._inflight.pop(t.seq, None)
        if tag is None:
            return
        if tag == _BOOT:
            self._boot_tries += 1
            # On a serial line the session is alive (a dead hub shows as PeerSilent, a restarted one as
            # not_authenticated): a new handshake would only add four more frames for the noise to eat.
            if self._boot_tries >= BOOT_TRIES and not self.on_serial:
                self._close("boot not answered")
            else:
                self._log("warning", "boot not answered; sending it again")
                self.send_boot()  # lost on a noisy line: cheaper than a new handshake
        elif tag[0] == _STATUS:
            self.connectors[tag[1] - 1].changed = True
        else:
            self._sent.pop(tag, None)  # sent again by the next flush

    def send_boot(self):
        cfg = self.config
        seq = self.session.request(
            K.BOOT, cfg["lat"], cfg["lon"], len(self.connectors), cfg["max_kw"], FIRMWARE_VERSION
        )
        self._inflight[seq] = _BOOT

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

    def _sync_clock(self):
        if self.config["sync_time"] and self.session is not None:
            off = self.session.hub_time_offset
            delta = off - self.time_offset
            if delta > 1 or delta < -1:
                self.time_offset = off
                for c in self.connectors:  # keep charge timers on the same timeline
                    if c.charge is not None:
                        c.last_t += delta
                        c.next_meter += delta
                    if c.auto_leave_at is not None:
                        c.auto_leave_at += delta

    # --- the periodic work -----------------------------------------------------------------

    def tick(self):
        if self.link.state != BACKOFF and self.link.state != ONLINE and self.link.poll() == GIVE_UP:
            self._close("hub did not answer in time")
        if self.session is not None:
            for ev in self.session.tick():
                if self.on_serial and isinstance(ev, Closed):
                    # The handshake timed out (the only Closed a tick gives): on a serial line a frame
                    # was lost to noise. HELLO again at once; the hub's end restarts its handshake on
                    # a HELLO, and the link's connect timeout still bounds the attempt.
                    self.hellos_resent += 1
                    self._log("info", "handshake not answered; HELLO again on the line")
                    self._new_session()
                    break
                self.handle(ev)
            if self.session.authenticated:
                self._sync_clock()
        offline = self.link.offline()
        if offline != self.offline:
            self._set_offline(offline)
        now = self.now()
        expired = self.reservations.expired(now, self.config["grace_s"])
        if expired:
            for r in expired:
                self._log("info", "reservation %d of %s expired unused" % (r.id, r.vehicle))
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
        self._flush()

    def _flush(self):
        if not self.usable:
            return
        s = self.session
        for c in self.connectors:
            if c.changed:
                c.changed = False
                seq = s.request(K.STATUS, c.number, c.status, c.info)
                self._inflight[seq] = (_STATUS, c.number)
        for rec in self.journal.pending():
            kind = rec[0]
            sid = rec[1][0]
            key = (kind, sid)
            if key in self._sent:
                continue
            if kind == K.SESSION_END and self.journal.is_pending(K.SESSION_START, sid):
                continue  # the hub takes the start first
            seq = s.request(kind, *rec[1])
            self._inflight[seq] = key
            self._sent[key] = seq

    def set_status(self, c, status, info=None):
        """Change a connector's status; the hub hears it at once if the link is usable, else after BOOT."""
        c.go(status, info)
        if c.changed:
            self._log("info", "connector %d %s%s" % (c.number, status, " (%s)" % info if info else ""))
            if self.usable:
                c.changed = False
                seq = self.session.request(K.STATUS, c.number, c.status, c.info)
                self._inflight[seq] = (_STATUS, c.number)

    def _set_offline(self, offline):
        now = self.now()
        self.offline = offline
        policy = self.config["offline_policy"]
        if offline:
            self._log("warning", "hub lost: offline policy %r" % policy)
        else:
            self._log("info", "hub back: normal operation")
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
        if self.usable:
            if c.charge is not None:
                self.session.send(K.METER, 0, c.number, c.session_id, c.charge.energy_wh, c.charge.power_w(), now)
            else:
                self.session.send(K.METER, 0, c.number, None, self.journal.meters[c.number - 1], 0, now)

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
        self._log(
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
        if self.usable:
            self.session.send(K.METER, 0, c.number, c.session_id, energy, 0, now)
        self.journal.meters[c.number - 1] += energy
        ended = now if now > c.started else c.started  # a clock sync may have stepped time back
        rec = (c.session_id, c.number, c.vehicle, c.reservation_id, energy, c.started, ended, reason)
        self.journal.session_ended(rec)
        self._log("info", "session %s ended: %s, %d Wh in %ds" % (c.session_id, reason, energy, ended - c.started))
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
            raise Refused(E_BAD_FIELD, "vehicle id must be a non-empty string")
        if c.vehicle is not None or c.status not in (AVAILABLE, RESERVED):
            raise Refused(E_INVALID_STATE, "connector %d is %s" % (number, c.status))
        ev_check(ev)
        now = self.now()
        if c.status == RESERVED:
            r = c.hold
            if r.vehicle != vehicle:
                raise Refused(E_FORBIDDEN, "connector %d is reserved for another vehicle" % number)
        else:
            r = self.reservations.for_vehicle(vehicle, number, now, self.config["hold_before_s"])
        if r is None:
            if self.offline:
                raise Refused(E_FORBIDDEN, "hub offline: only a reserved vehicle may start")
            c.vehicle = vehicle
            c.remote = False
            self.set_status(c, PREPARING)
            return None
        if self.offline and self.config["offline_policy"] == "stop":
            raise Refused(E_FORBIDDEN, "hub offline (policy stop): no charging")
        c.remote = False
        return self.start_session(c, vehicle, r.id, ev, now)

    def unplug(self, number):
        c = self.connector(number)
        if c.vehicle is None:
            raise Refused(E_INVALID_STATE, "nothing is plugged into connector %d" % number)
        now = self.now()
        if c.charge is not None:
            self.end_session(c, "EVDisconnected", now)
        else:
            self._leave(c, now)

    def stop(self, number, reason="Local"):
        """End the running session (local stop button); the vehicle stays plugged (Finishing)."""
        c = self.connector(number)
        if c.charge is None:
            raise Refused(E_INVALID_STATE, "no session on connector %d" % number)
        if reason not in END_REASONS:
            raise Refused(E_BAD_FIELD, "reason must be one of %s" % (END_REASONS,))
        self.end_session(c, reason, self.now())

    def ev_suspend(self, number, suspended):
        """The EV pauses (SuspendedEV) or resumes (Charging) drawing power."""
        c = self.connector(number)
        if c.charge is None:
            raise Refused(E_INVALID_STATE, "no session on connector %d" % number)
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
            raise Refused(E_INVALID_STATE, "connector %d is not Faulted" % number)
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

    # --- for logs, tools and tests ------------------------------------------------------------

    def snapshot(self):
        out = []
        for c in self.connectors:
            d = {"connector": c.number, "status": c.status, "vehicle": c.vehicle, "session_id": c.session_id}
            if c.charge is not None:
                d["energy_wh"] = c.charge.energy_wh
                d["power_w"] = c.charge.power_w()
                d["soc_ppm"] = c.charge.soc_ppm
            if c.hold is not None:
                d["reservation_id"] = c.hold.id
            out.append(d)
        return out

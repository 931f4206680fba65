"""The charge point core: a Station (firmware/station.py: connectors, sessions, reservations)
and its uplink to the hub (this module: the session, reconnects, request tracking, journal
replay), with no I/O.

A driver (firmware/runner.py on CPython, firmware/micropython/board.py on a board)
owns the transport and calls, in a loop::

    if cp.want_connect(): open the transport; cp.on_connecting(); once it is up: cp.on_connected()
    cp.feed(framer, data)              # bytes from the hub (or cp.receive(obj) per decoded message)
    cp.tick()                          # about every 0.1..1 s
    cp.pour(framer, out)               # queued messages framed onto a bytearray (or cp.take_outgoing())
    if cp.should_close: close the transport; cp.on_disconnected()

Local events come in as method calls: ``plug``, ``unplug``, ``fault``, ``clear_fault``,
``stop``, ``ev_suspend``; they raise ``Refused(code, text)`` when not allowed.

Times: ``clock()`` is monotonic integer milliseconds (link timers), ``wall()`` UTC epoch
seconds as an int (possibly accelerated in simulations; charging, meter, reservations). With
``sync_time`` the station follows the hub's clock learnt at WELCOME/PONG. Energy is integer
Wh (mWh inside a charge), power integer W: no float arithmetic on time or energy here, an
ESP32 float is single precision (an epoch in a float32 moves in 128 s steps).
"""

from transport import kinds as K
from transport.codec import packb, unpackb
from transport.compat import const
from transport.errors import CodecError
from transport.session import Authenticated, ClientSession, Closed, Message, PeerSilent, Reply, Timeout

from firmware.connector import Refused
from firmware.hubrequests import HANDLERS
from firmware.link import Link
from firmware.station import Station

FIRMWARE_VERSION = "evhub-fw/0.1"
# Private constants are folded by the compiler: no name to intern, no global to keep on the board.
# transport.errors' codes and firmware.link's states (tests/test_micropython.py checks them):
_E_MALFORMED = const(1)
_E_UNKNOWN_KIND = const(2)
_E_BAD_FIELD = const(3)
_E_NOT_AUTHENTICATED = const(4)
_E_FORBIDDEN = const(9)
_E_INTERNAL = const(14)
_BACKOFF = const(0)  # Link.state
_ONLINE = const(3)
_CONNECT = const(1)  # Link.poll()
_GIVE_UP = const(2)
_BOOT_TRIES = const(3)  # BOOTs unanswered on a TCP link before it is dropped (a serial line keeps resending)
_HANDSHAKE_TIMEOUT_S = const(6)  # no answer to HELLO/AUTH this long: the attempt failed
# A serial line answers in milliseconds and loses a frame to noise now and then: a request
# unanswered for this long is sent again (unless the config sets request_timeout_s), and an
# unanswered handshake is restarted on the same line rather than closed and backed off.
_SERIAL_REQUEST_TIMEOUT_S = const(2)
# An ERROR with one of these codes means the hub will never take the record: drop it (logged).
_PERMANENT = (_E_BAD_FIELD, _E_MALFORMED, _E_UNKNOWN_KIND, _E_FORBIDDEN)
# Tags of the requests in flight besides records' (kind, session_id): _BOOT, or (_STATUS, connector).
_BOOT = const(-1)
_STATUS = const(-2)


def _not_authenticated(obj):
    """obj is an ERROR [kind, seq, code, text] with code E_NOT_AUTHENTICATED."""
    t = type(obj)
    return (t is list or t is tuple) and len(obj) > 2 and obj[0] == K.ERROR and obj[2] == _E_NOT_AUTHENTICATED


class ChargePoint(Station):
    # Class attributes, not instance ones: each instance attribute is a slot in the instance's dict,
    # which grows by rehashing into one new block of 16 bytes per slot (8 on a 32-bit board): 18-23
    # names take a 368-byte table, 24-29 a 464-byte one. Set one by one in __init__, just after the
    # imports fragmented the heap, 26 names needed 464 contiguous bytes, and in a 64 KB heap that block
    # was sometimes not there (MemoryError here at start-up, depending on where earlier allocations
    # fell: tests/fw_mem.py start-up sweep). Rare counters (set on the instance when they first count)
    # and an optional callback keep the dict at 21 names.
    on_config = None  # on_config(key, value) after a CONFIGURE, e.g. to save it
    hellos_resent = 0  # serial: handshakes restarted on the line after a lost frame
    dropped_records = 0  # records the hub refused for good
    internal_errors = 0  # hub requests that failed with a bug (answered _E_INTERNAL)
    rehellos = 0  # handshakes restarted because the hub had forgotten an open session

    def __init__(self, config, clock, wall, journal=None, relay=None, rand=None, log=None, on_config=None):
        Station.__init__(self, config, clock, wall, journal, relay, log)
        cfg = self.config
        if on_config is not None:
            self.on_config = on_config
        self.link = Link(clock, rand, cfg["offline_after_s"])
        # The drivers use the TCP hub when one is configured, else the serial line.
        self.on_serial = not cfg["hub"] and bool(cfg["serial"] or cfg["uart"])
        rt = cfg["request_timeout_s"]
        if self.on_serial and "request_timeout_s" not in config:
            rt = _SERIAL_REQUEST_TIMEOUT_S
        self.request_timeout_s = rt
        self.handshake_timeout_s = rt if rt < _HANDSHAKE_TIMEOUT_S else _HANDSHAKE_TIMEOUT_S
        self.session = None
        self.booted = False
        self.close_reason = None
        self._inflight = {}  # seq -> _BOOT | (_STATUS, connector) | (kind, session_id)
        self._sent = {}  # (kind, session_id) -> seq (None: refused, retry on the next link)
        self._boot_tries = 0

    @property
    def usable(self):
        """The link is authenticated and BOOT was acknowledged: statuses and records may go."""
        return self.booted and self.session is not None and self.session.authenticated

    # --- what the station sends (firmware/station.py) -------------------------------------------

    def report(self, c):
        """Connector c's STATUS now, if the hub is listening; else c.changed stays set for after BOOT."""
        if self.usable:
            c.changed = False
            seq = self.session.request(K.STATUS, c.number, c.status, c.info)
            self._inflight[seq] = (_STATUS, c.number)

    def send(self, kind, *fields):
        """A message the hub does not answer (METER), if it is listening; dropped otherwise."""
        if self.usable:
            self.session.send(kind, 0, *fields)

    # --- the driver's interface --------------------------------------------------------

    def want_connect(self):
        return self.session is None and self.link.poll() == _CONNECT

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
        if self.session is None and self.link.state == _BACKOFF:
            return
        delay = self.link.lost()
        self.log("info", "link down (%s); next attempt in %d ms" % (why or self.close_reason or "closed", delay))
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

    def feed(self, framer, data):
        """Bytes from the hub through the link's framer: each decoded message is received. An
        undecodable frame is dropped (logged); a FrameError (a stream that cannot resync) is raised."""
        s = self.session
        framer.seal = None if s is None else s.seal  # a new session at each handshake: follow its seal
        for payload in framer.feed(data):
            try:
                obj = unpackb(payload)
            except CodecError as exc:  # one bad frame, not a dead link
                self.log("warning", "undecodable frame dropped: %s" % (exc,))
                continue
            self.receive(obj)

    def pour(self, framer, out):
        """Every queued message framed onto bytearray `out`. On a serial line a 0x00 goes before each
        frame as well as after it, so noise on the delimiter after the hub's last frame from us
        costs that frame only, never this one too."""
        msgs = self.take_outgoing()
        s = self.session
        framer.seal = None if s is None else s.seal
        for m in msgs:
            if self.on_serial:
                out.extend(b"\x00")
            out.extend(framer.encode(packb(m)))

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
            and ev.fields[0] == _E_NOT_AUTHENTICATED
            and self.session is not None
            and self.session.authenticated
        ):
            # The hub answers an open session with not_authenticated: its end restarted (a serial line
            # outlives the hub process) and forgot us. Start a new handshake at once on the same
            # transport instead of pinging into the void until the link is declared silent.
            self.rehellos += 1
            self.log("warning", "hub does not know this session (%s): new handshake" % (ev.fields[1],))
            if self.link.state == _ONLINE:
                self.link.down_since = self.clock()  # offline_after_s counts from here if it fails
            self.on_connected()  # a fresh ClientSession: HELLO queued; journal and statuses follow BOOT
            return
        if isinstance(ev, Message):
            self._on_message(ev)
        elif isinstance(ev, Reply):
            self._on_reply(ev)
        elif isinstance(ev, Timeout):
            self._on_timeout(ev)
        elif isinstance(ev, Authenticated):
            self.link.welcomed()
            self.log("info", "hub welcomed us (heartbeat %ss)" % ev.heartbeat_s)
            self.set_offset(self.session.hub_time_offset)  # the station follows it with sync_time
            if self.offline:
                self.set_offline(False)
            self.send_boot()
        elif isinstance(ev, PeerSilent):
            self.log("warning", "hub silent for %.0fs" % ev.silent_s)
            self.link.peer_silent()
            self._close("hub silent")
        elif isinstance(ev, Closed):
            self.log("warning", "session closed: %s" % ev.text)
            self._close(ev.text)

    def _on_message(self, m):
        if m.kind == K.ERROR:
            self.log("warning", "hub error %s: %s" % (m.fields[0], m.fields[1]))
            return
        handler = HANDLERS.get(m.kind)
        if handler is None:
            self.session.send_error(_E_UNKNOWN_KIND, "station does not handle %s" % K.kind_name(m.kind), m.seq)
            return
        try:
            after = handler(self, m.fields)
        except Refused as exc:
            self.log("info", "refused %s: %s" % (K.kind_name(m.kind), exc.text))
            self.session.send_error(exc.code, exc.text, m.seq)
            return
        except Exception as exc:  # a bug must not take the station down; the hub sees _E_INTERNAL
            self.internal_errors += 1
            self.log("error", "%s failed: %r" % (K.kind_name(m.kind), exc))
            self.session.send_error(_E_INTERNAL, "station error", m.seq)
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
                self.log("info", "boot accepted")
                self.report_all()
            else:
                self.log("error", "hub refused BOOT: %s" % (r.fields[1],))
                self._close("boot refused")
            return
        if tag[0] == _STATUS:
            if not r.ok:
                self.log("warning", "hub refused STATUS %d: %s" % (tag[1], r.fields[1]))
            return
        kind, sid = tag
        if r.ok:
            self._sent.pop(tag, None)
            if self.journal.ack(kind, sid):
                self.log("info", "hub stored %s %s" % (K.kind_name(kind), sid))
        elif r.fields[0] in _PERMANENT:
            self._sent.pop(tag, None)
            self.journal.ack(kind, sid)
            self.dropped_records += 1
            self.log("error", "hub rejected %s %s for good (%s); dropped" % (K.kind_name(kind), sid, r.fields[1]))
        else:
            self._sent[tag] = None  # retried on the next link, not in a tight loop
            self.log("warning", "hub refused %s %s (%s); will retry" % (K.kind_name(kind), sid, r.fields[1]))

    def _on_timeout(self, t):
        tag = self._inflight.pop(t.seq, None)
        if tag is None:
            return
        if tag == _BOOT:
            self._boot_tries += 1
            # On a serial line the session is alive (a dead hub shows as PeerSilent, a restarted one as
            # not_authenticated): a new handshake would only add four more frames for the noise to eat.
            if self._boot_tries >= _BOOT_TRIES and not self.on_serial:
                self._close("boot not answered")
            else:
                self.log("warning", "boot not answered; sending it again")
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

    # --- the periodic work -----------------------------------------------------------------

    def tick(self):
        if self.link.state != _BACKOFF and self.link.state != _ONLINE and self.link.poll() == _GIVE_UP:
            self._close("hub did not answer in time")
        if self.session is not None:
            for ev in self.session.tick():
                if self.on_serial and isinstance(ev, Closed):
                    # The handshake timed out (the only Closed a tick gives): on a serial line a frame
                    # was lost to noise. HELLO again at once; the hub's end restarts its handshake on
                    # a HELLO, and the link's connect timeout still bounds the attempt.
                    self.hellos_resent += 1
                    self.log("info", "handshake not answered; HELLO again on the line")
                    self._new_session()
                    break
                self.handle(ev)
            if self.session.authenticated:
                self.set_offset(self.session.hub_time_offset)
        offline = self.link.offline()
        if offline != self.offline:
            self.set_offline(offline)
        Station.tick(self)
        self._flush()

    def _flush(self):
        """After BOOT's ACK: the STATUS of every changed connector, then the journal's records in order
        (an END only after its START is ACKed), each once per link until answered."""
        if not self.usable:
            return
        s = self.session
        for c in self.connectors:
            if c.changed:
                self.report(c)
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

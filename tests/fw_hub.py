"""A fake hub and a back-to-back wire for firmware tests, on CPython (pytest) and MicroPython.

FakeHub is transport.session.ServerSession plus the hub behaviour the firmware
relies on: BOOT and STATUS are ACKed, METER is taken silently, SESSION_START and
SESSION_END are ACKed (a duplicate is ACKed again and counted), requests to the
station collect their replies. ``down()`` makes it vanish mid-conversation
(the station's link drops, nothing it sent after that is heard).

Wire drives a ChargePoint against a FakeHub on one fake clock, optionally
through the real codec (packb/unpackb) so every message is proven encodable.
Only MicroPython-safe code here: the same file runs inside `micropython`.
"""

from transport import kinds as K
from transport.serversession import ServerSession
from transport.session import Message, Reply

KEY = "00112233445566778899aabbccddeeff"
EPOCH = 1800000000


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return int(self.t * 1000)  # a board's monotonic clock: integer ms (t is in seconds)


class FakeHub:
    def __init__(self, clock, wall, keys=None, heartbeat_s=30):
        self.clock = clock
        self.wall = wall
        self.keys = keys or {"CP-1": KEY}
        self.heartbeat_s = heartbeat_s
        self.server = None
        self.is_up = True
        self.ack_ends = True  # False: the store "fails" and SESSION_END gets no ACK
        self.keep_meters = True  # False: only count them (the MicroPython heap test)
        self.meter_count = 0
        self.links = 0
        self.boots = 0
        self.statuses = []  # (connector, status, info) in arrival order
        self.meters = []
        self.starts = {}  # session_id -> fields (first copy)
        self.ends = {}
        self.records = []  # (kind, session_id) of every SESSION_START/END received, duplicates too
        self.replies = {}  # seq of our request -> Reply
        self.errors = []

    def _key(self, role, peer_id):
        return self.keys.get(peer_id) if role == "station" else None

    def accept(self):
        self.server = ServerSession(self._key, clock=self.clock, wall=self.wall, heartbeat_s=self.heartbeat_s)
        self.links += 1

    def down(self):
        self.is_up = False
        self.server = None

    def up(self):
        self.is_up = True

    def status(self, connector):
        for c, s, _i in reversed(self.statuses):
            if c == connector:
                return s
        return None

    def request(self, kind, *fields):
        return self.server.request(kind, *fields)

    def reply(self, seq):
        return self.replies.get(seq)

    def receive(self, obj):
        if self.server is None:
            return
        for ev in self.server.receive(obj):
            if isinstance(ev, Message):
                self._on_message(ev)
            elif isinstance(ev, Reply):
                self.replies[ev.seq] = ev

    def _on_message(self, m):
        k = m.kind
        f = m.fields
        s = self.server
        if k == K.BOOT:
            self.boots += 1
            s.send(K.ACK, m.seq)
        elif k == K.STATUS:
            self.statuses.append((f[0], f[1], f[2]))
            s.send(K.ACK, m.seq)
        elif k == K.METER:
            self.meter_count += 1
            if self.keep_meters:
                self.meters.append(list(f))
        elif k == K.SESSION_START:
            self.records.append((k, f[0]))
            if f[0] not in self.starts:
                self.starts[f[0]] = list(f)
            s.send(K.ACK, m.seq)
        elif k == K.SESSION_END:
            self.records.append((k, f[0]))
            if self.ack_ends:
                if f[0] not in self.ends:
                    self.ends[f[0]] = list(f)
                s.send(K.ACK, m.seq)
        elif k == K.ERROR:
            self.errors.append(list(f))

    def take_outgoing(self):
        if self.server is None:
            return []
        return self.server.take_outgoing()


class Wire:
    """A ChargePoint and a FakeHub back to back on one fake clock."""

    def __init__(self, cp, hub, clock, codec=None):
        self.cp = cp
        self.hub = hub
        self.clock = clock
        self.codec = codec  # a module with packb/unpackb, or None to pass objects as they are
        self.connected = False

    def _x(self, obj, tx, rx):
        """`obj` across the wire: with a codec, packed, sealed by the sender's session, opened by the receiver's."""
        if self.codec is None:
            return obj
        payload = rx.seal.open(tx.seal.seal(self.codec.packb(obj)), False)
        if payload[:1] == b"\xc1":
            # Sealed for a session the receiver no longer has (a restarted hub): hub.io.link answers it
            # as it answers any message before HELLO, which is what the unsealed message gets here.
            payload = payload[5:-16]
        return self.codec.unpackb(payload)

    def connect_if_due(self):
        if not self.connected and self.cp.want_connect():
            self.cp.on_connecting()
            if self.hub.is_up:
                self.hub.accept()
                self.connected = True
                self.cp.on_connected()
            else:
                self.cp.on_disconnected("connection refused")

    def drop(self, why="link dropped"):
        if self.connected:
            self.connected = False
            if self.hub.server is not None:
                self.hub.server = None
            self.cp.on_disconnected(why)

    def pump(self, rounds=20):
        cp = self.cp
        hub = self.hub
        for _ in range(rounds):
            moved = False
            for m in cp.take_outgoing():
                moved = True
                if self.connected and hub.server is not None:
                    hub.receive(self._x(m, cp.session, hub.server))
            server = hub.server
            for m in hub.take_outgoing():
                moved = True
                if self.connected:
                    cp.receive(self._x(m, server, cp.session))
            if cp.should_close:
                self.drop(cp.close_reason)
            if self.connected and hub.server is None:
                pass  # the hub vanished: the station finds out by silence (PeerSilent) or a reset
            if not moved:
                break

    def step(self, dt=1.0):
        self.clock.t += dt
        self.connect_if_due()
        self.cp.tick()
        self.pump()

    def run(self, seconds, dt=1.0):
        n = int(seconds / dt + 0.5)
        for _ in range(n):
            self.step(dt)

    def run_until(self, cond, limit_s=100000, dt=1.0):
        t = 0.0
        while not cond():
            if t >= limit_s:
                return False
            self.step(dt)
            t += dt
        return True

    def start(self):
        """Connect and finish the handshake, BOOT and statuses."""
        self.connect_if_due()
        self.pump()
        self.step(0.0)

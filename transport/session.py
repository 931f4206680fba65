"""The link session, sans-I/O (h11 style): messages in, events and messages out.

Handshake (the client speaks first; protocol 2, the table in PROTOCOL.md)::

    client -> HELLO [proto, role, id, client_nonce]
    hub    -> CHALLENGE [hub_nonce]
    client -> AUTH [proof]                                 (auth_proof: HMAC-SHA256 over
    hub    -> WELCOME [hub_time, heartbeat_s, hub_proof]   both nonces, role, id, version)  (sealed)

Both sides prove the key (different labels, so neither proof can be reflected as the other);
the client goes open only after checking hub_proof. Both nonces are fresh per link, so a proof
captured on one link is useless on another (replay); a second AUTH on the same link is refused.
From AUTH on, every frame is sealed (transport.framing.Seal: a MAC with a per-direction session key
and sequence number), so nothing can be injected, replayed, reordered or cut on an open link.
After WELCOME either side sends requests (fresh seq) and replies (echoing seq). The client
pings every heartbeat; a side that hears nothing for three heartbeat
intervals reports PeerSilent. Time comes from injected clocks so tests can
drive it: ``clock()`` is monotonic integer milliseconds, ``wall()`` is UTC epoch seconds (an int on
a board: no float time there, an ESP32 float is single precision).

The session never touches a socket: the caller feeds decoded objects to
``receive``, calls ``tick`` about once a second, and sends what
``take_outgoing`` returns, through a framer whose ``seal`` is ``session.seal``.
"""

import hashlib
import sys

from transport import kinds as K
from transport.compat import const, monotonic_ms, urandom, wall_s
from transport.errors import E_AUTH_FAILED, E_FORBIDDEN, E_MALFORMED, E_NOT_AUTHENTICATED, ProtocolError
from transport.messages import MAX_SEQ, make, parse

NONCE_SIZE = const(16)
_MISSED_HEARTBEATS = const(3)  # a peer silent this many heartbeat intervals is reported (PeerSilent)
_MAX_PENDING = const(64)  # requests awaiting a reply; bounded so a dead peer cannot grow memory
_LABEL = const(b"evhub2 ")  # + one byte: 1 client proof, 2 hub proof, 3 and 4 the session keys

# The kinds this module handles itself (tests/test_micropython.py checks them against the table).
_HELLO = const(1)
_CHALLENGE = const(2)
_AUTH = const(3)
_WELCOME = const(4)
_PING = const(5)
_PONG = const(6)
_ERROR = const(7)
_ACK = const(8)
# The kinds that answer a request: ACK, ERROR, PONG, WELCOME, NEAREST_RESULT, RESERVE_RESULT,
# RESERVATIONS, STATIONS, STATS, SESSIONS.
_REPLY_KINDS = const((8, 7, 6, 4, 62, 64, 67, 91, 93, 74))

# Session states (``session.state``): a client goes idle -> hello_sent -> auth_sent -> open, a
# server wait_hello -> challenged -> open; either ends closed.
_S_IDLE = const("idle")
_S_HELLO_SENT = const("hello_sent")
_S_AUTH_SENT = const("auth_sent")
S_WAIT_HELLO = const("wait_hello")
S_OPEN = const("open")
_S_CLOSED = const("closed")


# --- HMAC-SHA256 (MicroPython has hashlib.sha256 but no hmac module) ---------

_BLOCK = const(64)


def hmac_sha256(key, data=None):
    """HMAC-SHA256(key, data). With no data: `key` prepared (its inner and outer padded blocks), which
    any later call takes in place of the key, so a key that signs many messages is padded once (on a
    board each padding is a few short-lived buffers that fragment a small heap)."""
    if type(key) is not tuple:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        inner = bytearray(b"\x36" * _BLOCK)
        outer = bytearray(b"\x5c" * _BLOCK)
        for i in range(len(key)):
            inner[i] ^= key[i]
            outer[i] ^= key[i]
        key = (inner, outer)
        if data is None:
            return key
    inner = hashlib.sha256(key[0])
    inner.update(data)
    outer = hashlib.sha256(key[1])
    outer.update(inner.digest())
    return outer.digest()


def auth_proof(key, client_nonce, hub_nonce, role, device_id):
    """(client proof, hub proof, client->hub key, hub->client key): HMAC-SHA256(key, label | B), with
    B = both nonces, role, id and protocol version, and one label each ("evhub2 " + byte 1..4)."""
    b = client_nonce + hub_nonce + role.encode() + b"|" + device_id.encode() + b"|" + bytes((48 + K.PROTOCOL_VERSION,))
    key = hmac_sha256(key)  # padded once for the four
    return [hmac_sha256(key, _LABEL + bytes((n,)) + b) for n in (1, 2, 3, 4)]


# --- events ---------------------------------------------------------------------
# Six unrelated classes: callers dispatch on isinstance.


class Authenticated:
    def __init__(self, peer_id, role, time, heartbeat_s):
        self.peer_id = peer_id
        self.role = role
        self.time = time
        self.heartbeat_s = heartbeat_s


class Message:
    """A request or event from the peer, validated against the kind table."""

    def __init__(self, kind, seq, fields):
        self.kind = kind
        self.seq = seq
        self.fields = fields


class Reply:
    """The peer's answer (ACK, ERROR or a *_RESULT) to one of our requests; ``ok`` unless ERROR."""

    def __init__(self, kind, seq, fields, request_kind):
        self.kind = kind
        self.seq = seq
        self.fields = fields
        self.request_kind = request_kind
        self.ok = kind != _ERROR


class Timeout:
    def __init__(self, seq, request_kind):
        self.seq = seq
        self.request_kind = request_kind


class PeerSilent:
    def __init__(self, silent_s):
        self.silent_s = silent_s


class Closed:
    """The session is over (handshake refused, or a fatal protocol error); close the link."""

    def __init__(self, code, text):
        self.code = code
        self.text = text


if sys.implementation.name != "micropython":  # for logs and debugging on CPython; the board has no use for it

    def _repr(self):
        d = self.__dict__
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (k, d[k]) for k in sorted(d)))

    for _c in (Authenticated, Message, Reply, Timeout, PeerSilent, Closed):
        _c.__repr__ = _repr


# --- the common part --------------------------------------------------------------


class _Session:
    # Defaults read from the class until a session sets its own: each attribute an instance holds
    # costs it a slot, and a big instance dict is a big contiguous block when the link comes up.
    peer_id = None
    role = None
    _silent_reported = False

    def __init__(self, clock, wall, heartbeat_s, request_timeout_s):
        self.clock = clock or monotonic_ms  # integer ms
        self.wall = wall or wall_s  # epoch s
        self.heartbeat_s = heartbeat_s
        self.request_timeout_s = request_timeout_s
        self.state = _S_IDLE
        self._outgoing = []
        self._pending = {}  # seq -> (request_kind, deadline in clock ms)
        self._next_seq = 1
        self._last_rx = self.clock()
        # The framer's (framer.seal = session.seal); started at the handshake. Imported here, not at
        # the top: the board loads framing after session, and moving it first fragments a 64 KB heap.
        from transport.framing import Seal

        self.seal = Seal()

    @property
    def authenticated(self):
        return self.state == S_OPEN

    def take_outgoing(self):
        out = self._outgoing
        self._outgoing = []
        return out

    def _queue(self, msg):
        self._outgoing.append(msg)

    def send(self, kind, seq, *fields):
        """A reply (seq of the request) or an event (seq 0)."""
        self._queue(make(kind, seq, *fields))

    def send_error(self, code, text, seq=0):
        self._queue(make(_ERROR, seq, code, text))

    def request(self, kind, *fields):
        """Queue a request; its Reply or Timeout event comes later. Returns the seq."""
        if self.state != S_OPEN:
            raise ProtocolError(E_NOT_AUTHENTICATED, "session is not open", 0)
        pending = self._pending
        if len(pending) >= _MAX_PENDING:  # forget the one closest to its timeout
            oldest = None
            for seq in pending:
                if oldest is None or pending[seq][1] < pending[oldest][1]:
                    oldest = seq
            del pending[oldest]
        seq = self._next_seq  # the next number no pending request holds
        for _ in range(_MAX_PENDING + 1):
            self._next_seq = seq + 1 if seq < MAX_SEQ else 1
            if seq not in pending:
                break
            seq = self._next_seq
        self._queue(make(kind, seq, *fields))
        pending[seq] = (kind, self.clock() + self.request_timeout_s * 1000)
        return seq

    def close(self, code, text):
        self.state = _S_CLOSED
        return Closed(code, text)

    def receive(self, obj):
        """Feed one decoded object; returns a list of events."""
        if self.state == _S_CLOSED:
            return []
        self._last_rx = self.clock()
        if self._silent_reported:  # only then: the instance dict stays as small as the class allows
            self._silent_reported = False
        try:
            kind, seq, fields = parse(obj)
        except ProtocolError as exc:
            if self.state != S_OPEN:
                self.send_error(exc.code, exc.text, exc.seq)
                return [self.close(exc.code, exc.text)]
            self.send_error(exc.code, exc.text, exc.seq)
            return []
        if self.state != S_OPEN:
            return self._handshake(kind, seq, fields)
        return self._open(kind, seq, fields)

    def _open(self, kind, seq, fields):
        if kind == _PING:
            self.send(_PONG, seq, int(self.wall()))
            return []
        if kind in (_HELLO, _CHALLENGE, _AUTH, _WELCOME):
            self.send_error(E_AUTH_FAILED, "handshake already done (replayed %s refused)" % K.kind_name(kind), seq)
            return []
        # Each side numbers its own requests, so a peer's request may carry the same seq as one
        # of ours: only a reply kind can answer a pending request.
        pending = self._pending.pop(seq, None) if seq and kind in _REPLY_KINDS else None
        if pending is not None:
            return [Reply(kind, seq, fields, pending[0])]
        if kind == _PONG:
            return []  # a late pong after its ping timed out
        if kind == _ERROR:
            return [Message(kind, seq, fields)]
        if kind == _ACK:
            return []  # a late ack
        if self.role is not None and not self._may_receive(kind):
            self.send_error(E_FORBIDDEN, "%s may not send %s" % (self._peer_role(), K.kind_name(kind)), seq)
            return []
        return [Message(kind, seq, fields)]

    def tick(self):
        """Call about once a second: heartbeats, request timeouts, peer silence."""
        if self.state == _S_CLOSED:
            return []
        now = self.clock()
        events = []
        if self._pending:
            expired = [seq for seq, (_k, deadline) in self._pending.items() if deadline <= now]
            for seq in expired:
                kind = self._pending.pop(seq)[0]
                if kind != _PING:
                    events.append(Timeout(seq, kind))
        silent = now - self._last_rx  # ms
        if silent > _MISSED_HEARTBEATS * 1000 * self.heartbeat_s and not self._silent_reported:
            self._silent_reported = True
            events.append(PeerSilent(silent // 1000))
        return events


# --- client (charge point, vehicle, operator) --------------------------------------


class ClientSession(_Session):
    _last_ping = 0
    hub_time_offset = 0  # hub epoch - our epoch, from WELCOME and PONG
    handshake_timeout_s = 6

    def __init__(
        self,
        role,
        device_id,
        key,
        clock=None,
        wall=None,
        heartbeat_s=30,
        request_timeout_s=15,
        nonce=None,
        handshake_timeout_s=6,
    ):
        _Session.__init__(self, clock, wall, heartbeat_s, request_timeout_s)
        # A lost handshake frame (a noisy serial line) is retried soon, not after a request timeout.
        if handshake_timeout_s != 6:
            self.handshake_timeout_s = handshake_timeout_s
        # A session holds at most 17 attributes (seal included): one more grows its dict to a 23-slot
        # block at WELCOME, which a board's fragmented heap does not always have.
        if role not in K.ROLES:
            raise ValueError("role must be one of %s" % (K.ROLES,))
        self.role = role
        self.device_id = device_id
        self.key = key.encode() if type(key) is str else key  # provisioned as a hex string
        self.client_nonce = nonce or urandom(NONCE_SIZE)

    def start(self):
        self.state = _S_HELLO_SENT
        self._last_rx = self.clock()
        self._queue(make(_HELLO, 0, K.PROTOCOL_VERSION, self.role, self.device_id, self.client_nonce))

    def _peer_role(self):
        return "hub"

    def _may_receive(self, kind):
        d = K.spec(kind)[1]
        return d == "*" or d[0] == "h"

    def _handshake(self, kind, seq, fields):
        if kind == _ERROR:
            return [self.close(fields[0], fields[1])]
        if self.state == _S_HELLO_SENT and kind == _CHALLENGE:
            hub_nonce = fields[0]
            if len(hub_nonce) != NONCE_SIZE:
                return [self.close(E_MALFORMED, "challenge nonce must be %d bytes" % NONCE_SIZE)]
            macs = auth_proof(self.key, self.client_nonce, hub_nonce, self.role, self.device_id)
            self._queue(make(_AUTH, 0, macs[0]))
            self.seal.start(macs[2], macs[3])
            # What WELCOME must carry. Kept by the seal, not the session: a 17th instance attribute
            # grows the session's dict to a 23-slot block, which a fragmented 64 KB heap refuses.
            self.seal.hub_proof = macs[1]
            self.seal.tx = -1  # AUTH goes out plain; the hub seals from WELCOME on
            self.state = _S_AUTH_SENT
            return []
        if self.state == _S_AUTH_SENT and kind == _WELCOME:
            # Only a hub that knows our key could seal WELCOME and sign it: a fake hub stops here.
            proof = fields[2] if len(fields) > 2 else None
            diff = 0 if type(proof) is bytes and len(proof) == 32 else 1
            for i in range(32 if diff == 0 else 0):  # compared in constant time
                diff |= proof[i] ^ self.seal.hub_proof[i]
            if diff:
                return [self.close(E_AUTH_FAILED, "hub did not prove the key")]
            self.state = S_OPEN
            self.heartbeat_s = fields[1] or self.heartbeat_s
            self.hub_time_offset = fields[0] - int(self.wall())
            self._last_ping = self.clock()
            return [Authenticated("hub", "hub", fields[0], self.heartbeat_s)]
        return [self.close(E_NOT_AUTHENTICATED, "unexpected %s during handshake" % K.kind_name(kind))]

    def _open(self, kind, seq, fields):
        if kind == _PONG and seq in self._pending:
            self.hub_time_offset = fields[0] - int(self.wall())
        return _Session._open(self, kind, seq, fields)

    def tick(self):
        events = _Session.tick(self)
        if self.state == S_OPEN and self.clock() - self._last_ping >= self.heartbeat_s * 1000:
            self._last_ping = self.clock()
            self.request(_PING, int(self.wall()))
        if (
            self.state in (_S_HELLO_SENT, _S_AUTH_SENT)
            and self.clock() - self._last_rx > self.handshake_timeout_s * 1000
        ):
            events.append(self.close(E_AUTH_FAILED, "hub did not answer the handshake"))
        return events


# --- the hub's end ---------------------------------------------------------------------
# ServerSession (and equal_digests) live in transport.serversession, which a station never
# loads; importing them from here loads it on first use.


def __getattr__(name):
    if name == "ServerSession" or name == "equal_digests":
        from transport import serversession

        return getattr(serversession, name)
    raise AttributeError(name)

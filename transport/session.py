"""The link session, sans-I/O (h11 style): messages in, events and messages out.

Handshake (the client speaks first)::

    client -> HELLO [proto, role, id, client_nonce]
    hub    -> CHALLENGE [hub_nonce]
    client -> AUTH [proof]      proof = HMAC-SHA256(key, "evhub1" | client_nonce | hub_nonce | role | id)
    hub    -> WELCOME [hub_time, heartbeat_s]

Both nonces are fresh per link, so a proof captured on one link is useless on
another (replay); a second AUTH on the same link is refused. After WELCOME
either side sends requests (fresh seq) and replies (echoing seq). The client
pings every heartbeat; a side that hears nothing for MISSED_HEARTBEATS
intervals reports PeerSilent. Time comes from injected clocks so tests can
drive it: ``clock()`` is monotonic seconds, ``wall()`` is UTC epoch seconds.

The session never touches a socket: the caller feeds decoded objects to
``receive``, calls ``tick`` about once a second, and sends what
``take_outgoing`` returns.
"""

import hashlib
import time

from transport import kinds as K
from transport.compat import const, monotonic, urandom
from transport.errors import (
    E_AUTH_FAILED,
    E_BAD_FIELD,
    E_FORBIDDEN,
    E_MALFORMED,
    E_NOT_AUTHENTICATED,
    E_UNSUPPORTED_VERSION,
    ProtocolError,
)
from transport.messages import MAX_SEQ, make, parse

NONCE_SIZE = const(16)
MISSED_HEARTBEATS = const(3)
MAX_PENDING = const(64)  # requests awaiting a reply; bounded so a dead peer cannot grow memory
MAX_ID_LENGTH = const(64)
_PROOF_TAG = b"evhub1"

# Session states.
S_IDLE = "idle"
S_HELLO_SENT = "hello_sent"
S_AUTH_SENT = "auth_sent"
S_WAIT_HELLO = "wait_hello"
S_CHALLENGED = "challenged"
S_OPEN = "open"
S_CLOSED = "closed"


# --- HMAC-SHA256 (MicroPython has hashlib.sha256 but no hmac module) ---------

_BLOCK = const(64)


def hmac_sha256(key, data):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(data)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def equal_digests(a, b):
    """Compare in time independent of where the first difference is."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def auth_proof(key, client_nonce, hub_nonce, role, device_id):
    return hmac_sha256(key, _PROOF_TAG + client_nonce + hub_nonce + role.encode() + b"|" + device_id.encode())


def key_bytes(key):
    """Keys are provisioned as hex strings; accept str or bytes."""
    if type(key) is str:
        return key.encode()
    return key


# --- events ---------------------------------------------------------------------


class Authenticated:
    def __init__(self, peer_id, role, time, heartbeat_s):
        self.peer_id = peer_id
        self.role = role
        self.time = time
        self.heartbeat_s = heartbeat_s

    def __repr__(self):
        return "Authenticated(%r, %r)" % (self.peer_id, self.role)


class Message:
    """A request or event from the peer, validated against the kind table."""

    def __init__(self, kind, seq, fields):
        self.kind = kind
        self.seq = seq
        self.fields = fields

    def __repr__(self):
        return "Message(%s, %d, %r)" % (K.kind_name(self.kind), self.seq, self.fields)


class Reply:
    """The peer's answer (ACK, ERROR or a *_RESULT) to one of our requests."""

    def __init__(self, kind, seq, fields, request_kind):
        self.kind = kind
        self.seq = seq
        self.fields = fields
        self.request_kind = request_kind

    @property
    def ok(self):
        return self.kind != K.ERROR

    def __repr__(self):
        return "Reply(%s to %s, %d, %r)" % (K.kind_name(self.kind), K.kind_name(self.request_kind), self.seq, self.fields)


class Timeout:
    def __init__(self, seq, request_kind):
        self.seq = seq
        self.request_kind = request_kind

    def __repr__(self):
        return "Timeout(%s, %d)" % (K.kind_name(self.request_kind), self.seq)


class PeerSilent:
    def __init__(self, silent_s):
        self.silent_s = silent_s

    def __repr__(self):
        return "PeerSilent(%.1fs)" % self.silent_s


class Closed:
    """The session is over (handshake refused, or a fatal protocol error); close the link."""

    def __init__(self, code, text):
        self.code = code
        self.text = text

    def __repr__(self):
        return "Closed(%d, %r)" % (self.code, self.text)


# --- the common part --------------------------------------------------------------


class _Session:
    def __init__(self, clock, wall, heartbeat_s, request_timeout_s):
        self.clock = clock or monotonic
        self.wall = wall or time.time
        self.heartbeat_s = heartbeat_s
        self.request_timeout_s = request_timeout_s
        self.state = S_IDLE
        self.peer_id = None
        self.role = None
        self._outgoing = []
        self._pending = {}  # seq -> (request_kind, deadline)
        self._next_seq = 1
        self._last_rx = self.clock()
        self._silent_reported = False
        self.errors_received = 0
        self.errors_sent = 0

    @property
    def authenticated(self):
        return self.state == S_OPEN

    def take_outgoing(self):
        out = self._outgoing
        self._outgoing = []
        return out

    def _queue(self, msg):
        self._outgoing.append(msg)

    def _alloc_seq(self):
        seq = self._next_seq
        for _ in range(MAX_PENDING + 1):
            self._next_seq = seq + 1 if seq < MAX_SEQ else 1
            if seq not in self._pending:
                break
            seq = self._next_seq
        return seq

    def send(self, kind, seq, *fields):
        """A reply (seq of the request) or an event (seq 0)."""
        self._queue(make(kind, seq, *fields))

    def send_error(self, code, text, seq=0):
        self.errors_sent += 1
        self._queue(make(K.ERROR, seq, code, text))

    def request(self, kind, *fields):
        """Queue a request; its Reply or Timeout event comes later. Returns the seq."""
        if self.state != S_OPEN:
            raise ProtocolError(E_NOT_AUTHENTICATED, "session is not open", 0)
        if len(self._pending) >= MAX_PENDING:
            self._expire_oldest()
        seq = self._alloc_seq()
        self._queue(make(kind, seq, *fields))
        self._pending[seq] = (kind, self.clock() + self.request_timeout_s)
        return seq

    def _expire_oldest(self):
        oldest = None
        for seq, (_k, deadline) in self._pending.items():
            if oldest is None or deadline < self._pending[oldest][1]:
                oldest = seq
        if oldest is not None:
            del self._pending[oldest]

    def pending_count(self):
        return len(self._pending)

    def close(self, code, text):
        self.state = S_CLOSED
        return Closed(code, text)

    def receive(self, obj):
        """Feed one decoded object; returns a list of events."""
        if self.state == S_CLOSED:
            return []
        self._last_rx = self.clock()
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
        if kind == K.PING:
            self.send(K.PONG, seq, int(self.wall()))
            return []
        if kind in (K.HELLO, K.CHALLENGE, K.AUTH, K.WELCOME):
            self.send_error(E_AUTH_FAILED, "handshake already done (replayed %s refused)" % K.kind_name(kind), seq)
            return []
        # Each side numbers its own requests, so a peer's request may carry the same seq as one
        # of ours: only a reply kind can answer a pending request.
        pending = self._pending.pop(seq, None) if seq and kind in _REPLY_KINDS else None
        if pending is not None:
            if kind == K.ERROR:
                self.errors_received += 1
            return [Reply(kind, seq, fields, pending[0])]
        if kind == K.PONG:
            return []  # a late pong after its ping timed out
        if kind == K.ERROR:
            self.errors_received += 1
            return [Message(kind, seq, fields)]
        if kind == K.ACK:
            return []  # a late ack
        if self.role is not None and not self._may_receive(kind):
            self.send_error(E_FORBIDDEN, "%s may not send %s" % (self._peer_role(), K.kind_name(kind)), seq)
            return []
        return [Message(kind, seq, fields)]

    def tick(self):
        """Call about once a second: heartbeats, request timeouts, peer silence."""
        if self.state == S_CLOSED:
            return []
        now = self.clock()
        events = []
        if self._pending:
            expired = [seq for seq, (_k, deadline) in self._pending.items() if deadline <= now]
            for seq in expired:
                kind = self._pending.pop(seq)[0]
                if kind != K.PING:
                    events.append(Timeout(seq, kind))
        silent = now - self._last_rx
        if silent > MISSED_HEARTBEATS * self.heartbeat_s and not self._silent_reported:
            self._silent_reported = True
            events.append(PeerSilent(silent))
        return events


_REPLY_KINDS = (
    K.ACK,
    K.ERROR,
    K.PONG,
    K.WELCOME,
    K.NEAREST_RESULT,
    K.RESERVE_RESULT,
    K.RESERVATIONS,
    K.STATIONS,
    K.STATS,
)


# --- client (charge point, vehicle, operator) --------------------------------------


class ClientSession(_Session):
    def __init__(self, role, device_id, key, clock=None, wall=None, heartbeat_s=30, request_timeout_s=15, nonce=None,
                 handshake_timeout_s=6):
        _Session.__init__(self, clock, wall, heartbeat_s, request_timeout_s)
        # A lost handshake frame (a noisy serial line) is retried soon, not after a request timeout.
        self.handshake_timeout_s = handshake_timeout_s
        if role not in K.ROLES:
            raise ValueError("role must be one of %s" % (K.ROLES,))
        self.role = role
        self.device_id = device_id
        self.key = key_bytes(key)
        self._nonce = nonce or urandom(NONCE_SIZE)
        self._last_ping = 0
        self.hub_time_offset = 0  # hub epoch - our epoch, from WELCOME and PONG

    def start(self):
        self.state = S_HELLO_SENT
        self._last_rx = self.clock()
        self._queue(make(K.HELLO, 0, K.PROTOCOL_VERSION, self.role, self.device_id, self._nonce))

    def _peer_role(self):
        return "hub"

    def _may_receive(self, kind):
        d = K.spec(kind)[1]
        return d == "*" or d[0] == "h"

    def _handshake(self, kind, seq, fields):
        if kind == K.ERROR:
            return [self.close(fields[0], fields[1])]
        if self.state == S_HELLO_SENT and kind == K.CHALLENGE:
            hub_nonce = fields[0]
            if len(hub_nonce) != NONCE_SIZE:
                return [self.close(E_MALFORMED, "challenge nonce must be %d bytes" % NONCE_SIZE)]
            proof = auth_proof(self.key, self._nonce, hub_nonce, self.role, self.device_id)
            self._queue(make(K.AUTH, 0, proof))
            self.state = S_AUTH_SENT
            return []
        if self.state == S_AUTH_SENT and kind == K.WELCOME:
            self.state = S_OPEN
            self.heartbeat_s = fields[1] or self.heartbeat_s
            self.hub_time_offset = fields[0] - int(self.wall())
            self._last_ping = self.clock()
            return [Authenticated("hub", "hub", fields[0], self.heartbeat_s)]
        return [self.close(E_NOT_AUTHENTICATED, "unexpected %s during handshake" % K.kind_name(kind))]

    def _open(self, kind, seq, fields):
        if kind == K.PONG and seq in self._pending:
            self.hub_time_offset = fields[0] - int(self.wall())
        return _Session._open(self, kind, seq, fields)

    def tick(self):
        events = _Session.tick(self)
        if self.state == S_OPEN and self.clock() - self._last_ping >= self.heartbeat_s:
            self._last_ping = self.clock()
            self.request(K.PING, int(self.wall()))
        if self.state in (S_HELLO_SENT, S_AUTH_SENT) and self.clock() - self._last_rx > self.handshake_timeout_s:
            events.append(self.close(E_AUTH_FAILED, "hub did not answer the handshake"))
        return events

    def hub_now(self):
        """The hub's wall clock as far as we know it (epoch seconds)."""
        return int(self.wall()) + self.hub_time_offset


# --- server (the hub's end of a link) -----------------------------------------------


class ServerSession(_Session):
    """`lookup_key(role, id) -> key bytes or None` decides who may connect."""

    def __init__(self, lookup_key, clock=None, wall=None, heartbeat_s=30, request_timeout_s=15, nonce_source=None):
        _Session.__init__(self, clock, wall, heartbeat_s, request_timeout_s)
        self.lookup_key = lookup_key
        self._urandom = nonce_source or urandom
        self.state = S_WAIT_HELLO
        self._client_nonce = None
        self._hub_nonce = None
        self._key = None

    def _peer_role(self):
        return self.role or "peer"

    def _may_receive(self, kind):
        return K.may_send(self.role, kind)

    def _refuse(self, code, text, seq=0):
        self.send_error(code, text, seq)
        return [self.close(code, text)]

    def _handshake(self, kind, seq, fields):
        if self.state == S_WAIT_HELLO:
            if kind != K.HELLO:
                return self._refuse(E_NOT_AUTHENTICATED, "send hello first", seq)
            proto, role, peer_id, nonce = fields[0], fields[1], fields[2], fields[3]
            if proto != K.PROTOCOL_VERSION:
                return self._refuse(E_UNSUPPORTED_VERSION, "protocol %d not supported (hub speaks %d)" % (proto, K.PROTOCOL_VERSION))
            if role not in K.ROLES:
                return self._refuse(E_BAD_FIELD, "role must be one of %s" % (", ".join(K.ROLES),))
            if not peer_id or len(peer_id) > MAX_ID_LENGTH:
                return self._refuse(E_BAD_FIELD, "id must be 1..%d characters" % MAX_ID_LENGTH)
            if len(nonce) != NONCE_SIZE:
                return self._refuse(E_BAD_FIELD, "nonce must be %d bytes" % NONCE_SIZE)
            key = self.lookup_key(role, peer_id)
            self.role = role
            self.peer_id = peer_id
            self._client_nonce = nonce
            # An unknown id still gets a challenge, so ids cannot be probed; it fails at AUTH.
            self._key = key_bytes(key) if key is not None else None
            self._hub_nonce = self._urandom(NONCE_SIZE)
            self._queue(make(K.CHALLENGE, seq, self._hub_nonce))
            self.state = S_CHALLENGED
            return []
        if self.state == S_CHALLENGED and kind == K.AUTH:
            proof = fields[0]
            ok = self._key is not None and equal_digests(
                proof, auth_proof(self._key, self._client_nonce, self._hub_nonce, self.role, self.peer_id)
            )
            if not ok:
                return self._refuse(E_AUTH_FAILED, "unknown id or wrong key", seq)
            self.state = S_OPEN
            self._queue(make(K.WELCOME, seq, int(self.wall()), self.heartbeat_s))
            return [Authenticated(self.peer_id, self.role, int(self.wall()), self.heartbeat_s)]
        return self._refuse(E_NOT_AUTHENTICATED, "unexpected %s during handshake" % K.kind_name(kind), seq)

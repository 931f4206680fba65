"""The hub's end of a link session (see transport.session for the protocol and the client).

Its own module so that a station, which only ever dials the hub, does not load it:
``transport.session.ServerSession`` still works everywhere (imported from here).
"""

from transport import kinds as K
from transport.compat import const, urandom
from transport.errors import E_AUTH_FAILED, E_BAD_FIELD, E_NOT_AUTHENTICATED, E_UNSUPPORTED_VERSION
from transport.messages import make
from transport.session import NONCE_SIZE, S_OPEN, S_WAIT_HELLO, Authenticated, _Session, auth_proof

# Private copies of what this module needs (tests/test_micropython.py checks the kinds against the table).
_HELLO = const(1)
_CHALLENGE = const(2)
_AUTH = const(3)
_WELCOME = const(4)
_S_CHALLENGED = const("challenged")
_MAX_ID_LENGTH = const(64)
# An unknown id is checked against this key, exactly as a known one against its own: the same
# work and the same path, so the time to refuse does not tell whether an id exists.
_UNKNOWN_KEY = urandom(32)

__all__ = ["ServerSession", "equal_digests", "valid_id"]


def equal_digests(a, b):
    """Compare in time independent of where the first difference is."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def valid_id(peer_id):
    """1..64 characters of [A-Za-z0-9._:-]: safe to log, to print and to use as a key."""
    if type(peer_id) is not str or not 0 < len(peer_id) <= _MAX_ID_LENGTH:
        return False
    for c in peer_id:  # compared, not looked up in a set: the fake hub shares a small heap with the board
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "._:-"):
            return False
    return True


class ServerSession(_Session):
    """`lookup_key(role, id) -> key bytes or None` decides who may connect."""

    client_nonce = hub_nonce = key = None  # set at HELLO
    known = False

    def __init__(self, lookup_key, clock=None, wall=None, heartbeat_s=30, request_timeout_s=15, nonce_source=None):
        _Session.__init__(self, clock, wall, heartbeat_s, request_timeout_s)
        self.lookup_key = lookup_key
        self.nonce_source = nonce_source or urandom
        self.state = S_WAIT_HELLO

    def _peer_role(self):
        return self.role or "peer"

    def _may_receive(self, kind):
        return K.may_send(self.role, kind)

    def _refuse(self, code, text, seq=0):
        self.send_error(code, text, seq)
        return [self.close(code, text)]

    def _handshake(self, kind, seq, fields):
        if self.state == S_WAIT_HELLO:
            if kind != _HELLO:
                return self._refuse(E_NOT_AUTHENTICATED, "send hello first", seq)
            proto, role, peer_id, nonce = fields[0], fields[1], fields[2], fields[3]
            if proto != K.PROTOCOL_VERSION:
                return self._refuse(
                    E_UNSUPPORTED_VERSION, "protocol %d not supported (hub speaks %d)" % (proto, K.PROTOCOL_VERSION)
                )
            if role not in K.ROLES:
                return self._refuse(E_BAD_FIELD, "role must be one of %s" % (", ".join(K.ROLES),))
            if not valid_id(peer_id):  # before anything logs it
                return self._refuse(E_BAD_FIELD, "id must be 1..%d characters of A-Z a-z 0-9 . _ : -" % _MAX_ID_LENGTH)
            if len(nonce) != NONCE_SIZE:
                return self._refuse(E_BAD_FIELD, "nonce must be %d bytes" % NONCE_SIZE)
            key = self.lookup_key(role, peer_id)
            self.role = role
            self.peer_id = peer_id
            self.client_nonce = nonce
            # An unknown id still gets a challenge and the same proof check (against a key nobody
            # has), so ids cannot be probed by the answer or its timing; it fails at AUTH.
            self.known = key is not None
            self.key = _UNKNOWN_KEY if key is None else key.encode() if type(key) is str else key
            self.hub_nonce = self.nonce_source(NONCE_SIZE)
            self._queue(make(_CHALLENGE, seq, self.hub_nonce))
            self.state = _S_CHALLENGED
            return []
        if self.state == _S_CHALLENGED and kind == _AUTH:
            macs = auth_proof(self.key, self.client_nonce, self.hub_nonce, self.role, self.peer_id)
            ok = equal_digests(fields[0], macs[0])  # computed for unknown ids too
            if not (ok and self.known):
                return self._refuse(E_AUTH_FAILED, "unknown id or wrong key", seq)
            self.state = S_OPEN
            self.seal.start(macs[3], macs[2])  # WELCOME and everything after it is sealed, both ways
            self._queue(make(_WELCOME, seq, int(self.wall()), self.heartbeat_s, macs[1]))
            return [Authenticated(self.peer_id, self.role, int(self.wall()), self.heartbeat_s)]
        return self._refuse(E_NOT_AUTHENTICATED, "unexpected %s during handshake" % K.kind_name(kind), seq)

"""One link to the hub, independent of how its bytes travel (TCP or serial).

A Link owns a framer, a ServerSession and counters; the gateway's I/O loop feeds
it bytes and gives it a `write(bytes)` and a `close()`; everything else it hands
to the router. All methods run in the I/O loop thread.
"""

import logging

from transport import kinds as K
from transport.codec import packb, unpackb
from hub.io.framelimits import over_limit
from hub.io.limits import RateLimiter
from hub.io.logsafe import wire_text
from hub.messages import Answer, StationAnswer
from transport.errors import (
    E_AUTH_FAILED,
    E_INTERNAL,
    E_MALFORMED,
    E_NOT_AUTHENTICATED,
    E_RATE_LIMITED,
    E_TOO_LARGE,
    CodecError,
    FrameError,
    ProtocolError,
)
from transport.messages import MAX_SEQ
from transport.session import (
    S_OPEN,
    S_WAIT_HELLO,
    Authenticated,
    Closed,
    Message,
    PeerSilent,
    Reply,
    ServerSession,
    Timeout,
)

log = logging.getLogger(__name__)

PRE_AUTH_MAX_FRAME = 4096
SERIAL_REQUEST_TIMEOUT_S = (
    2  # as firmware/chargepoint.py: a hub request unanswered this long on a serial line is resent
)

_NEAREST = K.NEAREST
_NUM = (int, float)  # type() is checked, so bool (an int subclass) is not a number here, as in parse()


class Link:
    def __init__(self, link_id, framer, write, close, router, lookup_key, config, clock, wall, address, rehello=False):
        self.id = link_id
        # On a serial line the wire outlives sessions: a HELLO at any point means the station
        # (re)started, so the handshake starts over instead of being refused as a replay.
        self.rehello = rehello
        self._session_args = (lookup_key, clock, wall, config)
        self.framer = framer
        self._write = write
        self._close = close
        self.router = router
        self.address = address
        self.session = self._new_session()
        self.max_bad = config["max_bad_messages"]
        self.bad_messages = 0
        self.frames_in = 0
        self.frames_out = 0
        self.closed = False
        self.opened_at = clock()
        self.last_frame_at = self.opened_at  # the gateway's clock; tells a live link from a half-open one
        # Until a peer has proved who it is, its frames are small (a handshake is ~60 bytes): an
        # unauthenticated link can make the hub buffer at most PRE_AUTH_MAX_FRAME, not a megabyte.
        self.full_max_frame = None
        if not rehello and getattr(framer, "max_frame", 0) > PRE_AUTH_MAX_FRAME:
            self.full_max_frame = framer.max_frame
            framer.max_frame = PRE_AUTH_MAX_FRAME
        self.limiter = RateLimiter(config["max_msgs_per_s"], 2 * config["max_msgs_per_s"])
        self.clock = clock
        self.reply_tags = {}  # seq of a hub->peer request -> (actor_ref, tag) awaiting its reply

    def _new_session(self):
        lookup_key, clock, wall, config = self._session_args
        if self.address.startswith("serial:"):  # a serial peer is a charge point, never an operator
            lookup_key = _no_operator(lookup_key)
        session = ServerSession(
            lookup_key,
            clock=lambda: int(clock() * 1000),  # sessions count integer ms (the board's clock); ours is in s
            wall=wall,
            heartbeat_s=config["heartbeat_s"],
            # A serial line answers in milliseconds and loses a frame to noise now and then: a request
            # unanswered for 2 s is lost and resent (hub/actors/registry.py), as the station does its own.
            request_timeout_s=min(config["request_timeout_s"], SERIAL_REQUEST_TIMEOUT_S)
            if self.address.startswith("serial:")
            else config["request_timeout_s"],
        )
        self.framer.seal = session.seal  # frames after the handshake carry the session's MAC
        return session

    def _restart_session(self):
        old = self.session
        if old.authenticated:
            log.info("%s: hello on an open serial session: the station restarted", self.label)
            self.router.peer_down(self)
        for actor_ref, tag in self.reply_tags.values():
            actor_ref.tell(StationAnswer(tag, None))
        self.reply_tags.clear()
        self.session = self._new_session()
        self.opened_at = self.clock()

    @property
    def label(self):
        """What every log line about this link starts with: the device id once known."""
        s = self.session
        return "%s %s" % (s.role, wire_text(s.peer_id, 64)) if s.peer_id else "link %d (%s)" % (self.id, self.address)

    # --- bytes in -------------------------------------------------------------

    def data_received(self, data):
        if self.closed:
            return
        try:
            payloads = self.framer.feed(data)
        except FrameError as exc:
            log.warning("%s: framing error, closing: %s", self.label, exc)
            self.session.send_error(E_TOO_LARGE, str(exc))
            self.shutdown()
            return
        now = self.clock()
        if payloads:
            self.last_frame_at = now
        for payload in payloads:
            self.frames_in += 1
            if not self.limiter.allow(now):
                # Over its rate the link's messages are refused, not queued: memory stays bounded.
                self._bad(E_RATE_LIMITED, "more than %d messages/s" % self.limiter.rate)
                if self.closed:
                    return
                continue
            too_large = over_limit(payload)
            if too_large is not None:
                # Bigger than its kind ever needs: refused undecoded, and a bad message.
                kind, seq, limit = too_large
                self.session.send_error(E_TOO_LARGE, "a %s frame is at most %d bytes" % (K.kind_name(kind), limit), seq)
                self._count_bad("oversized %s frame" % K.kind_name(kind))
                if self.closed:
                    return
                continue
            try:
                obj = unpackb(payload)
            except CodecError as exc:
                if payload[:1] == b"\xc1" and not self.session.authenticated:
                    # Sealed for a session this link no longer has (the hub restarted under a serial
                    # station): "say hello again", as the session answers anything before HELLO.
                    self._bad(E_NOT_AUTHENTICATED, "sealed frame but no session: send hello first")
                else:
                    self._bad(E_MALFORMED, "undecodable msgpack: %s" % exc)
                if not self.session.authenticated and not self.rehello:
                    self.shutdown()  # garbage before the handshake: not a peer of ours
                    return
                continue
            if self.rehello and type(obj) is list and obj and obj[0] == K.HELLO and self.session.state != S_WAIT_HELLO:
                self._restart_session()
            session = self.session
            if (
                type(obj) is list
                and len(obj) >= 6
                and obj[0] == _NEAREST
                and type(obj[0]) is int
                and session.state == S_OPEN
                and session.role == "vehicle"
                and type(obj[1]) is int
                and 0 <= obj[1] <= MAX_SEQ
                and type(obj[2]) in _NUM
                and type(obj[3]) in _NUM
                and type(obj[4]) is int
                and (obj[5] is None or type(obj[5]) is dict)
            ):
                # The hot message, well-formed, on an open vehicle session: what session.receive()
                # would do (note the peer is alive; parse; a vehicle may send NEAREST; a Message)
                # without building the event. Anything else, bad input included, takes the
                # general path below and gets its usual reply.
                session._last_rx = session.clock()
                if session._silent_reported:
                    session._silent_reported = False
                self._dispatch(_NEAREST, obj[1], obj[2:6])
            else:
                claimed = session.peer_id
                events = session.receive(obj)
                if session.peer_id is not claimed and not session.authenticated and self._throttled():
                    return
                for event in events:
                    self._on_event(event)
            if self.closed:
                return
        self.flush()

    def _throttled(self):
        """A HELLO just named an id: refuse it here (before AUTH) if this address failed too often for it."""
        wait = self.router.login_wait(self)
        if wait <= 0:
            return False
        self.router.count("logins_throttled")
        self.session.take_outgoing()  # no CHALLENGE for it: the error is the whole answer
        self.session.send_error(E_RATE_LIMITED, "too many failed logins for this id; retry in %d s" % (wait + 1))
        self.shutdown()
        return True

    def _bad(self, code, text):
        self.session.send_error(code, text)
        self._count_bad(text)

    def _count_bad(self, text):
        self.bad_messages += 1
        self.router.count("bad_messages")
        if self.bad_messages >= self.max_bad:
            log.warning("%s: %d bad messages, disconnecting (last: %s)", self.label, self.bad_messages, text)
            self.shutdown()

    def _on_event(self, event):
        if isinstance(event, Message):
            if event.kind == K.ERROR:
                log.info("%s: error from peer: %s", self.label, wire_text(event.fields))
                return
            self._dispatch(event.kind, event.seq, event.fields)
        elif isinstance(event, Reply):
            self._route_reply(event.seq, event)
        elif isinstance(event, Timeout):
            self._route_reply(event.seq, None)
        elif isinstance(event, Authenticated):
            if self.full_max_frame is not None:
                self.framer.max_frame = self.full_max_frame  # known peers may send large frames
            log.info("%s: authenticated from %s", self.label, self.address)
            self.router.login_succeeded(self)
            self.router.peer_up(self)
        elif isinstance(event, PeerSilent):
            log.warning("%s: silent for %.0f s", self.label, event.silent_s)
            self.router.peer_silent(self)
        elif isinstance(event, Closed):
            log.warning("%s: refused from %s: %s", self.label, self.address, wire_text(event.text))
            self.router.count("auth_failures" if event.code == E_AUTH_FAILED else "handshake_errors")
            if event.code == E_AUTH_FAILED:
                self.router.login_failed(self)
            self.shutdown()

    def _dispatch(self, kind, seq, fields):
        try:
            self.router.dispatch(self, kind, seq, fields)
        except ProtocolError as exc:
            self.session.send_error(exc.code, exc.text, seq)
            self._count_bad(exc.text)
        except Exception:  # a hub bug must not take the link or the loop down
            log.exception("%s: internal error handling %s", self.label, K.kind_name(kind))
            self.session.send_error(E_INTERNAL, "internal error", seq)

    def _route_reply(self, seq, reply):
        waiter = self.reply_tags.pop(seq, None)
        if waiter is not None:
            actor_ref, tag = waiter
            actor_ref.tell(StationAnswer(tag, None if reply is None else Answer(reply.kind, reply.fields)))

    # --- messages out ------------------------------------------------------------

    def send(self, msg):
        """Queue an already built message (from the outbox), or its packed bytes; flushed by the caller."""
        self.session._queue(msg)

    def request(self, kind, fields, actor_ref, tag):
        seq = self.session.request(kind, *fields)
        if actor_ref is not None:
            self.reply_tags[seq] = (actor_ref, tag)
        return seq

    def flush(self):
        out = self.session.take_outgoing()
        if not out or self.closed:
            return
        encode = self.framer.encode
        self.frames_out += len(out)
        # A bytes item is a message the router packed itself (NEAREST_RESULT); the rest are lists.
        if len(out) == 1:
            m = out[0]
            self._write(encode(m if type(m) is bytes else packb(m)))
        else:
            self._write(b"".join([encode(m if type(m) is bytes else packb(m)) for m in out]))

    def tick(self, now):
        if self.closed:
            return
        for event in self.session.tick():
            self._on_event(event)
        self.flush()

    def shutdown(self):
        if self.closed:
            return
        self.flush()
        self.closed = True
        for actor_ref, tag in self.reply_tags.values():
            actor_ref.tell(StationAnswer(tag, None))
        self.reply_tags.clear()
        self._close()


def _no_operator(lookup_key):
    """lookup_key that knows no operator key (for serial lines)."""
    return lambda role, peer_id: None if role == "operator" else lookup_key(role, peer_id)

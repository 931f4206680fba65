"""A small blocking hub client for the command-line tools and tests.

One TCP connection, the real handshake (transport.session, through the client link of
tools/client/link.py), then request/reply with a timeout. Errors come out as HubError with a sentence a
person can act on, never a traceback.
"""

import logging
import os
import secrets
import socket
import time

from transport import kinds as K
from tools.client.link import ClientLink
from transport.errors import E_BAD_FIELD, CodecError, FrameError, ProtocolError
from transport.huburl import parse_hub_url, uses_tls
from transport.session import Authenticated, Closed, Message, Reply, Timeout

DEFAULT_HUB = "tcp://127.0.0.1:7878"
RESERVE_TRIES = 2  # sends of one RESERVE (the same request_id) when the first gets no answer

log = logging.getLogger(__name__)


class HubError(Exception):
    """`code` is the hub's error code (transport.errors) when the hub said no; None when the hub
    could not be reached, went away or did not answer."""

    def __init__(self, text, code=None):
        Exception.__init__(self, text)
        self.code = code

    @property
    def exit_code(self):
        """The command's exit status for this error (README "Exit codes")."""
        from tools.common.exitcodes import EXIT_UNREACHABLE, for_wire_error

        return EXIT_UNREACHABLE if self.code is None else for_wire_error(self.code)


def hub_url(cli_value=None):
    """--hub, else $EVHUB_HUB, else the default loopback hub."""
    return cli_value or os.environ.get("EVHUB_HUB") or DEFAULT_HUB


def _wrap_tls(sock, host, url):
    """TLS to a hub started with --tls-cert; the CA bundle is $EVHUB_TLS_CA or the system's."""
    import ssl

    try:
        ctx = ssl.create_default_context(cafile=os.environ.get("EVHUB_TLS_CA") or None)
        return ctx.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise HubError(
            "the hub at %s has a certificate we do not trust: %s (set EVHUB_TLS_CA?)" % (url, exc.verify_message)
        ) from None
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise HubError("TLS with the hub at %s failed: %s" % (url, exc)) from None


class HubClient:
    def __init__(self, url, role, peer_id, key, timeout=10.0):
        # Several hubs on one PostgreSQL: "tcp://a:7878,tcp://b:7878" lists them; a hub that cannot be
        # reached is passed over for the next, and a reconnect starts after the one last used.
        self.urls = [u.strip() for u in str(url).split(",") if u.strip()] or [str(url)]
        self.url = self.urls[0]
        self._next = 0
        self.timeout = timeout
        self.link = ClientLink(role, peer_id, key, heartbeat_s=30, request_timeout_s=timeout)
        self.sock = None
        self.events = []  # unsolicited messages (COMPLETE, CHARGE_PROGRESS...) received meanwhile

    @property
    def session(self):
        return self.link.session

    @property
    def framer(self):
        return self.link.framer

    def __enter__(self):
        if self.sock is None:  # `with HubClient(...).connect() as c` must not connect twice
            self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def _reach(self):
        """A TCP connection to the first hub of the list (from the next one) that answers."""
        failures = []
        for i in range(len(self.urls)):
            url = self.urls[(self._next + i) % len(self.urls)]
            try:
                host, port = parse_hub_url(url)
            except ValueError as exc:
                raise HubError(str(exc)) from None
            try:
                sock = socket.create_connection((host, port), timeout=self.timeout)
            except OSError as exc:
                failures.append("%s: %s" % (url, exc.strerror or exc))
                continue
            self.url = url
            self._next = (self._next + i + 1) % len(self.urls)
            return sock, host
        raise HubError("cannot reach the hub at %s" % "; ".join(failures))

    def connect(self):
        self.sock, host = self._reach()
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if uses_tls(self.url):
                self.sock = _wrap_tls(self.sock, host, self.url)
            self._write(self.link.start())
            deadline = time.monotonic() + self.timeout
            while not self.session.authenticated:
                for event in self._read(deadline):
                    if isinstance(event, Closed):
                        raise HubError(
                            "the hub refused %s %s: %s" % (self.session.role, self.session.device_id, event.text),
                            event.code,
                        )
                    if isinstance(event, Authenticated):
                        return self
            return self
        except BaseException:
            self.close()  # a refused or failed handshake leaves no socket behind
            raise

    def _flush(self):
        self._write(self.link.outgoing())

    def _write(self, data):
        if data:
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise HubError("lost the hub at %s: %s" % (self.url, exc.strerror or exc)) from None

    def _read(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HubError("the hub at %s did not answer within %.0f s" % (self.url, self.timeout))
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise HubError("the hub at %s did not answer within %.0f s" % (self.url, self.timeout)) from None
        except OSError as exc:
            raise HubError("lost the hub at %s: %s" % (self.url, exc.strerror or exc)) from None
        if not data:
            raise HubError("the hub at %s closed the connection" % self.url)
        try:
            events = self.link.receive(data)
        except (CodecError, FrameError) as exc:
            raise HubError("garbled reply from the hub: %s" % exc) from None
        self._flush()
        return events

    def request(self, kind, *fields):
        """Send a request and wait for its reply: returns (kind, fields); raises HubError on ERROR."""
        try:
            seq = self.session.request(kind, *fields)
            self._flush()
        except (CodecError, ProtocolError) as exc:  # e.g. an integer too big for msgpack
            raise HubError("cannot send %s: %s" % (K.kind_name(kind), exc), getattr(exc, "code", E_BAD_FIELD)) from None
        return self.wait_reply(seq)

    def reserve(self, station_id, start, end, tries=RESERVE_TRIES):
        """RESERVE with a fresh request_id; asked again with the same id, on a new connection, when
        the answer does not come (timeout, lost link). The hub answers a repeated id with the first
        reservation: a retry never holds two. Returns (kind, fields) as request does."""
        request_id = secrets.token_hex(8)
        for attempt in range(1, tries + 1):
            try:
                return self.request(K.RESERVE, station_id, start, end, request_id)
            except HubError as exc:
                if exc.code is not None or attempt >= tries:  # the hub said no, or no tries left
                    raise
                log.warning("reserve %s: %s; asking again with the same request id", request_id, exc)
                self.reconnect()
        raise AssertionError("unreachable")

    def reconnect(self):
        """A new connection and handshake (a reply to an old request can no longer arrive)."""
        self.close()
        self.link.renew()
        return self.connect()

    def wait_reply(self, seq):
        """Wait for the reply to the request numbered `seq` (see request)."""
        deadline = time.monotonic() + self.timeout
        while True:
            answer = None
            for event in self._read(deadline):  # all of them: a message read with the reply is kept too
                if isinstance(event, Reply) and event.seq == seq:
                    answer = event
                    continue
                if isinstance(event, Timeout) and event.seq == seq:
                    raise HubError("the hub did not answer %s in time" % K.kind_name(event.request_kind))
                if isinstance(event, Message):
                    self.events.append(event)
                if isinstance(event, Closed) and answer is None:
                    raise HubError("the hub closed the session: %s" % event.text, event.code)
            if answer is not None:
                if answer.kind == K.ERROR:
                    raise HubError(answer.fields[1], answer.fields[0])
                return answer.kind, answer.fields

    def send(self, kind, *fields):
        """Fire and forget (e.g. POSITION)."""
        try:
            self.session.send(kind, 0, *fields)
            self._flush()
        except (CodecError, ProtocolError) as exc:
            raise HubError("cannot send %s: %s" % (K.kind_name(kind), exc), getattr(exc, "code", E_BAD_FIELD)) from None

    def wait_event(self, kinds, timeout):
        """Wait for an unsolicited message of one of `kinds`; returns it or None."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.kind in kinds:
                    return self.events.pop(i)
            try:
                for event in self._read(deadline):
                    if isinstance(event, Message):
                        self.events.append(event)
            except HubError:
                if time.monotonic() >= deadline:
                    return None
                raise

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

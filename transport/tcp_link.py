"""CPython only: a blocking TCP client link for CLI tools and tests.

Messages are msgpack objects (``transport.codec``) framed with StreamFramer.
This is the thin I/O adapter; the hub's gateway has its own event loop.
"""

import collections
import socket
import time

from transport.codec import packb, unpackb
from transport.framing import MAX_FRAME_SIZE, StreamFramer

DEFAULT_TIMEOUT = 5.0
_RECV_SIZE = 65536


def uses_tls(url):
    """tls://HOST:PORT asks for TLS on the hub's TCP listener (serve --tls-cert/--tls-key)."""
    return isinstance(url, str) and url.lower().startswith("tls://")


def parse_hub_url(url):
    """``"tcp://HOST:PORT"`` or ``"HOST:PORT"`` -> (host, port); ValueError with the reason otherwise.

    IPv6 hosts go in brackets: ``tcp://[::1]:7700``.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("hub URL must be a non-empty string like tcp://HOST:PORT, got %r" % (url,))
    rest = url
    if "://" in url:
        scheme, rest = url.split("://", 1)
        if scheme.lower() not in ("tcp", "tls"):
            raise ValueError("hub URL %r: scheme must be tcp:// or tls:// (got %s://)" % (url, scheme))
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]:")
        if not sep:
            raise ValueError("hub URL %r: expected [IPv6]:PORT" % (url,))
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep or ":" in host:
            raise ValueError("hub URL %r: expected tcp://HOST:PORT (IPv6 hosts in brackets)" % (url,))
    if not host:
        raise ValueError("hub URL %r: missing host" % (url,))
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) < 65536:
        raise ValueError("hub URL %r: port must be a number 0..65535, got %r" % (url, port_text))
    return host, int(port_text)


class TcpLink:
    """One blocking connection: ``send(obj)``, ``recv(timeout) -> obj``, ``close()``."""

    def __init__(self, sock, max_frame=MAX_FRAME_SIZE):
        self.sock = sock
        self.framer = StreamFramer(max_frame)
        self._pending = collections.deque()  # decoded payloads not yet returned
        self.closed = False

    def send(self, obj):
        self.sock.sendall(self.framer.encode(packb(obj)))

    def send_many(self, objs):
        """Several messages in one write."""
        self.sock.sendall(b"".join(self.framer.encode(packb(o)) for o in objs))

    def recv(self, timeout=DEFAULT_TIMEOUT):
        """The next message; TimeoutError if none arrives in ``timeout`` s (None waits forever).

        ConnectionError when the peer closed; CodecError/FrameError on a bad frame.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if self.closed:
                raise ConnectionError("link closed")
            if deadline is None:
                self.sock.settimeout(None)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no message within %.3g s" % timeout)
                self.sock.settimeout(left)
            try:
                data = self.sock.recv(_RECV_SIZE)
            except socket.timeout:
                raise TimeoutError("no message within %.3g s" % timeout) from None
            if not data:
                self.closed = True
                raise ConnectionError("peer closed the connection")
            self._pending.extend(self.framer.feed(data))
        return unpackb(self._pending.popleft())

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(url, timeout=DEFAULT_TIMEOUT, max_frame=MAX_FRAME_SIZE):
    """Open a TcpLink to ``tcp://HOST:PORT`` (or ``HOST:PORT``)."""
    host, port = parse_hub_url(url)
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return TcpLink(sock, max_frame)

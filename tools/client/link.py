"""The client link: one peer's ClientSession and StreamFramer, the part every client of the hub
repeats (the handshake, sealing every frame after it, packing what the session queues, unframing
and decoding what arrives and handing it to the session).

Two forms, because their I/O differs and nothing else does:

- ClientLink, sans-I/O: bytes in, session events out; the session's output as bytes. HubClient
  (tools/client/hubclient.py) drives it from a blocking socket.
- AsyncClientLink, an asyncio.Protocol around a ClientLink: the sim's vehicles (tools/sim/net.py,
  hundreds on one loop) and the bench's load client (tools/bench/loadgen.py, whose measured path
  after the handshake is its own lean loop on the same framer) subclass it and override on_event.

The board's uplink (firmware/), the console's endpoints (tools/device/) and the hub are the other
ends of the wire and keep their own loops: they are servers or run on MicroPython.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from transport.codec import packb, unpackb
from transport.errors import CodecError, FrameError
from transport.framing import StreamFramer
from transport.session import ClientSession


class ClientLink:
    """A session and its framer; `renew()` starts both afresh for a new connection."""

    def __init__(self, role: str, peer_id: str, key: Any, heartbeat_s: float = 30, request_timeout_s: float = 15):
        self._args = (role, peer_id, key, heartbeat_s, request_timeout_s)
        self.session: ClientSession
        self.framer: StreamFramer
        self.renew()

    def renew(self) -> None:
        role, peer_id, key, heartbeat_s, request_timeout_s = self._args
        self.session = ClientSession(role, peer_id, key, heartbeat_s=heartbeat_s, request_timeout_s=request_timeout_s)
        self.framer = StreamFramer()
        self.framer.seal = self.session.seal  # MACs every frame after the handshake

    def start(self) -> bytes:
        """The HELLO, framed: what to write once connected."""
        self.session.start()
        return self.outgoing()

    def outgoing(self) -> bytes:
        """Everything the session queued, packed and framed (b"" when nothing)."""
        out = self.session.take_outgoing()
        return b"".join([self.framer.encode(packb(m)) for m in out]) if out else b""

    def receive(self, data: bytes, on_bad: Callable[[CodecError], None] | None = None) -> list[Any]:
        """The session events for `data`. A bad frame raises FrameError (the stream is lost); an
        undecodable message raises CodecError, or goes to `on_bad` and the rest are still read."""
        events: list[Any] = []
        for payload in self.framer.feed(data):
            try:
                obj = unpackb(payload)
            except CodecError as exc:
                if on_bad is None:
                    raise
                on_bad(exc)
                continue
            events.extend(self.session.receive(obj))
        return events

    def tick(self) -> list[Any]:
        """The session's timers (heartbeat, request timeouts)."""
        return list(self.session.tick())


class AsyncClientLink(asyncio.Protocol):
    """A ClientLink on an asyncio transport. Subclasses override on_event (and, for their own
    accounting, on_bad_frame / on_bad_message); `flush()` writes what the session queued."""

    def __init__(self, link: ClientLink) -> None:
        self.link: ClientLink | None = link
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.link is not None:
            self.transport.write(self.link.start())

    def data_received(self, data: bytes) -> None:
        if self.link is None:
            return
        try:
            events = self.link.receive(data, self.on_bad_message)
        except FrameError as exc:
            self.on_bad_frame(exc)
            return
        for ev in events:
            self.on_event(ev)
        self.flush()

    def flush(self) -> None:
        if self.link is not None and self.transport is not None:
            data = self.link.outgoing()
            if data:
                self.transport.write(data)

    def on_event(self, ev: Any) -> None:
        """One session event (Authenticated, Reply, Timeout, Message, Closed, PeerSilent)."""

    def on_bad_frame(self, exc: FrameError) -> None:
        """The byte stream cannot be trusted any more: drop the connection."""
        if self.transport is not None:
            self.transport.abort()

    def on_bad_message(self, exc: CodecError) -> None:
        """One message could not be decoded; the others in the same read still count."""

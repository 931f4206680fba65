"""One OCPP charger's link to the hub, as the station it is.

The central system speaks evhub's own protocol to the hub on the charger's behalf: a station
session (HELLO/AUTH with the station's key, every frame sealed) over asyncio TCP. The hub then
sees an ordinary station, so the registry, book, locator, store, HTTP API and every vehicle
feature work for OCPP chargers without knowing about OCPP. Hub requests (RESERVE_NOW,
REMOTE_START, ...) go to `on_request`, which answers each with `reply`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from transport import kinds as K
from transport.codec import packb, unpackb
from transport.errors import CodecError, FrameError
from transport.framing import StreamFramer
from transport.session import Authenticated, ClientSession, Closed, Message, PeerSilent, Reply, Timeout

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 15


class UpstreamError(Exception):
    """The hub refused a request (``code``, ``text``), did not answer, or the link is gone."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class Upstream:
    def __init__(
        self,
        host: str,
        port: int,
        station_id: str,
        key: str,
        on_request: Callable[[int, int, list[Any]], Coroutine[Any, Any, None]],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.station_id, self.tls = host, port, station_id, tls
        self.session = ClientSession("station", station_id, key, request_timeout_s=REQUEST_TIMEOUT_S)
        self.framer = StreamFramer()
        self.framer.seal = self.session.seal
        self.on_request = on_request
        self._waiting: dict[int, asyncio.Future[tuple[int, list[Any]]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._open = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason = ""

    async def connect(self) -> None:
        """Open the link and complete the handshake; UpstreamError if the hub refuses or is away."""
        try:
            reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.tls), CONNECT_TIMEOUT_S
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise UpstreamError("cannot reach the hub at %s:%d: %s" % (self.host, self.port, exc)) from None
        self.session.start()
        self._flush()
        self._tasks = [asyncio.create_task(self._read(reader)), asyncio.create_task(self._tick())]
        try:
            await asyncio.wait_for(self._until_open(), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.close("no WELCOME from the hub")
        if not self._open.is_set():
            raise UpstreamError("the hub refused station %s: %s" % (self.station_id, self.close_reason))

    async def _until_open(self) -> None:
        done = asyncio.ensure_future(self.closed.wait())
        opened = asyncio.ensure_future(self._open.wait())
        await asyncio.wait([done, opened], return_when=asyncio.FIRST_COMPLETED)
        for f in (done, opened):
            f.cancel()

    async def request(self, kind: int, *fields: Any) -> tuple[int, list[Any]]:
        """Send a request, wait for its reply: (kind, fields); UpstreamError on ERROR, timeout or loss."""
        if self.closed.is_set():
            raise UpstreamError("no link to the hub: %s" % self.close_reason)
        seq = self.session.request(kind, *fields)
        future: asyncio.Future[tuple[int, list[Any]]] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        self._flush()
        kind_back, fields_back = await future
        if kind_back == K.ERROR:
            raise UpstreamError(str(fields_back[1]), fields_back[0])
        return kind_back, fields_back

    def event(self, kind: int, *fields: Any) -> None:
        """Send a record the hub does not acknowledge (METER): dropped when the link is down."""
        if not self.closed.is_set() and self.session.authenticated:
            self.session.send(kind, 0, *fields)
            self._flush()

    def reply(self, seq: int, error: tuple[int, str] | None = None) -> None:
        """Answer a hub request: ACK, or ERROR (code, text)."""
        if self.closed.is_set():
            return
        if error is None:
            self.session.send(K.ACK, seq)
        else:
            self.session.send_error(error[0], error[1], seq)
        self._flush()

    def close(self, why: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = why
        self.closed.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(UpstreamError("lost the hub: %s" % why))
        self._waiting.clear()
        if self._writer is not None:
            self._writer.close()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def _flush(self) -> None:
        out = self.session.take_outgoing()
        if out and self._writer is not None and not self._writer.is_closing():
            self._writer.write(b"".join(self.framer.encode(packb(m)) for m in out))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                self.close("the hub closed the link")
                return
            try:
                events = [ev for p in self.framer.feed(data) for ev in self.session.receive(unpackb(p))]
            except (CodecError, FrameError) as exc:
                self.close("bad frame from the hub: %s" % exc)
                return
            for ev in events:
                self._event(ev)
            self._flush()

    def _event(self, ev: object) -> None:
        if isinstance(ev, Authenticated):
            self._open.set()
        elif isinstance(ev, Reply | Timeout):
            future = self._waiting.pop(ev.seq, None)
            if future is not None and not future.done():
                if isinstance(ev, Reply):
                    future.set_result((ev.kind, list(ev.fields)))
                else:
                    future.set_exception(UpstreamError("the hub did not answer %s" % K.kind_name(ev.request_kind)))
        elif isinstance(ev, Message) and ev.kind != K.ERROR:
            asyncio.get_running_loop().create_task(self.on_request(ev.kind, ev.seq, list(ev.fields)))
        elif isinstance(ev, Message):
            log.warning(
                "station %s: the hub says %s", self.station_id, ev.fields[1] if len(ev.fields) > 1 else ev.fields
            )
        elif isinstance(ev, Closed):
            self.close(ev.text)
        elif isinstance(ev, PeerSilent):
            self.close("the hub went silent")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1)
            for ev in self.session.tick():
                self._event(ev)
            self._flush()

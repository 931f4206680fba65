"""GET /api/events: the hub's events as server-sent events; and the vehicle-position broadcaster.

A client gets `retry:` advice, then every event as `id`/`event`/`data` lines. A
client that reconnects with Last-Event-ID first gets the events it missed that
are still in the bus's replay ring. Each client has a bounded queue (EventBus);
a client that falls behind, or whose socket stops draining, is cut off. A comment
line every KEEPALIVE_S keeps proxies from closing an idle stream and finds dead
clients. Query `types=station,reservation` limits the event kinds sent.
"""

import asyncio
import logging

from hub.http.conns import MAX_SSE_PER_ADDRESS, PerAddress
from hub.http.server import HttpError, Route, Stream

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
MAX_CLIENTS = 64
MAX_UNSENT_BYTES = 1 << 20  # a socket holding this much unsent is a slow reader
POSITIONS_EVERY_S = 2.0
MAX_POSITIONS_PER_EVENT = 5000
KINDS = ("station", "reservation", "session_start", "meter", "session_end", "positions")


class EventStream:
    def __init__(self, bus, http, tracker_last):
        self.bus = bus
        self.http = http
        self.tracker_last = tracker_last
        self.clients = 0
        self.per_address = PerAddress(MAX_SSE_PER_ADDRESS)
        self._positions_task = None
        self._last_positions = {}

    def routes(self):
        return [Route("GET", "/api/events", self.events)]

    async def events(self, req):
        if self.clients >= MAX_CLIENTS:
            raise HttpError(503, "too many event-stream clients (%d)" % MAX_CLIENTS)
        if self.per_address.full(req.peer):
            raise HttpError(503, "too many event streams from %s (%d)" % (req.peer, MAX_SSE_PER_ADDRESS))
        kinds = None
        if req.arg("types"):
            kinds = set(req.arg("types").split(","))
            bad = sorted(kinds - set(KINDS))
            if bad:
                raise HttpError(400, "unknown event types %s; known: %s" % (", ".join(bad), ", ".join(KINDS)))
        last_id = req.headers.get("last-event-id") or req.arg("last_event_id")
        try:
            last_id = int(last_id) if last_id else None
        except ValueError:
            raise HttpError(400, "Last-Event-ID must be an integer") from None
        return Stream(lambda request, writer: self._serve(writer, kinds, last_id, request.peer))

    async def _serve(self, writer, kinds, last_id, peer=""):
        self.http._count(200)
        self.per_address.take(peer)
        sub = self.bus.subscribe(last_id)
        sub.wake = asyncio.Event()
        if sub.queue:
            sub.wake.set()
        self.clients += 1
        needle = None if kinds is None else tuple(("\nevent: %s\n" % k).encode() for k in kinds)
        try:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\n"
                b"Connection: close\r\nX-Accel-Buffering: no\r\nX-Content-Type-Options: nosniff\r\n\r\n"
                b"retry: 2000\n: evhub events; last id %d\n\n" % self.bus.last_id
            )
            await writer.drain()
            while not sub.dropped:
                try:
                    await asyncio.wait_for(sub.wake.wait(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    writer.write(b": keepalive\n\n")
                sub.wake.clear()
                chunk = []
                while sub.queue:
                    payload = sub.queue.popleft()
                    if needle is None or any(n in payload for n in needle):
                        chunk.append(payload)
                if chunk:
                    writer.write(b"".join(chunk))
                if writer.transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
                    log.warning("events: client %s is not reading; dropped", writer.get_extra_info("peername"))
                    self.bus.dropped_clients += 1
                    sub.dropped = True
                    break
                await asyncio.wait_for(writer.drain(), KEEPALIVE_S)
        except (ConnectionError, asyncio.TimeoutError):
            sub.dropped = True
        finally:
            self.per_address.give(peer)
            self.clients -= 1
            self.bus.unsubscribe(sub)
            if sub.dropped:
                writer.transport.abort()  # a plain close would wait for the unread bytes to drain

    # --- positions --------------------------------------------------------------------------

    def start(self, loop):
        self._positions_task = loop.create_task(self._positions_forever())

    def stop(self):
        if self._positions_task is not None:
            self._positions_task.cancel()

    async def _positions_forever(self):
        while True:
            await asyncio.sleep(POSITIONS_EVERY_S)
            if not self.bus.subscribers:
                continue
            try:
                self.broadcast_positions()
            except Exception:
                log.exception("events: position broadcast failed")

    def broadcast_positions(self):
        """One `positions` event with the vehicles that moved since the last one."""
        snapshot = self.tracker_last.copy()
        prev = self._last_positions
        moved = [
            {"id": vid, "lat": t[0], "lon": t[1], "time": t[2], "soc": t[3]}
            for vid, t in snapshot.items()
            if prev.get(vid) != t
        ]
        self._last_positions = snapshot
        for i in range(0, len(moved), MAX_POSITIONS_PER_EVENT):
            self.bus.emit("positions", {"vehicles": moved[i : i + MAX_POSITIONS_PER_EVENT]}, replay=False)

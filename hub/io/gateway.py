"""The gateway: one asyncio loop owns every socket and serial line.

Bytes become messages in `Link`; messages go to the actors by `tell` (through
the router); actors answer through `Outbox`, which hops back into the loop and
writes one batch per link per wakeup. A link whose unsent bytes pass
`max_outbox_bytes` is a slow reader and is cut off: it never stalls the others.
"""

import asyncio
import collections
import logging
import threading
from typing import Any

from transport.errors import E_CONFLICT
from transport.framing import SerialFramer

from hub.io.fdlimits import PendingLinks
from hub.io.framelimits import HubStreamFramer
from hub.io.link import Link
from hub.io.loophop import LoopHop
from hub.messages import OutRequest, OutSend, OutToPeer, StationAnswer
from hub.io.peerclash import REFUSE, PeerClash

log = logging.getLogger(__name__)

TICK_SLICES = 10  # the once-a-second link tick runs in this many steps (see _tick_forever)


class Outbox:
    """Thread-safe: actors call send/send_to_peer/request from their threads; the loop delivers.

    It holds the table of open links (`links`: link id -> Link) and of bound peers (`peers`:
    (role, id) -> link id), which the Gateway fills in the loop. So the daemon builds the Outbox
    first, hands it to the actors at construction, and then builds the Gateway on it: nothing is
    bound late."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.links: "dict[int, Link]" = {}
        self.peers: "dict[tuple[str, str], int]" = {}
        self._hop: "LoopHop[OutSend | OutToPeer | OutRequest]" = LoopHop(loop, self._deliver)
        self.cluster: Any = None  # hub.cluster.node.ClusterNode: vehicles linked to another hub get theirs there

    def _post(self, item: "OutSend | OutToPeer | OutRequest") -> None:
        self._hop.post(item)

    def send(self, link_id: Any, msg: Any) -> None:
        self._post(OutSend(link_id, msg))

    def send_to_peer(self, role: str, peer_id: str, msg: Any) -> None:
        if self.cluster is not None and role == "vehicle" and (role, peer_id) not in self.peers:
            self.cluster.to_vehicle(peer_id, msg)  # its link may be on another hub
            return
        self._post(OutToPeer((role, peer_id), msg))

    def request(self, role: str, peer_id: str, kind: int, fields: list, actor_ref: Any, tag: int) -> None:
        """A hub->peer request; the peer's reply (or None on timeout/no link) is told to actor_ref
        as StationAnswer(tag, Answer | None). actor_ref None: nobody waits for the reply."""
        self._post(OutRequest((role, peer_id), kind, fields, actor_ref, tag))

    def _deliver(self, items: "collections.deque[OutSend | OutToPeer | OutRequest]") -> None:
        links = self.links
        touched = {}
        for item in items:
            if isinstance(item, OutSend):
                link = links.get(item.link_id)
            else:
                link_id = self.peers.get(item.peer)
                link = None if link_id is None else links.get(link_id)
            if link is None or link.closed:
                if isinstance(item, OutRequest) and item.reply_to is not None:
                    item.reply_to.tell(StationAnswer(item.tag, None))
                continue
            if isinstance(item, OutRequest):
                link.request(item.kind, item.fields, item.reply_to, item.tag)
            else:
                link.send(item.msg)
            touched[link.id] = link
        for link in touched.values():
            link.flush()


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, gateway):
        self.gateway = gateway
        self.link = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        gw = self.gateway
        if len(gw.links) >= gw.config["max_links"]:
            gw.router.count("refused_links")
            log.warning("refusing %s: %d links is the limit", transport.get_extra_info("peername"), len(gw.links))
            transport.abort()
            return
        peer = transport.get_extra_info("peername")
        address = "%s:%s" % (peer[0], peer[1]) if peer else "?"
        self.link = gw.new_link(
            HubStreamFramer(gw.config["max_frame"], gw.config["max_in_frame"]), self._write, transport.close, address
        )
        oldest = gw.pending.add(self.link)
        if oldest is not None:  # the unauthenticated cap is full: the longest waiting makes room
            gw.router.count("unauth_evicted")
            oldest.shutdown()

    def _write(self, data):
        t = self.transport
        t.write(data)
        if t.get_write_buffer_size() > self.gateway.config["max_outbox_bytes"]:
            log.warning("%s: slow reader (%d bytes unsent), disconnecting", self.link.label, t.get_write_buffer_size())
            self.gateway.router.count("slow_readers_cut")
            self.link.closed = True
            t.abort()

    def data_received(self, data):
        if self.link is not None:
            self.link.data_received(data)

    def connection_lost(self, exc):
        if self.link is not None:
            self.link.closed = True
            self.gateway.drop_link(self.link)


MAX_SERIAL_BACKLOG = 64 * 1024  # bytes queued for a serial line that does not drain: the session is dropped


class SerialLine:
    """A charge point on a serial line (any pyserial URL). A reader thread hands bytes to the
    loop, so the loop still owns the link; a writer thread drains a bounded queue, so a line that
    does not take bytes (a slow baud rate, a socket:// peer that stopped reading) never blocks the loop."""

    def __init__(self, gateway, url, baudrate=115200):
        import serial  # CPython adapter only

        self.gateway = gateway
        self.url = url
        self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.2, write_timeout=2.0)
        self.link = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._reader, name="serial:%s" % url, daemon=True)
        self._out = collections.deque()
        self._out_bytes = 0
        self._out_lock = threading.Condition()
        self._writer = threading.Thread(target=self._write_forever, name="serial-out:%s" % url, daemon=True)

    def start(self):
        self._new_link()
        self._thread.start()
        self._writer.start()

    def _new_link(self):
        self.link = self.gateway.new_link(
            SerialFramer(), self._write, self._link_closed, "serial:" + self.url, rehello=True
        )

    def _write(self, data):
        """Called in the loop: queue, never block."""
        with self._out_lock:
            if self._out_bytes + len(data) > MAX_SERIAL_BACKLOG:
                overflow = True
            else:
                overflow = False
                self._out.append(data)
                self._out_bytes += len(data)
                self._out_lock.notify()
        if overflow:
            log.warning("serial %s: %d bytes not taken by the line, dropping the session", self.url, self._out_bytes)
            self.gateway.router.count("slow_readers_cut")
            self.gateway.loop.call_soon(self.link.shutdown)

    def _write_forever(self):
        while not self._stop.is_set():
            with self._out_lock:
                while not self._out and not self._stop.is_set():
                    self._out_lock.wait(0.5)
                if self._stop.is_set():
                    return
                data = self._out.popleft()
                self._out_bytes -= len(data)
            try:
                self.port.write(data)
            except Exception as exc:  # write timeout or unplugged adapter: the frame is lost, the line stays
                log.error("serial %s: write failed: %s", self.url, exc)

    def _link_closed(self):
        # The wire stays: a refused or dropped session is followed by a fresh one on the same line.
        self.gateway.drop_link(self.link)
        if not self._stop.is_set():
            self.gateway.loop.call_soon(self._new_link)

    def _reader(self):
        loop = self.gateway.loop
        while not self._stop.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting or 1))
            except Exception as exc:  # unplugged adapter: log and keep the hub up
                log.error("serial %s: read failed: %s", self.url, exc)
                self._stop.wait(1.0)
                continue
            if data:
                loop.call_soon_threadsafe(self._feed, data)

    def _feed(self, data):
        if self.link is not None and not self.link.closed:
            self.link.data_received(data)

    def stop(self):
        self._stop.set()
        with self._out_lock:
            self._out_lock.notify()
        self._thread.join(timeout=2)
        self._writer.join(timeout=3)
        self.port.close()


class Gateway:
    def __init__(self, loop, router, lookup_key, config, clock, wall, outbox: Outbox) -> None:
        self.loop = loop
        self.router = router
        self.lookup_key = lookup_key
        self.config = config
        self.clock = clock
        self.wall = wall
        # The actors were given `outbox` before this gateway existed; its link tables are ours to fill.
        self.outbox = outbox
        self.links = self.outbox.links
        self.peers = self.outbox.peers  # (role, id) -> link id of its current authenticated link
        self._next_id = 1
        self.clash = PeerClash()
        self.server = None
        self.serial_lines: "list[SerialLine]" = []
        self._ticker = None
        self.pending = PendingLinks(config.get("max_unauth_links_effective", config["max_unauth_links"]))
        router.attach(self)

    def new_link(self, framer, write, close, address, rehello=False):
        link_id = self._next_id
        self._next_id += 1
        link = Link(
            link_id,
            framer,
            write,
            close,
            self.router,
            self.lookup_key,
            self.config,
            self.clock,
            self.wall,
            address,
            rehello,
        )
        self.links[link_id] = link
        self.router.count("links_opened")
        return link

    def bind_peer(self, link):
        """Make `link` the one its (role, id) is reached on; False if it was refused instead (two
        devices flapping on one id: hub/io/peerclash.py)."""
        self.pending.discard(link)
        key = (link.session.role, link.session.peer_id)
        old = self.links.get(self.peers.get(key))
        if old is not None and old is not link and not old.closed:
            now = self.clock()
            verdict, hold_starts = self.clash.decide(key, now)
            if verdict == REFUSE:
                if hold_starts:
                    log.warning(
                        "%s: two devices share this id (from %s and %s): they keep replacing each other; "
                        "keeping %s, refusing others for %.0f s",
                        link.label,
                        old.address,
                        link.address,
                        old.address,
                        self.clash.hold_s(key),
                    )
                self.router.count("duplicate_id_refusals")
                link.session.send_error(E_CONFLICT, "%s %s is already connected from another address" % key)
                link.shutdown()
                return False
            # A reconnect whose old link went quiet is routine; an old link still talking means a
            # second device with the same id.
            alive = now - old.last_frame_at < self.config["heartbeat_s"]
            log.log(
                logging.WARNING if alive else logging.INFO,
                "%s: connected from %s while its link from %s %s; the newer link replaces it",
                link.label,
                link.address,
                old.address,
                "is alive (a second device with this id?)" if alive else "was quiet",
            )
            self.peers[key] = link.id
            old.shutdown()
            return True
        self.peers[key] = link.id
        return True

    def drop_link(self, link):
        self.pending.discard(link)
        if self.links.pop(link.id, None) is None:
            return
        link.closed = True
        key = (link.session.role, link.session.peer_id)
        if self.peers.get(key) == link.id:
            del self.peers[key]
            self.router.peer_down(link)
        for actor_ref, tag in link.reply_tags.values():
            actor_ref.tell(StationAnswer(tag, None))
        link.reply_tags.clear()

    async def start(self, host, port, serial_urls=(), ssl_context=None):
        tls = {"ssl": ssl_context, "ssl_handshake_timeout": self.config["handshake_timeout_s"]} if ssl_context else {}
        self.server = await self.loop.create_server(
            lambda: _TcpProtocol(self), host, port, backlog=4096, reuse_address=True, **tls
        )
        for url in serial_urls:
            line = SerialLine(self, url)
            line.start()
            self.serial_lines.append(line)
        self._ticker = self.loop.create_task(self._tick_forever())

    @property
    def port(self):
        return self.server.sockets[0].getsockname()[1]

    async def _tick_forever(self):
        # Every link is ticked once a second, a tenth of them every 100 ms: one pass over 10,000
        # links costs ~5 ms, enough to show in the replies' p99 if done in one go.
        handshake_timeout = self.config["handshake_timeout_s"]
        while True:
            links = list(self.links.values())
            for i in range(TICK_SLICES):
                await asyncio.sleep(1.0 / TICK_SLICES)
                now = self.clock()
                for link in links[i::TICK_SLICES]:
                    if link.closed:
                        continue
                    if not link.session.authenticated and now - link.opened_at > handshake_timeout:
                        log.info("%s: no handshake after %d s, closing", link.label, handshake_timeout)
                        self.router.count("handshake_timeouts")
                        link.shutdown()
                        continue
                    link.tick(now)
            self.router.tick()

    async def stop(self):
        if self._ticker:
            self._ticker.cancel()
        if self.server:
            self.server.close()
        for link in list(self.links.values()):
            link.shutdown()
        for line in self.serial_lines:
            line.stop()

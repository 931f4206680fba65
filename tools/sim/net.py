"""VehicleNet: one asyncio loop, in one thread, holding every simulated vehicle's link to the hub.

Each vehicle is its own peer on the wire (its own TCP connection, handshake and
token), because the hub routes COMPLETE and CHARGE_PROGRESS to the vehicle's link.
What a vehicle costs here is a socket, a ClientSession and a framer, not a thread:
hundreds share this loop the way the hub's gateway shares its own.

Other threads talk to it through two thread-safe calls that only queue work:

    net.submit([("req", vid, kind, fields, tag), ("send", vid, kind, fields), ...])

and hear back by ``sink.tell(("net", [event, ...]))``, one tell per sink per loop
wakeup, each event a tuple ``(vid, what, tag, kind, fields)`` with what one of

    "up"       the link is authenticated (again)
    "down"     the link was lost; fields = (reason,)
    "reply"    the answer to the request tagged `tag` (kind may be ERROR)
    "timeout"  no answer to `tag` in time, or the link went away with it pending
    "event"    an unsolicited message from the hub (SESSION_STARTED, CHARGE_PROGRESS, COMPLETE, ERROR)

A lost link is reopened with a capped backoff, ``min(1.8**n, 60)`` seconds.
"""

import asyncio
import logging
import threading
import zlib

from transport import kinds as K
from hub.io.loophop import LoopHop
from tools.client.link import AsyncClientLink, ClientLink
from transport.errors import ProtocolError
from transport.session import Authenticated, Closed, Message, PeerSilent, Reply, Timeout

log = logging.getLogger(__name__)

TICK_S = 1.0  # session timers (heartbeat, request timeouts)
MAX_OUTBUF = 1 << 20


class _VLink(AsyncClientLink):
    """One vehicle's connection (the client link of tools/client/link.py); all methods run in the loop thread."""

    def __init__(self, net, vid, token, sink):
        AsyncClientLink.__init__(self, None)
        self.net = net
        self.vid = vid
        self.token = token
        self.sink = sink
        self.tags = {}  # seq -> tag of our pending requests
        self.failures = 0
        self.closing = False
        self.ever_up = False

    @property
    def session(self):
        """The live session, or None while the link is down."""
        return self.link.session if self.link is not None else None

    # --- connection lifecycle -----------------------------------------------------

    def open(self):
        self.link = ClientLink(
            "vehicle",
            self.vid,
            self.token,
            heartbeat_s=self.net.heartbeat_s,
            request_timeout_s=self.net.request_timeout_s,
        )
        self.tags = {}
        task = self.net.loop.create_task(self._connect())
        self.net.tasks.add(task)  # asyncio keeps only a weak reference to a running task
        task.add_done_callback(self.net.tasks.discard)

    async def _connect(self):
        try:
            await self.net.loop.create_connection(lambda: self, self.net.host, self.net.port_for(self.vid))
        except OSError as exc:
            self._lost("connect: %s" % (exc.strerror or exc))

    def on_bad_frame(self, exc):
        self.net.count_error(self.vid, "bad frame from the hub: %s" % exc)
        self.transport.abort()

    def on_bad_message(self, exc):
        self.net.count_error(self.vid, "undecodable message from the hub: %s" % exc)

    def connection_lost(self, exc):
        self.transport = None
        self._lost("connection closed" if exc is None else str(exc))

    def _lost(self, why):
        for tag in self.tags.values():
            self.net.emit(self, "timeout", tag, None, None)
        self.tags = {}
        self.link = None
        if self.closing:
            return
        self.net.emit(self, "down", None, None, (why,))
        delay = min(1.8**self.failures, 60.0)
        self.failures += 1
        self.net.count_error(self.vid, "link lost (%s); reconnecting in %.1f s" % (why, delay))
        self.net.loop.call_later(delay, self._reopen)

    def _reopen(self):
        if not self.closing:
            self.open()

    def close(self):
        self.closing = True
        if self.transport is not None:
            self.flush()
            self.transport.close()

    # --- messages ---------------------------------------------------------------------

    def on_event(self, ev):
        if isinstance(ev, Reply):
            tag = self.tags.pop(ev.seq, None)
            if tag is not None:
                self.net.emit(self, "reply", tag, ev.kind, ev.fields)
        elif isinstance(ev, Timeout):
            tag = self.tags.pop(ev.seq, None)
            if tag is not None:
                self.net.emit(self, "timeout", tag, None, None)
        elif isinstance(ev, Message):
            self.net.emit(self, "event", None, ev.kind, ev.fields)
        elif isinstance(ev, Authenticated):
            self.failures = 0
            self.ever_up = True
            self.net.emit(self, "up", None, None, None)
        elif isinstance(ev, (Closed, PeerSilent)):
            log.warning("vehicle %s: session with the hub ended: %r", self.vid, ev)
            if self.transport is not None:
                self.transport.abort()

    def request(self, kind, fields, tag):
        if self.session is None or not self.session.authenticated or self.transport is None:
            self.net.emit(self, "timeout", tag, None, None)
            return
        try:
            seq = self.session.request(kind, *fields)
        except ProtocolError as exc:
            self.net.count_error(self.vid, "cannot send %s: %s" % (K.kind_name(kind), exc))
            self.net.emit(self, "timeout", tag, None, None)
            return
        self.tags[seq] = tag

    def send(self, kind, fields):
        if self.session is not None and self.session.authenticated:
            self.session.send(kind, 0, *fields)

    def flush(self):
        if self.link is None or self.transport is None:
            return
        AsyncClientLink.flush(self)
        if self.transport.get_write_buffer_size() > MAX_OUTBUF:
            self.net.count_error(
                self.vid, "the hub does not read (%d bytes queued)" % self.transport.get_write_buffer_size()
            )
            self.transport.abort()

    def tick(self):
        if self.link is None:
            return
        for ev in self.link.tick():
            self.on_event(ev)
        self.flush()


class VehicleNet:
    def __init__(self, host, port, heartbeat_s=30, request_timeout_s=15):
        self.host = host
        self.port = port  # one hub's port, or a list of several hubs' (each vehicle keeps to one of them)
        self.heartbeat_s = heartbeat_s
        self.request_timeout_s = request_timeout_s
        self.loop = None
        self.links = {}
        self.tasks = set()
        self.errors = []  # (vehicle id, text), appended in the loop thread
        self._thread = None
        self._ready = threading.Event()
        self._stopped = None
        self._hop = None  # LoopHop into the loop, made with it
        self._outgoing = {}  # sink -> [event]
        self._deliver_scheduled = False
        self._tickers = []  # (interval_s, fn) run in the loop thread

    def port_for(self, vehicle_id):
        """The hub a vehicle talks to: the same one every time (several hubs: spread by its id)."""
        if not isinstance(self.port, list):
            return self.port
        return self.port[zlib.crc32(vehicle_id.encode()) % len(self.port)]

    # --- lifecycle (any thread) ----------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, name="vehicle-net", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self):
        asyncio.run(self._main())

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self._hop = LoopHop(self.loop, self._drain)
        self._stopped = asyncio.Event()
        tasks = [self.loop.create_task(self._every(TICK_S, self._tick_links))]
        tasks += [self.loop.create_task(self._every(i, fn)) for i, fn in self._tickers]
        self._ready.set()
        await self._stopped.wait()
        for link in self.links.values():
            link.close()
        await asyncio.sleep(0.1)  # let the closes reach the hub
        for t in tasks:
            t.cancel()

    def every(self, interval_s, fn):
        """Run fn() in the loop thread every interval_s (register before start())."""
        self._tickers.append((interval_s, fn))

    async def _every(self, interval_s, fn):
        next_t = self.loop.time()
        while True:
            next_t += interval_s
            await asyncio.sleep(max(0.0, next_t - self.loop.time()))
            try:
                fn()
            except Exception:
                log.exception("vehicle-net: periodic %s failed", getattr(fn, "__name__", fn))

    def stop(self, timeout=5):
        if self.loop is not None and self._stopped is not None:
            try:
                self.loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def add(self, vid, token, sink):
        """Open a link for vehicle `vid`; its events go to `sink` (anything with tell())."""
        self._post(("add", vid, token, sink))

    def submit(self, ops):
        """Queue requests and sends: ("req", vid, kind, fields, tag) / ("send", vid, kind, fields)."""
        if ops:
            self._post_many(ops)

    def up_count(self):
        return sum(1 for link in list(self.links.values()) if link.session is not None and link.session.authenticated)

    # --- the hop into the loop -------------------------------------------------------------

    def _post(self, op):
        self._hop.post(op)

    def _post_many(self, ops):
        self._hop.post_many(ops)

    def _drain(self, ops):
        touched = {}
        for op in ops:
            what = op[0]
            if what == "add":
                link = _VLink(self, op[1], op[2], op[3])
                self.links[op[1]] = link
                link.open()
                continue
            link = self.links.get(op[1])
            if link is None:
                continue
            if what == "req":
                link.request(op[2], op[3], op[4])
            else:
                link.send(op[2], op[3])
            touched[op[1]] = link
        for link in touched.values():
            link.flush()

    def emit(self, link, what, tag, kind, fields):
        self._outgoing.setdefault(link.sink, []).append((link.vid, what, tag, kind, fields))
        if not self._deliver_scheduled:
            self._deliver_scheduled = True
            self.loop.call_soon(self._deliver)

    def _deliver(self):
        self._deliver_scheduled = False
        out, self._outgoing = self._outgoing, {}
        for sink, events in out.items():
            try:
                sink.tell(("net", events))
            except Exception as exc:  # an agent that died: its vehicles are counted by the runner
                self.count_error(events[0][0], "agent unreachable: %s" % exc)

    def count_error(self, vid, text):
        log.error("vehicle %s: %s", vid, text)
        if len(self.errors) < 1000:
            self.errors.append((vid, text))

    def _tick_links(self):
        for link in list(self.links.values()):
            link.tick()

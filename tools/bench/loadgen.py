"""The load client: N vehicle connections over loopback, driven closed-loop or open-loop.

It runs in its own process (``python -m tools.bench.loadgen``) so it never shares a GIL
with the server it measures:

1. reads one JSON config line on stdin;
2. opens every connection and does the real handshake as role "vehicle" with the
   provisioned token (transport.session.ClientSession: HELLO, CHALLENGE, HMAC proof,
   WELCOME), at most ``connect_concurrency`` at a time; prints {"event": "ready", ...};
3. waits for "go" on stdin, drives the scenario, drains, prints {"event": "result", ...}.

After the handshake it is deliberately lean, the same against the hub and the echo server:
requests are packed with the C msgpack packer, sealed (transport.framing.Seal) and framed; every
reply is unframed with transport.framing.StreamFramer and decoded in full with C msgpack,
matched to its request by seq, and timed. Closed loop keeps ``window`` requests in
flight per connection (pipelined, a reply's successor goes out in the same write);
open loop sends at ``rate`` per second round-robin over the connections and times each
reply from the moment its request was *due* (no coordinated omission).

Scenarios (what one operation is):
  nearest    NEAREST (random point in the region, k) -> NEAREST_RESULT
  reserve    RESERVE (random station, hour slot in the next 4 weeks; a share of requests
             aims at a few hot slots, to make conflicts) -> RESERVE_RESULT ok or conflict
  positions  POSITION is fire-and-forget, so a unit is ``burst`` positions then a PING:
             its PONG proves the hub dispatched every position before it (one link's
             messages are handled in order). Closed loop: ``window`` units in flight;
             open loop: positions at ``rate``/s and one PING barrier per connection at the
             end. An operation is one position.
  mixed      every connection sends a position every ``position_interval`` s, plus NEAREST
             (and ``reserve_share`` RESERVE) closed-loop or at ``rate``/s. An operation is
             one request; positions are counted apart.
"""

import asyncio
import gc
import json
import math
import os
import random
import socket
import struct
import sys
import time

import msgpack

from transport import kinds as K
from tools.client.link import AsyncClientLink, ClientLink
from transport.session import Authenticated, Closed
from transport.huburl import parse_hub_url

_pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_unpack = msgpack.unpackb
_clock = time.perf_counter
_LINGER0 = struct.pack("ii", 1, 0)
HIST_BASE = 1.02  # latency histogram: bucket i holds [1.02**i, 1.02**(i+1)) microseconds


class Conn(AsyncClientLink):
    """One vehicle connection: the real handshake through the client link (tools/client/link.py),
    then the lean path below on the same sealed framer, with no session (it costs memory x 10,000)."""

    def __init__(self, gen, vehicle_id, token):
        AsyncClientLink.__init__(
            self, ClientLink("vehicle", vehicle_id, token, heartbeat_s=3600, request_timeout_s=120)
        )
        self.gen = gen
        self.vehicle_id = vehicle_id
        self.framer = self.link.framer  # kept after the handshake: every frame is sealed
        self.ready = gen.loop.create_future()
        self.open = False
        self.closing = False
        self.inflight = {}  # seq -> (time the request was due, positions it vouches for)
        self.seq = 0

    # --- handshake (the real one, in AsyncClientLink) -----------------------------------------

    def on_event(self, event):
        if self.open:  # read with the WELCOME, before any request: nothing may come yet
            self.gen.unexpected += 1
        elif isinstance(event, Authenticated):
            self.open = True
            if not self.ready.done():
                self.ready.set_result(True)
        elif isinstance(event, Closed):
            if not self.ready.done():
                self.ready.set_exception(ConnectionError("refused: %s" % event.text))
            self.transport.abort()

    def _handshake(self, data):
        AsyncClientLink.data_received(self, data)
        if self.open:
            self.link = None  # the lean path takes over

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during the handshake: %s" % (exc or "EOF")))
        elif self.open and not self.closing:
            self.gen.dropped += 1
        self.open = False

    # --- the lean path ---------------------------------------------------------------------

    def data_received(self, data):
        if not self.open:
            if self.link is not None:
                self._handshake(data)
            return
        g = self.gen
        now = _clock()
        inflight = self.inflight
        done = 0
        in_window = g.t_measure <= now <= g.t_end
        for payload in self.framer.feed(data):
            msg = _unpack(payload)
            entry = inflight.pop(msg[1], None)
            if entry is None:
                g.unexpected += 1
                continue
            done += 1
            kind = msg[0]
            if kind == K.ERROR:
                g.errors += 1
                if len(g.error_samples) < 5:
                    g.error_samples.append("%s: %s" % (msg[2], msg[3]))
                continue
            if kind == K.RESERVE_RESULT:
                if msg[2]:
                    g.reserved_ok += 1
                    g.reserved_ok_window += in_window
                else:
                    g.reserve_conflicts += 1
            elif kind == K.PONG:
                g.positions_acked += entry[1]
            if in_window:
                g.ops += entry[1] if g.ops_are_positions else 1
                g.latencies.append(now - entry[0])
                if g.timeline is not None:
                    sec = int(now - g.t_measure)
                    worst = g.timeline.get(sec, 0.0)
                    if now - entry[0] > worst:
                        g.timeline[sec] = now - entry[0]
        if done and g.closed_loop and g.sending:
            g.send_units(self, done, now)

    def next_seq(self):
        self.seq = self.seq + 1 if self.seq < 0xFFFFFFF0 else 1
        return self.seq


class LoadGen:
    def __init__(self, cfg):
        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        self.scenario = cfg["scenario"]
        self.closed_loop = not cfg.get("rate")
        self.window = max(1, int(cfg.get("window") or 1))
        self.k = int(cfg.get("k", 5))
        self.burst = max(1, int(cfg.get("burst", 50)))
        self.reserve_share = float(cfg.get("reserve_share", 0.0))
        self.hot_share = float(cfg.get("hot_share", 0.1))
        self.position_interval = float(cfg.get("position_interval") or 0)
        self.ops_are_positions = self.scenario == "positions"
        self.rng = random.Random(cfg.get("seed", 7))
        lat0, lat1, lon0, lon1 = cfg["region"]
        self.points = [(self.rng.uniform(lat0, lat1), self.rng.uniform(lon0, lon1)) for _ in range(4096)]
        self.station_ids = cfg.get("stations") or []
        hour = 3600
        self.slot0 = (int(time.time()) // hour + 2) * hour  # the first whole hour at least an hour ahead
        self.slots = 24 * 27
        now = int(time.time())
        # Positions are events: packed once, sealed and sent many times (the hub validates each anyway).
        self.position_frames = [(_pack([K.POSITION, 0, lat, lon, now, 0.5])) for lat, lon in self.points[:1024]]
        self.conns = []
        self.sending = False
        self.t_start = self.t_measure = self.t_end = math.inf
        self.ops = 0
        self.latencies = []
        self.errors = 0
        self.error_samples = []
        self.unexpected = 0
        self.refused = 0
        self.refused_samples = []
        self.dropped = 0
        self.reserved_ok = 0
        self.reserve_conflicts = 0
        self.reserved_ok_window = 0
        self.timeline = {} if cfg.get("timeline") else None  # second of the window -> worst latency
        self.positions_sent = 0
        self.positions_acked = 0
        self.requests_sent = 0
        self._pi = 0

    # --- connecting -------------------------------------------------------------------------

    async def connect_all(self, creds):
        host, port = parse_hub_url(self.cfg["url"])
        sem = asyncio.Semaphore(int(self.cfg.get("connect_concurrency", 200)))
        timeout = float(self.cfg.get("handshake_timeout", 30))

        async def one(vehicle_id, token):
            async with sem:
                conn = None
                try:
                    _t, conn = await self.loop.create_connection(lambda: Conn(self, vehicle_id, token), host, port)
                    await asyncio.wait_for(asyncio.shield(conn.ready), timeout)
                    return conn
                except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                    self.refused += 1
                    if len(self.refused_samples) < 5:
                        self.refused_samples.append("%s: %s" % (type(exc).__name__, exc))
                    if conn is not None and conn.transport is not None:
                        conn.closing = True
                        conn.transport.abort()
                    return None

        t0 = time.monotonic()
        conns = await asyncio.gather(*(one(v, t) for v, t in creds))
        self.conns = [c for c in conns if c is not None]
        return time.monotonic() - t0

    # --- building requests ---------------------------------------------------------------------

    def _request(self, conn, due):
        """One request frame; registers it in flight."""
        seq = conn.next_seq()
        if self.scenario == "reserve" or (self.reserve_share and self.rng.random() < self.reserve_share):
            rng = self.rng
            if rng.random() < self.hot_share:
                sid = self.station_ids[rng.randrange(min(4, len(self.station_ids)))]
                start = self.slot0 + rng.randrange(3) * 3600
            else:
                sid = self.station_ids[rng.randrange(len(self.station_ids))]
                start = self.slot0 + rng.randrange(self.slots) * 3600
            payload = _pack([K.RESERVE, seq, sid, start, start + 3600])
        else:
            self._pi = (self._pi + 1) & 4095
            lat, lon = self.points[self._pi]
            payload = _pack([K.NEAREST, seq, lat, lon, self.k, None])
        conn.inflight[seq] = (due, 1)
        self.requests_sent += 1
        return conn.framer.encode(payload)

    def _positions_unit(self, conn, due):
        """`burst` positions and the PING that vouches for them."""
        frames = []
        pf = self.position_frames
        for _ in range(self.burst):
            self._pi = (self._pi + 1) & 1023
            frames.append(conn.framer.encode(pf[self._pi]))
        seq = conn.next_seq()
        frames.append(conn.framer.encode(_pack([K.PING, seq, 0])))
        conn.inflight[seq] = (due, self.burst)
        self.positions_sent += self.burst
        return b"".join(frames)

    def send_units(self, conn, n, due):
        if not conn.open:
            return
        if self.scenario == "positions":
            conn.transport.write(b"".join([self._positions_unit(conn, due) for _ in range(n)]))
        elif n == 1:
            conn.transport.write(self._request(conn, due))
        else:
            conn.transport.write(b"".join([self._request(conn, due) for _ in range(n)]))

    def send_position(self, conn):
        if conn.open:
            self._pi = (self._pi + 1) & 1023
            conn.transport.write(conn.framer.encode(self.position_frames[self._pi]))
            self.positions_sent += 1

    # --- running ---------------------------------------------------------------------------------

    async def run(self, duration, warmup):
        conns = self.conns
        n = len(conns)
        if n == 0:
            return
        self.t_start = _clock()
        self.t_measure = self.t_start + warmup
        self.t_end = self.t_measure + duration
        self.sending = True
        if self.closed_loop:
            for c in conns:
                self.send_units(c, self.window, self.t_start)
        pacer = self.loop.create_task(self._pace())
        await asyncio.sleep(max(0.0, self.t_end - _clock()))
        self.sending = False
        await pacer

    async def _pace(self):
        """Open-loop sends and periodic positions, every millisecond or so."""
        conns = self.conns
        n = len(conns)
        rate = float(self.cfg.get("rate") or 0)
        t0 = self.t_start
        sent = 0
        sent_pos = 0
        interval = self.position_interval if self.scenario == "mixed" else 0
        while self.sending:
            now = _clock()
            if now >= self.t_end:
                break
            elapsed = now - t0
            if rate:
                due = int(elapsed * rate)
                if self.scenario == "positions":
                    batches = {}
                    pf = self.position_frames
                    for j in range(sent, due):
                        batches.setdefault(j % n, []).append(pf[j & 1023])
                    for i, frames in batches.items():
                        if conns[i].open:
                            enc = conns[i].framer.encode
                            conns[i].transport.write(b"".join([enc(f) for f in frames]))
                    self.positions_sent += due - sent
                else:
                    for j in range(sent, due):
                        c = conns[j % n]
                        if c.open:
                            c.transport.write(self._request(c, t0 + j / rate))
                sent = max(sent, due)
            if interval:
                due_pos = int(elapsed / interval * n)
                for j in range(sent_pos, due_pos):
                    self.send_position(conns[j % n])
                sent_pos = max(sent_pos, due_pos)
            await asyncio.sleep(0.001)

    async def drain(self, timeout):
        """Wait for the replies still in flight, then (positions, mixed) one PING barrier per
        connection: when every PONG is back, the hub has dispatched every position sent."""
        deadline = _clock() + timeout
        while _clock() < deadline and any(c.inflight for c in self.conns if c.open):
            await asyncio.sleep(0.01)
        barrier = None
        if self.scenario in ("positions", "mixed") and self.conns:
            t0 = _clock()
            for c in self.conns:
                if c.open:
                    seq = c.next_seq()
                    c.inflight[seq] = (math.inf, 0)  # math.inf: outside every window, never timed
                    c.transport.write(c.framer.encode(_pack([K.PING, seq, 0])))
            while _clock() < deadline and any(c.inflight for c in self.conns if c.open):
                await asyncio.sleep(0.005)
            barrier = _clock() - t0
        lost = sum(len(c.inflight) for c in self.conns)
        return barrier, lost, _clock() - self.t_start

    def close_all(self):
        for c in self.conns:
            c.closing = True
            if c.transport is not None and not c.transport.is_closing():
                sock = c.transport.get_extra_info("socket")
                if sock is not None:
                    try:  # RST instead of FIN: no TIME_WAIT ports left for the next run
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
                    except OSError:
                        pass
                c.transport.abort()


def histogram(latencies_s):
    """Sparse latency histogram {bucket: count}, bucket = floor(log(us) / log(HIST_BASE))."""
    hist = {}
    inv = 1.0 / math.log(HIST_BASE)
    log = math.log
    for s in latencies_s:
        us = s * 1e6
        b = int(log(us) * inv) if us >= 1.0 else 0
        hist[b] = hist.get(b, 0) + 1
    return hist


def percentile_ms(hist, q):
    """The q-quantile (0..1) of a merged histogram, in ms (bucket midpoint); None if empty."""
    total = sum(hist.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return round(HIST_BASE ** (b + 0.5) / 1000.0, 3)
    return None


async def _amain(cfg, stdin_lines):
    gen = LoadGen(cfg)
    connect_s = await gen.connect_all(cfg["creds"])
    gc.collect()
    gc.freeze()  # 10,000 long-lived connections: keep them out of every later collection
    print(
        json.dumps(
            {
                "event": "ready",
                "connected": len(gen.conns),
                "refused": gen.refused,
                "refused_samples": gen.refused_samples,
                "connect_s": round(connect_s, 3),
            }
        ),
        flush=True,
    )
    line = await stdin_lines()
    if line.strip() != "go":
        gen.close_all()
        return
    cpu0 = os.times()
    await gen.run(float(cfg["duration"]), float(cfg.get("warmup", 0)))
    barrier, lost, elapsed = await gen.drain(float(cfg.get("drain_timeout", 30)))
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    duration = float(cfg["duration"])
    out = {
        "event": "result",
        "connected": len(gen.conns),
        "refused": gen.refused,
        "dropped": gen.dropped,
        "ops": gen.ops,
        "duration_s": duration,
        "requests_sent": gen.requests_sent,
        "errors": gen.errors,
        "error_samples": gen.error_samples,
        "unexpected": gen.unexpected,
        "lost": lost,
        "reserved_ok": gen.reserved_ok,
        "reserve_conflicts": gen.reserve_conflicts,
        "reserved_ok_window": gen.reserved_ok_window,
        "positions_sent": gen.positions_sent,
        "positions_acked": gen.positions_acked,
        "barrier_s": None if barrier is None else round(barrier, 4),
        "elapsed_s": round(elapsed, 4),
        "client_cpu_pct": round(100.0 * cpu / max(elapsed, 1e-9), 1),
        "hist": histogram(gen.latencies),
        "timeline": None if gen.timeline is None else {s: round(v * 1000, 1) for s, v in sorted(gen.timeline.items())},
    }
    gen.close_all()
    print(json.dumps(out), flush=True)


def main():
    cfg = json.loads(sys.stdin.readline())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def stdin_line():
        return await loop.run_in_executor(None, sys.stdin.readline)

    try:
        loop.run_until_complete(_amain(cfg, stdin_line))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

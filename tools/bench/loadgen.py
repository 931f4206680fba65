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
from tools.bench.conn import Conn
from tools.bench.latency import histogram
from transport.huburl import parse_hub_url

_pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_clock = time.perf_counter
_LINGER0 = struct.pack("ii", 1, 0)


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

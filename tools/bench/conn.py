"""One load connection of the bench's load client (tools/bench/loadgen.py): the real handshake
through the client link (tools/client/link.py), then a lean path on the same sealed framer that
matches replies to requests by seq and times them. The lean path is the measured one: it stays
hand-written and session-free (a session costs memory x 10,000 connections).
"""

import time

import msgpack

from tools.client.link import AsyncClientLink, ClientLink
from transport import kinds as K
from transport.session import Authenticated, Closed

_unpack = msgpack.unpackb
_clock = time.perf_counter


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

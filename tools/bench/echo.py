"""The do-nothing echo server: the ceiling this machine and this load client allow.

It speaks just enough of the protocol for the load client: the handshake is the hub's own
(transport's ServerSession: HELLO -> CHALLENGE, AUTH -> WELCOME, the HMAC proof checked, so a
connection costs what it costs at the hub), then one reply per request, of the shape and size the hub
sends (NEAREST_RESULT with k station maps, RESERVE_RESULT, PONG, STATS). Per message it
does the same framing (transport.framing.StreamFramer) and msgpack work (transport.codec
unpackb of the request, packb of the reply) as the hub's I/O loop, batches replies into
one write per read like the hub's Link.flush, and nothing else: no validation, no lookup.

Run: python -m tools.bench.echo [--listen tcp://127.0.0.1:0]; it prints
"echo listening on tcp://127.0.0.1:PORT" and serves until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import signal
import sys
import time

from transport import kinds as K
from transport.codec import packb, unpackb
from transport.framing import StreamFramer
from transport.session import ServerSession
from transport.huburl import parse_hub_url


def canned_station(i):
    """One station map like the hub's NEAREST_RESULT entry (router._nearest)."""
    return {
        "id": "BS-%06d" % (1000 + i),
        "lat": -12.123456789 + i * 0.01,
        "lon": -38.987654321 - i * 0.01,
        "distance_km": 1.234 + i,
        "status": "Offline",
        "free_in_min": None,
        "connectors": 2,
        "max_kw": 50.0,
    }


class EchoProtocol(asyncio.Protocol):
    def __init__(self, server):
        self.server = server
        self.framer = StreamFramer()
        self.session = ServerSession(lambda _role, peer_id: server.keys.get(peer_id, b""))
        self.framer.seal = self.session.seal  # the same per-frame MAC work as the hub's links
        self.transport = None
        self.open = False

    def connection_made(self, transport):
        self.transport = transport
        self.server.links += 1

    def connection_lost(self, exc):
        self.server.links -= 1

    def data_received(self, data):
        out = []
        encode = self.framer.encode
        srv = self.server
        for payload in self.framer.feed(data):
            msg = unpackb(payload)
            if not self.open:  # the handshake, as the hub's gateway runs it
                self.session.receive(msg)
                out.extend(encode(packb(m)) for m in self.session.take_outgoing())
                self.open = self.session.authenticated
                continue
            kind = msg[0]
            seq = msg[1]
            if kind == K.POSITION:
                srv.positions += 1
                continue
            if kind == K.NEAREST:
                k = msg[4]
                reply = [K.NEAREST_RESULT, seq, srv.stations[:k]]
            elif kind == K.RESERVE:
                srv.next_id += 1
                reply = [K.RESERVE_RESULT, seq, True, srv.next_id, [], None]
            elif kind == K.PING:
                reply = [K.PONG, seq, int(time.time())]
            elif kind == K.HUB_STATS:
                reply = [K.STATS, seq, {"positions": srv.positions, "links": srv.links}]
            else:
                reply = [K.ACK, seq]
            out.append(encode(packb(reply)))
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))


class EchoServer:
    def __init__(self, keys=None, k_max=50):
        self.keys = keys or {}  # vehicle id -> token bytes; an unknown id is checked against b""
        self.stations = [canned_station(i) for i in range(k_max)]
        self.positions = 0
        self.links = 0
        self.next_id = 0


async def serve(url, keys, ready=None):
    host, port = parse_hub_url(url)
    loop = asyncio.get_running_loop()
    srv = EchoServer(keys)
    server = await loop.create_server(lambda: EchoProtocol(srv), host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (ValueError, RuntimeError):
            pass
    print("echo listening on tcp://%s:%d" % (host, server.sockets[0].getsockname()[1]), flush=True)
    await stop.wait()
    server.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench.echo", description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="tcp://127.0.0.1:0")
    p.add_argument("--keys", help="file of 'vehicle_id token' lines (default: every id's key is empty)")
    args = p.parse_args(argv)
    keys = {}
    if args.keys:
        with open(args.keys) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    keys[parts[0]] = parts[1].encode()
    asyncio.run(serve(args.listen, keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())

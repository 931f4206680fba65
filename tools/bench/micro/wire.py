"""Micro-benchmarks of the wire layer: msgpack pack/unpack and framing encode+decode.

CPython: the codec (C msgpack with evhub's guards), raw C msgpack for reference,
and purepack; MicroPython (the unix port, when installed): purepack and framing,
run in a subprocess whose output is parsed. ``evhub bench --scenario micro`` reports figures().
"""

import os
import subprocess
import timeit

from tools.common import toolpath

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# A vehicle's NEAREST request: kind, seq, lat, lon, k, filters.
TYPICAL = [61, 17, -12.2664, -38.9663, 5, {"available": True}]


def _row(runtime, impl, op, seconds_per_op, size):
    return {
        "runtime": runtime,
        "impl": impl,
        "op": op,
        "bytes": size,
        "ops_per_s": round(1.0 / seconds_per_op) if seconds_per_op > 0 else None,
        "us_per_op": round(seconds_per_op * 1e6, 3),
    }


def _best(func, number, repeat=5):
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number


def bench_cpython(number=100000, message=TYPICAL):
    """Rows for CPython: codec (msgpack-c), raw msgpack, purepack, stream and serial framing."""
    import msgpack

    from transport import codec, purepack
    from transport.framing import SerialFramer, StreamFramer

    data = codec.packb(message)
    rows = []
    impl = codec.IMPLEMENTATION
    slow = max(1000, number // 20)  # purepack is ~20x slower; keep the run short
    cases = [
        (impl, "pack", lambda: codec.packb(message), number),
        (impl, "unpack", lambda: codec.unpackb(data), number),
        ("msgpack raw", "pack", lambda: msgpack.packb(message), number),
        ("msgpack raw", "unpack", lambda: msgpack.unpackb(data), number),
        ("purepack", "pack", lambda: purepack.packb(message), slow),
        ("purepack", "unpack", lambda: purepack.unpackb(data), slow),
    ]
    stream = StreamFramer()
    serial = SerialFramer()
    cases += [
        ("StreamFramer", "encode+feed", lambda: stream.feed(stream.encode(data)), number // 2),
        ("SerialFramer", "encode+feed", lambda: serial.feed(serial.encode(data)), number // 5),
    ]
    # The same frame sealed (a session's per-frame MAC: seal + open, protocol 2).
    sealed = StreamFramer()
    sealed.seal = _loopback_seal()
    cases.append(("StreamFramer sealed", "encode+feed", lambda: sealed.feed(sealed.encode(data)), number // 5))
    for name, op, func, n in cases:
        rows.append(_row("cpython", name, op, _best(func, n), len(data)))
    return rows


def _loopback_seal():
    """A Seal whose receive key is its send key, so one framer opens what it sealed."""
    from transport.framing import Seal

    seal = Seal()
    seal.start(b"k" * 32, b"k" * 32)
    return seal


_MPY_SCRIPT = """
import time
from transport import purepack, codec
from transport.framing import StreamFramer, SerialFramer
msg = %r
N = %d
data = purepack.packb(msg)
stream = StreamFramer(4096)
serial = SerialFramer()

def best(f, n):
    b = None
    for _ in range(3):
        t = time.ticks_us()
        for _ in range(n):
            f()
        d = time.ticks_diff(time.ticks_us(), t)
        b = d if b is None or d < b else b
    return b / n

print('purepack pack', best(lambda: purepack.packb(msg), N))
print('purepack unpack', best(lambda: purepack.unpackb(data), N))
print('StreamFramer encode+feed', best(lambda: stream.feed(stream.encode(data)), N))
print('SerialFramer encode+feed', best(lambda: serial.feed(serial.encode(data)), N))
from transport.framing import Seal
sealed = StreamFramer(4096)
sealed.seal = Seal()
sealed.seal.start(b'k' * 32, b'k' * 32)
print('StreamFramer-sealed encode+feed', best(lambda: sealed.feed(sealed.encode(data)), N // 4))
print('bytes', len(data), codec.IMPLEMENTATION)
"""


def find_micropython():
    return toolpath.find_tool("micropython")


# The modules are compiled from source here (a board runs them as .mpy from romfs, which needs no
# compiler heap): since the frame seal, compiling transport/framing.py needs more than 64 KB.
MPY_BENCH_HEAP = "128K"


def bench_micropython(number=2000, message=TYPICAL, heapsize=MPY_BENCH_HEAP, binary=None):
    """Rows for MicroPython (unix port, ``-X heapsize``); [] when no micropython binary."""
    binary = binary or find_micropython()
    if not binary:
        return []
    env = dict(os.environ, MICROPYPATH=".frozen:" + REPO)
    proc = subprocess.run(
        [binary, "-X", "heapsize=%s" % heapsize, "-c", _MPY_SCRIPT % (message, number)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError("micropython benchmark failed:\n%s%s" % (proc.stdout, proc.stderr))
    lines = proc.stdout.split("\n")
    size = int([line for line in lines if line.startswith("bytes ")][0].split()[1])
    rows = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] != "bytes":
            rows.append(_row("micropython-%s" % heapsize, parts[0], parts[1], float(parts[2]) / 1e6, size))
    return rows


def figures(quick: bool) -> dict:
    """The report's wire section: us per op by runtime, implementation and operation."""
    out = {}
    for r in bench_cpython(number=10000 if quick else 100000):
        out["%s %s %s (%d B)" % (r["runtime"], r["impl"], r["op"], r["bytes"])] = r["us_per_op"]
    try:
        rows = bench_micropython(number=300 if quick else 3000)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        out["micropython"] = "failed: %s" % str(exc).splitlines()[0]
        rows = []
    if not rows and "micropython" not in out:
        out["micropython"] = "no micropython binary: skipped"
    for r in rows:
        out["%s %s %s (%d B)" % (r["runtime"], r["impl"], r["op"], r["bytes"])] = r["us_per_op"]
    return out

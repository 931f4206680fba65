"""Micro-benchmarks of the wire layer: msgpack pack/unpack and framing encode+decode.

CPython: the codec (C msgpack with evhub's guards), raw C msgpack for reference,
and purepack; MicroPython (the unix port, when installed): purepack and framing,
run in a subprocess whose output is parsed. ``evhub bench`` can call
``bench_cpython()`` / ``bench_micropython()``; ``main()`` prints a table or JSON.

    python -m tools.microbench [--json] [--quick] [--no-micropython]
"""

import argparse
import json
import os
import subprocess
import sys
import timeit

from tools import toolpath

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


def format_table(rows):
    head = ("runtime", "impl", "op", "bytes", "ops/s", "us/op")
    lines = [head]
    for r in rows:
        lines.append(
            (r["runtime"], r["impl"], r["op"], str(r["bytes"]), "{:,}".format(r["ops_per_s"]), "%.2f" % r["us_per_op"])
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="microbench", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a rough figure in ~2 s)")
    parser.add_argument("--no-micropython", action="store_true", help="skip the MicroPython part")
    parser.add_argument(
        "--heapsize",
        default=MPY_BENCH_HEAP,
        help="MicroPython heap (default %s: the modules are compiled from source)" % MPY_BENCH_HEAP,
    )
    args = parser.parse_args(argv)
    rows = bench_cpython(number=10000 if args.quick else 100000)
    if not args.no_micropython:
        mpy_rows = bench_micropython(number=300 if args.quick else 3000, heapsize=args.heapsize)
        if not mpy_rows:
            print("(no micropython binary found: MicroPython figures skipped)", file=sys.stderr)
        rows += mpy_rows
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("message: %r" % (TYPICAL,))
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

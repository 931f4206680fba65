"""Golden msgpack vectors: (name, object, exact hex), one per format boundary.

Checked against the C msgpack package and purepack under CPython
(tests/test_codec.py) and against purepack under MicroPython
(tests/test_micropython.py). ``to_source`` writes an object as MicroPython
source (floats by their IEEE-754 bits, so no float parser is trusted).
"""

import struct


def _h(*parts):
    return "".join(parts)


def _fix_map(n):
    return {i: i for i in range(n)}


def _fix_map_hex(n):
    return "".join("%02x%02x" % (i, i) for i in range(n))


def _f32(x):
    """x as a single-precision board holds it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


TYPICAL = [61, 17, -12.2664, -38.9663, 5, {"available": True}]

VECTORS = [
    # nil, bool
    ("nil", None, "c0"),
    ("false", False, "c2"),
    ("true", True, "c3"),
    # positive ints: fixint, uint8/16/32/64 boundaries
    ("int 0", 0, "00"),
    ("int 127", 127, "7f"),
    ("int 128", 128, "cc80"),
    ("int 255", 255, "ccff"),
    ("int 256", 256, "cd0100"),
    ("int 65535", 65535, "cdffff"),
    ("int 65536", 65536, "ce00010000"),
    ("int 2**32-1", 2**32 - 1, "ceffffffff"),
    ("int 2**32", 2**32, "cf0000000100000000"),
    ("int 2**64-1", 2**64 - 1, "cfffffffffffffffff"),
    # negative ints: negative fixint, int8/16/32/64 boundaries
    ("int -1", -1, "ff"),
    ("int -32", -32, "e0"),
    ("int -33", -33, "d0df"),
    ("int -128", -128, "d080"),
    ("int -129", -129, "d1ff7f"),
    ("int -32768", -32768, "d18000"),
    ("int -32769", -32769, "d2ffff7fff"),
    ("int -2**31", -(2**31), "d280000000"),
    ("int -2**31-1", -(2**31) - 1, "d3ffffffff7fffffff"),
    ("int -2**63", -(2**63), "d38000000000000000"),
    # floats: always float64
    ("float 0.0", 0.0, "cb0000000000000000"),
    ("float -0.0", -0.0, "cb8000000000000000"),
    ("float 1.5", 1.5, "cb3ff8000000000000"),
    ("float -12.2664", -12.2664, "cbc028886594af4f0e"),
    ("float 1e-310 subnormal", 1e-310, "cb000012688b70e62b"),
    ("float max", 1.7976931348623157e308, "cb7fefffffffffffff"),
    ("float inf", float("inf"), "cb7ff0000000000000"),
    ("float -inf", float("-inf"), "cbfff0000000000000"),
    # what a single-precision board (every ESP32) sends: its floats hold float32 values, widened to
    # float64 by purepack; time and energy are ints (the hub reads the floats: hub/domain/boardfloats.py)
    ("float32 board lat 52.520008", _f32(52.520008), "cb404a428fa0000000"),
    ("float32 board lon -122.419416", _f32(-122.419416), "cbc05e9ad7c0000000"),
    ("float32 board max_kw 7.4", _f32(7.4), "cb401d9999a0000000"),
    (
        "float32 board BOOT",
        [20, 1, _f32(52.520008), _f32(-122.419416), 2, _f32(7.4), "evhub-fw/0.1"],
        "971401cb404a428fa0000000cbc05e9ad7c000000002cb401d9999a0000000ac65766875622d66772f302e31",
    ),
    (
        "float32 board METER (ints: Wh, W, epoch s)",
        [22, 0, 1, "CP-1-7-a1b2c3", 1600, 11000, 1800000321],
        "97160001ad43502d312d372d613162326333cd0640cd2af8ce6b49d341",
    ),
    # str: fixstr / str8 / str16 / str32
    ("str empty", "", "a0"),
    ("str 31", "a" * 31, _h("bf", "61" * 31)),
    ("str 32", "a" * 32, _h("d920", "61" * 32)),
    ("str 255", "a" * 255, _h("d9ff", "61" * 255)),
    ("str 256", "a" * 256, _h("da0100", "61" * 256)),
    ("str 65535", "a" * 65535, _h("daffff", "61" * 65535)),
    ("str 65536", "a" * 65536, _h("db00010000", "61" * 65536)),
    ("str utf-8", "é€😀", "a9c3a9e282acf09f9880"),
    ("str nul", "a\x00b", "a3610062"),
    # bin: bin8 / bin16 / bin32
    ("bin empty", b"", "c400"),
    ("bin 1", b"\x00", "c40100"),
    ("bin 255", b"\xff" * 255, _h("c4ff", "ff" * 255)),
    ("bin 256", b"\x01" * 256, _h("c50100", "01" * 256)),
    ("bin 65535", b"\x02" * 65535, _h("c5ffff", "02" * 65535)),
    ("bin 65536", b"\x03" * 65536, _h("c600010000", "03" * 65536)),
    # arrays: fixarray / array16 / array32
    ("array empty", [], "90"),
    ("array 15", list(range(15)), _h("9f", "".join("%02x" % i for i in range(15)))),
    ("array 16", list(range(16)), _h("dc0010", "".join("%02x" % i for i in range(16)))),
    ("array 65535", [0] * 65535, _h("dcffff", "00" * 65535)),
    ("array 65536", [0] * 65536, _h("dd00010000", "00" * 65536)),
    ("tuple is an array", (1, 2), "920102"),
    # maps: fixmap / map16 / map32
    ("map empty", {}, "80"),
    ("map 15", _fix_map(15), _h("8f", _fix_map_hex(15))),
    ("map 16", _fix_map(16), _h("de0010", _fix_map_hex(16))),
    ("map 65536", {i: None for i in range(65536)}, None),  # hex built below: too long to write out
    ("map str keys", {"a": 1, "b": [2]}, "82a161 01a162 9102".replace(" ", "")),
    ("map mixed keys", {1: "x", b"k": None, -1: 0.5}, "8301a178c4016bc0ffcb3fe0000000000000"),
    # nested
    ("typical message", TYPICAL, "963d11cbc028886594af4f0ecbc0437bafb7e90ff90581a9617661696c61626c65c3"),
    ("nested 3", [[[]]], "919190"),
    ("nested mix", {"k": [b"x", {None: 1.0}]}, "81a16b92c4017881c0cb3ff0000000000000"),
    ("depth 32", [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "91" * 31 + "90"),
]


def _map65536_hex():
    parts = ["df00010000"]
    for i in range(65536):
        if i < 128:
            parts.append("%02x" % i)
        elif i < 256:
            parts.append("cc%02x" % i)
        else:
            parts.append("cd%04x" % i)
        parts.append("c0")
    return "".join(parts)


VECTORS = [(n, o, _map65536_hex() if h is None else h) for (n, o, h) in VECTORS]

# Vectors small enough for a 64 KB MicroPython heap (with room to spare); the rest run with a bigger heap.
SMALL_LIMIT = 4096


def small_vectors():
    return [v for v in VECTORS if len(v[2]) // 2 <= SMALL_LIMIT]


def big_vectors():
    return [v for v in VECTORS if len(v[2]) // 2 > SMALL_LIMIT]


def to_source(obj):
    """MicroPython/CPython source text that rebuilds ``obj`` (repetitions compressed)."""
    t = type(obj)
    if obj is None or t is bool or t is int:
        return repr(obj)
    if t is float:
        return "_f(%r)" % struct.pack(">d", obj).hex()
    if t is str:
        if len(obj) > 64 and obj == obj[0] * len(obj):
            return "%r*%d" % (obj[0], len(obj))
        return repr(obj)
    if t is bytes:
        if len(obj) > 64 and obj == obj[:1] * len(obj):
            return "%r*%d" % (obj[:1], len(obj))
        return repr(obj)
    if t is list or t is tuple:
        if len(obj) > 64 and all(type(x) is int for x in obj):
            if obj == [obj[0]] * len(obj):
                return "[%r]*%d" % (obj[0], len(obj))
            if list(obj) == list(range(len(obj))):
                return "list(range(%d))" % len(obj)
        inner = ",".join(to_source(x) for x in obj)
        return ("(%s,)" % inner if obj else "()") if t is tuple else "[%s]" % inner
    if t is dict:
        if len(obj) > 64 and all(k == i for i, k in enumerate(obj)):
            values = set(obj.values())
            if values == {None}:
                return "dict((i, None) for i in range(%d))" % len(obj)
            return "dict((i, i) for i in range(%d))" % len(obj)
        return "{%s}" % ",".join("%s:%s" % (to_source(k), to_source(v)) for k, v in obj.items())
    raise TypeError("no source form for %r" % (t,))


def as_float32(obj):
    """``obj`` with every float as a single-precision board holds it (overflow -> inf), for the
    bytes such a board packs (purepack widens its float32 values to float64)."""
    t = type(obj)
    if t is float:
        if obj != obj or abs(obj) == float("inf"):
            return obj
        if abs(obj) >= 3.4028235677973366e38:  # past float32's largest value by half a step
            return float("inf") if obj > 0 else float("-inf")
        return _f32(obj)
    if t is list or t is tuple:
        return t(as_float32(x) for x in obj)
    if t is dict:
        return {as_float32(k): as_float32(v) for k, v in obj.items()}
    return obj


def same(a, b):
    """Decoded-value equality: tuples equal lists, NaN equals NaN, bool is not int."""
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(b, tuple):
        b = list(b)
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b or (a != a and b != b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        # Both decoders keep the wire order; compare pairwise (a NaN key is never `in` a dict).
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items())
        )
    return a == b

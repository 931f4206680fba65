"""A small pure-Python msgpack codec for the board (MicroPython has no msgpack).

The subset we speak: nil, bool, int (-2**63 .. 2**64-1), float, str (UTF-8),
bin, array and map. ``packb`` gives the same bytes as the C package's
``msgpack.packb(obj, use_bin_type=True)``: the smallest integer encoding,
floats always as float64 (0xcb), str8/bin8 when they fit. ``unpackb`` also
reads float32 (0xca) because a C peer may send it.

Everything else raises CodecError: an unsupported type when packing, ext
types, truncated data, trailing bytes, nesting deeper than MAX_DEPTH, invalid
UTF-8, a length bigger than the data left. Decoding walks one ``bytes`` object
with an index (no slicing copies except for the str/bin values themselves),
and a container header can never make it allocate more than the input holds.

Two ways the board's bytes can differ from CPython's for the same value:
maps are written in the dict's iteration order, and MicroPython dicts are not
insertion-ordered, so a map with several keys may come out with its keys in
another order (same length, same decoded value); and on a port with
single-precision floats (the stock ESP32 build) a float is widened to float64,
so values float32 cannot hold exactly are not CPython's bits.
"""

import struct

from transport.compat import const
from transport.errors import CodecError

MAX_DEPTH = const(32)  # containers nested inside each other; [] alone is depth 1

_INT_MIN = const(-(1 << 63))
_UINT_MAX = const((1 << 64) - 1)


def packb(obj):
    """Encode `obj` to msgpack bytes; raises CodecError for anything outside the subset."""
    w = _Writer()
    try:
        w.pack(obj)
    except UnicodeError:
        # CPython: lone surrogates cannot be encoded as UTF-8.
        raise CodecError("msgpack: str is not encodable as UTF-8")
    return bytes(w.out)


def unpackb(data):
    """Decode exactly one msgpack value from bytes/bytearray/memoryview; raises CodecError."""
    if type(data) is not bytes:
        if type(data) is bytearray or type(data) is memoryview:
            data = bytes(data)
        else:
            raise CodecError("msgpack: expected bytes, got %s" % type(data).__name__)
    r = _Reader(data)
    try:
        obj = r.read()
    except UnicodeError:
        raise CodecError("msgpack: str is not valid UTF-8")
    except TypeError:
        # A map key that cannot be hashed (an array or a map used as a key).
        raise CodecError("msgpack: unhashable map key")
    if r.pos != r.end:
        raise CodecError("msgpack: %d trailing bytes after the value" % (r.end - r.pos))
    return obj


# The per-value methods below are kept small on purpose: MicroPython puts a
# call's frame on the C stack only while locals + value stack fit 11 words;
# bigger frames go to the heap on every call, which is slow and, for long
# arrays, makes the allocator rescan the heap (quadratic time). A test checks
# the frame sizes (tests/test_micropython.py).


def _too_deep():
    return CodecError("msgpack: nesting deeper than %d" % MAX_DEPTH)


class _Writer:
    def __init__(self):
        self.out = bytearray()
        self.depth = 0

    def pack(self, obj):
        t = type(obj)
        if t is int:
            self.p_int(obj)
        elif t is str:
            self.p_str(obj.encode("utf-8"))
        elif t is float:
            self.p_fixed(0xCB, obj)
        elif t is list or t is tuple:
            self.p_array(obj)
        elif t is dict:
            self.p_map(obj)
        elif obj is None:
            self.out.append(0xC0)
        elif obj is True:
            self.out.append(0xC3)
        elif obj is False:
            self.out.append(0xC2)
        elif t is bytes or t is bytearray or t is memoryview:
            self.p_bin(obj)
        else:
            self.p_subclass(obj)

    def p_int(self, obj):
        if obj >= 0:
            if obj < 0x80:
                self.out.append(obj)
            elif obj < 0x100:
                self.p_fixed(0xCC, obj)
            elif obj < 0x10000:
                self.p_fixed(0xCD, obj)
            elif obj < 0x100000000:
                self.p_fixed(0xCE, obj)
            elif obj <= _UINT_MAX:
                self.p_fixed(0xCF, obj)
            else:
                raise CodecError("msgpack: int %d is above 2**64-1" % obj)
        elif obj >= -32:
            self.out.append(obj + 0x100)
        elif obj >= -0x80:
            self.p_fixed(0xD0, obj)
        elif obj >= -0x8000:
            self.p_fixed(0xD1, obj)
        elif obj >= -0x80000000:
            self.p_fixed(0xD2, obj)
        elif obj >= _INT_MIN:
            self.p_fixed(0xD3, obj)
        else:
            raise CodecError("msgpack: int %d is below -2**63" % obj)

    def p_fixed(self, b, value):
        # Header byte b, then value in the struct format the reader uses for b (_FMT).
        self.out.append(b)
        self.out += struct.pack(_FMT[b - 0xC4], value)

    def p_len(self, n, c8):
        # str8/16/32 are d9/da/db and bin8/16/32 are c4/c5/c6: c16 = c8+1, c32 = c8+2.
        if n < 0x100:
            self.p_fixed(c8, n)
        elif n < 0x10000:
            self.p_fixed(c8 + 1, n)
        elif n < 0x100000000:
            self.p_fixed(c8 + 2, n)
        else:
            raise CodecError("msgpack: length %d does not fit 32 bits" % n)

    def p_head(self, n, fix, c16):
        # fixarray 90+n / fixmap 80+n up to 15; array16/32 dc/dd, map16/32 de/df.
        if n < 16:
            self.out.append(fix | n)
        elif n < 0x10000:
            self.p_fixed(c16, n)
        elif n < 0x100000000:
            self.p_fixed(c16 + 1, n)
        else:
            raise CodecError("msgpack: length %d does not fit 32 bits" % n)

    def p_str(self, b):
        if len(b) < 32:
            self.out.append(0xA0 | len(b))
        else:
            self.p_len(len(b), 0xD9)
        self.out += b

    def p_bin(self, obj):
        self.p_len(len(obj), 0xC4)
        self.out += obj

    def p_array(self, obj):
        if self.depth >= MAX_DEPTH:
            raise _too_deep()
        self.p_head(len(obj), 0x90, 0xDC)
        self.depth += 1
        for item in obj:
            self.pack(item)
        self.depth -= 1

    def p_map(self, obj):
        if self.depth >= MAX_DEPTH:
            raise _too_deep()
        self.p_head(len(obj), 0x80, 0xDE)
        self.depth += 1
        for key in obj:
            self.pack(key)
            self.pack(obj[key])
        self.depth -= 1

    def p_subclass(self, obj):
        # Subclasses (an IntEnum, an OrderedDict, a namedtuple) pack as their base,
        # in the same order of checks as the C packer.
        if isinstance(obj, int):
            self.p_int(int(obj))
        elif isinstance(obj, float):
            self.p_fixed(0xCB, obj)
        elif isinstance(obj, (bytes, bytearray)):
            self.p_bin(obj)
        elif isinstance(obj, str):
            self.p_str(str.encode(obj, "utf-8"))  # the string itself, whatever __str__ says
        elif isinstance(obj, dict):
            self.p_map(obj)
        elif getattr(type(obj), "__module__", None) == "msgpack.ext":
            # CPython only: msgpack.ExtType is a namedtuple, but it means an ext type, not an array.
            raise CodecError("msgpack: cannot pack type %s (ext types are not supported)" % type(obj).__name__)
        elif isinstance(obj, (list, tuple)):
            self.p_array(obj)
        else:
            raise CodecError("msgpack: cannot pack type %s" % type(obj).__name__)


# Types 0xc4..0xdf with a fixed-size body or length: struct format and size, by (type - 0xc4).
# None/0 marks ext types (c7-c9, d4-d8), refused.
_FMT = (">B", ">H", ">I", None, None, None, ">f", ">d", ">B", ">H", ">I", ">Q", ">b", ">h", ">i", ">q",
        None, None, None, None, None, ">B", ">H", ">I", ">H", ">I", ">H", ">I")  # fmt: skip
_SIZE = (
    b"\x01\x02\x04\x00\x00\x00\x04\x08\x01\x02\x04\x08\x01\x02\x04\x08\x00\x00\x00\x00\x00\x01\x02\x04\x02\x04\x02\x04"
)


class _Reader:
    def __init__(self, data):
        self.data = data
        self.mv = memoryview(data)
        self.pos = 0
        self.end = len(data)
        self.depth = 0

    def read(self):
        pos = self.pos
        if pos >= self.end:
            raise CodecError("msgpack: data truncated at offset %d" % pos)
        b = self.data[pos]
        self.pos = pos + 1
        if b < 0x80:
            return b
        if b >= 0xE0:
            return b - 0x100
        if b >= 0xC0:
            return self.r_other(b)
        if b >= 0xA0:
            return self.r_str(b & 0x1F)
        if b >= 0x90:
            return self.r_array(b & 0x0F)
        return self.r_map(b & 0x0F)

    def r_other(self, b):
        # 0xc0 .. 0xdf
        if b == 0xC0:
            return None
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        if b < 0xC4 or not _SIZE[b - 0xC4]:
            if b == 0xC1:
                raise CodecError("msgpack: reserved byte 0xc1 at offset %d" % (self.pos - 1))
            raise CodecError("msgpack: ext type (0x%02x) at offset %d is not supported" % (b, self.pos - 1))
        value = self.r_fixed(_FMT[b - 0xC4], _SIZE[b - 0xC4])
        if b < 0xC7:
            return self.r_bin(value)
        if b < 0xD9:
            return value  # an int or a float
        if b < 0xDC:
            return self.r_str(value)
        if b < 0xDE:
            return self.r_array(value)
        return self.r_map(value)

    def r_fixed(self, fmt, size):
        pos = self.pos
        if pos + size > self.end:
            raise CodecError("msgpack: data truncated at offset %d" % pos)
        self.pos = pos + size
        return struct.unpack_from(fmt, self.data, pos)[0]

    def r_take(self, n, what):
        # The start of n bytes of payload; a length beyond the data left is refused before any allocation.
        pos = self.pos
        if n > self.end - pos:
            raise CodecError("msgpack: %s length %d exceeds the data left" % (what, n))
        self.pos = pos + n
        return pos

    def r_str(self, n):
        pos = self.r_take(n, "str")
        return str(self.mv[pos : pos + n], "utf-8")

    def r_bin(self, n):
        pos = self.r_take(n, "bin")
        return self.data[pos : pos + n]

    def r_array(self, n):
        if self.depth >= MAX_DEPTH:
            raise _too_deep()
        if n > self.end - self.pos:  # every element takes at least one byte
            raise CodecError("msgpack: array length %d exceeds the data left" % n)
        self.depth += 1
        out = [None] * n
        for i in range(n):
            out[i] = self.read()
        self.depth -= 1
        return out

    def r_map(self, n):
        if self.depth >= MAX_DEPTH:
            raise _too_deep()
        if 2 * n > self.end - self.pos:  # every key and value takes at least one byte
            raise CodecError("msgpack: map length %d exceeds the data left" % n)
        self.depth += 1
        out = {}
        for _ in range(n):
            key = self.read()
            out[key] = self.read()
        self.depth -= 1
        return out

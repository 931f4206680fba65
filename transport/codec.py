"""``packb`` / ``unpackb``: the one msgpack entry point for hub, tools and firmware.

On CPython this is the C ``msgpack`` package (``transport.codec_c``); on
MicroPython, which has no msgpack, it is ``transport.purepack``. Both speak the
same subset and fail the same way: every bad input raises
``transport.errors.CodecError`` and nothing else, so callers catch exactly one
class. Refused: types outside nil/bool/int/float/str/bin/array/map, ints
outside -2**63..2**64-1, ext types (timestamps too), nesting deeper than
MAX_DEPTH, truncated data, trailing bytes, invalid UTF-8, unhashable map keys,
lengths larger than the data.

Input size is bounded by the framing layer (MAX_FRAME_SIZE / SERIAL_MAX_FRAME);
both decoders refuse a length header larger than the input before allocating,
so a tiny frame cannot make them build a huge list or string.

``IMPLEMENTATION`` names the backend in use ("msgpack-c" or "purepack").
"""

import sys

from transport.purepack import MAX_DEPTH  # noqa: F401  (re-exported)

if sys.implementation.name == "micropython":
    from transport.purepack import packb, unpackb  # noqa: F401

    IMPLEMENTATION = "purepack"
else:
    try:
        from transport.codec_c import packb, unpackb  # noqa: F401

        IMPLEMENTATION = "msgpack-c"
    except ImportError:  # pragma: no cover - CPython without the C package
        from transport.purepack import packb, unpackb  # noqa: F401

        IMPLEMENTATION = "purepack"

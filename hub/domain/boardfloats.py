"""Floats from a board read the same whether it packed them from single or double precision.

An ESP32 float is single precision: a board configured with lat 52.520008 holds
52.52000808715820 and sends that (widened to float64, as purepack always packs floats); a
CPython station sends 52.520008. The hub reads a float that is exactly a float32 value as the
shortest decimal that float32 rounds to it (what the board's config said, to float32's 6-9
significant digits), so the two read alike. A float64 value that float32 cannot hold is taken
as it is: it came from a double-precision peer. Used for BOOT's lat, lon and max_kw.
"""

import math
import struct


def _round32(x: float) -> float:
    value: float = struct.unpack("<f", struct.pack("<f", x))[0]  # unpack types its items as Any
    return value


def board_float(x: float) -> float:
    """`x` as the board meant it: a float32 value becomes its shortest decimal; anything else (an int,
    as the wire's number type allows) is unchanged."""
    if type(x) is not float or not math.isfinite(x) or abs(x) > 3.4e38:
        return x
    if _round32(x) != x:
        return x  # not a float32 value: a double-precision sender
    for digits in range(6, 10):  # float32 round-trips with at most 9 significant digits
        short = float("%.*g" % (digits, x))
        if _round32(short) == x:
            return short
    return x

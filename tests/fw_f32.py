"""ESP32 number semantics for the firmware tests, on CPython and on the 64-bit MicroPython unix port.

Every ESP32 MicroPython build has single-precision floats; the PyPI unix port and CPython have
doubles, so they cannot show a float32 bug (``1.8e9 + 1.0 == 1.8e9`` on a board). ``F32`` is a
number that rounds the result of every operation to float32 (through ``struct.pack('<f')``), as a
board's float does; ints stay exact ints, as on a board (MicroPython ints are arbitrary precision).

``f32(x)`` is what a board holds for a value a computation produced: an F32 if it is a float, the
int itself if it is an int (under `micropython`, a float rounded to float32: see f32 below). The harness (tests/fw_f32_scenario.py) passes every clock and wall
reading the board code produces through it, so a board module that turns a clock into a float gets
float32 from there on, and one that keeps integers is untouched.

Only MicroPython-safe code here: the same file runs inside `micropython`.
"""

import struct
import sys


def round32(x):
    """The float32 nearest to x, as a (double) float."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _v(x):
    return x.v if type(x) is F32 else x


class F32:
    """A float32: every arithmetic result is rounded to single precision."""

    def __init__(self, v):
        self.v = round32(float(v))

    def __add__(self, o):
        return F32(self.v + _v(o))

    __radd__ = __add__

    def __sub__(self, o):
        return F32(self.v - _v(o))

    def __rsub__(self, o):
        return F32(_v(o) - self.v)

    def __mul__(self, o):
        return F32(self.v * _v(o))

    __rmul__ = __mul__

    def __truediv__(self, o):
        return F32(self.v / _v(o))

    def __rtruediv__(self, o):
        return F32(_v(o) / self.v)

    def __floordiv__(self, o):
        return F32(self.v // _v(o))

    def __rfloordiv__(self, o):
        return F32(_v(o) // self.v)

    def __mod__(self, o):
        return F32(self.v % _v(o))

    def __neg__(self):
        return F32(-self.v)

    def __abs__(self):
        return F32(abs(self.v))

    def __lt__(self, o):
        return self.v < _v(o)

    def __le__(self, o):
        return self.v <= _v(o)

    def __gt__(self, o):
        return self.v > _v(o)

    def __ge__(self, o):
        return self.v >= _v(o)

    def __eq__(self, o):
        return self.v == _v(o)

    def __ne__(self, o):
        return self.v != _v(o)

    def __hash__(self):
        return hash(self.v)

    def __int__(self):
        return int(self.v)

    def __float__(self):
        return self.v

    def __bool__(self):
        return self.v != 0

    def __repr__(self):
        return "F32(%r)" % self.v


# MicroPython tries no reflected comparison for a user class (``1 < F32(2.0)`` is a TypeError there,
# where CPython asks F32.__gt__), so under `micropython` a float reading is rounded to float32 once,
# at the boundary, and the arithmetic after it is double precision: the 128 s steps of an epoch
# and the lost milliseconds of an uptime are reproduced, rounding inside later sums is not.
# CPython (every test run) carries float32 through every operation.
_BOUNDARY_ONLY = sys.implementation.name == "micropython"


def f32(x):
    """A value as a single-precision board holds it: floats become float32, ints stay ints."""
    if type(x) is float or type(x) is F32:
        return round32(_v(x)) if _BOUNDARY_ONLY else F32(_v(x))
    return x


def f32_float(x):
    """A config float as a board stores it: a plain float holding the float32 value (the config
    checks want a real float; the arithmetic on it is the code's business, see the static check)."""
    return round32(x)

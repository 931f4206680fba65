"""Tiny shims so board-side modules run unchanged on CPython and MicroPython."""

try:
    from micropython import const  # noqa: F401  (MicroPython: folded at compile time)
except ImportError:  # CPython

    def const(value):
        return value


class TicksClock:
    """Monotonic seconds from a wrapping millisecond tick counter.

    MicroPython's ``ticks_ms`` wraps (every 2**30 ms, ~12.4 days, on the ESP32): each call adds
    ``diff(now, last)`` to an unbounded count (whole seconds plus the milliseconds left over, so
    it stays a small int), so the clock never wraps. It must be read at least once per half
    period (~6.2 days) for ``ticks_diff`` to be exact; a running loop reads it many times a
    second. ``ticks``/``diff`` are injected so tests can drive a fake counter across the wrap.
    """

    def __init__(self, ticks, diff):
        self._ticks = ticks
        self._diff = diff
        self._last = ticks()
        self._s = 0
        self._ms = 0

    def __call__(self):
        now = self._ticks()
        d = self._diff(now, self._last)
        self._last = now
        if d > 0:
            ms = self._ms + d
            if ms >= 1000:
                self._s += ms // 1000
                ms %= 1000
            self._ms = ms
        return self._s + self._ms / 1000


try:
    from time import ticks_diff as _ticks_diff
    from time import ticks_ms as _ticks_ms

    monotonic = TicksClock(_ticks_ms, _ticks_diff)  # one shared clock: seconds since import

except ImportError:  # CPython
    from time import monotonic  # noqa: F401

try:
    from os import urandom
except ImportError:  # pragma: no cover - very old ports
    import random as _random

    def urandom(n):
        return bytes(_random.getrandbits(8) for _ in range(n))


def is_int(value):
    """True for a real integer: bool is an int subclass on CPython but not on MicroPython."""
    return type(value) is int


def is_number(value):
    t = type(value)
    return t is int or t is float

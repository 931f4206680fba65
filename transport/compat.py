"""Tiny shims so board-side modules run unchanged on CPython and MicroPython."""

from time import time_ns as _time_ns

try:
    from micropython import const  # noqa: F401  (MicroPython: folded at compile time)
except ImportError:  # CPython

    def const(value):
        return value


class TicksClock:
    """Monotonic integer milliseconds from a wrapping millisecond tick counter.

    MicroPython's ``ticks_ms`` wraps (every 2**30 ms, ~12.4 days, on the ESP32): each call adds
    ``diff(now, last)`` to an unbounded integer count, so the clock never wraps and never loses a
    millisecond. It stays an int: an ESP32 float is single precision, where an uptime in seconds
    loses its milliseconds after a few hours. It must be read at least once per half period
    (~6.2 days) for ``ticks_diff`` to be exact; a running loop reads it many times a second.
    ``ticks``/``diff`` are injected so tests can drive a fake counter across the wrap.
    """

    def __init__(self, ticks, diff):
        self._ticks = ticks
        self._diff = diff
        self._last = ticks()
        self._ms = 0

    def __call__(self):
        now = self._ticks()
        d = self._diff(now, self._last)
        self._last = now
        if d > 0:
            self._ms += d
        return self._ms


try:
    from time import ticks_diff as _ticks_diff
    from time import ticks_ms as _ticks_ms

    monotonic_ms = TicksClock(_ticks_ms, _ticks_diff)  # one shared clock: integer ms since import

except ImportError:  # CPython
    from time import monotonic_ns as _monotonic_ns

    def monotonic_ms():
        """Integer monotonic milliseconds, as the board's clock gives them."""
        return _monotonic_ns() // 1000000


def wall_s():
    """UTC epoch seconds as an int (``time.time()`` is a float on the unix port: float32 on a board
    would step 128 s). A board whose port counts from 2000 passes its own wall clock (board.py)."""
    return _time_ns() // 1000000000


try:
    from os import urandom
except ImportError:  # pragma: no cover - very old ports
    import random as _random

    def urandom(n):
        return bytes(_random.getrandbits(8) for _ in range(n))


def is_int(value):
    """True for a real integer: bool is an int subclass on CPython but not on MicroPython."""
    return type(value) is int

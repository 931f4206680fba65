"""Tiny shims so board-side modules run unchanged on CPython and MicroPython."""

try:
    from micropython import const  # noqa: F401  (MicroPython: folded at compile time)
except ImportError:  # CPython

    def const(value):
        return value


try:
    from time import ticks_ms as _ticks_ms  # noqa: F401

    def monotonic():
        # ticks_ms wraps on the board; callers only compare nearby values via elapsed().
        return _ticks_ms() / 1000.0

except ImportError:
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

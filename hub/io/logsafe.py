"""Text from the wire, made safe to log: nothing a peer sends can forge a log line.

`wire_text(s)` escapes control characters (newlines, carriage returns, terminal escapes, the
Unicode line separators) the way repr() does and caps the length. Call sites that put wire data
in a log line use it; `install()` also puts a filter on the log handlers that applies it to every
string or exception argument of every record, so a call site added later cannot forget it.
"""

import logging
import re

MAX_LOGGED = 200  # characters of one wire value kept in a log line
_FILTER_MAX = 1000  # the catch-all filter keeps more: it also sees the hub's own (long) texts


# C0 and C1 controls (newline, CR, ESC, NEL...), DEL and the Unicode line/paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _needs_escape(s):
    return _CONTROL.search(s) is not None


def wire_text(value, limit=MAX_LOGGED):
    """A one-line, length-capped rendering of a value that came from the wire."""
    if isinstance(value, bytes):
        s = repr(value)
    elif isinstance(value, str):
        s = value
    else:
        s = str(value)
    if _needs_escape(s):
        s = s.encode("unicode_escape").decode("ascii")  # \n, \r, \x1b, \u2028 ... as text
    if len(s) > limit:
        s = s[:limit] + "...(%d chars)" % len(s)
    return s


class EscapeFilter(logging.Filter):
    """Escapes every str/exception argument of a record (and an argument-less message)."""

    def filter(self, record):
        args = record.args
        if args:
            if isinstance(args, tuple):
                record.args = tuple(_safe(a) for a in args)
            elif isinstance(args, dict):
                record.args = {k: _safe(v) for k, v in args.items()}
        elif isinstance(record.msg, str) and _needs_escape(record.msg):
            record.msg = wire_text(record.msg, _FILTER_MAX)
        return True


def _safe(a):
    if isinstance(a, (str, BaseException)):
        return wire_text(a, _FILTER_MAX)
    if isinstance(a, (list, tuple, dict)):
        return wire_text(repr(a), _FILTER_MAX)  # repr escapes the strings inside; the cap bounds it
    return a


def install(logger=None):
    """Put the filter on every handler of `logger` (the root logger by default); idempotent."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, EscapeFilter) for f in handler.filters):
            handler.addFilter(EscapeFilter())

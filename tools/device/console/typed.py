"""What the person types, parsed: message literals, kinds by name, start times, numbers."""

import ast
import json

from transport import kinds as K


class UsageError(Exception):
    """A command typed wrong; the text says how it goes."""


def kind_from(value):
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        for k, entry in K.KINDS.items():
            if entry[0] == value.lower():
                return k
    raise UsageError("unknown kind %r" % (value,))


def parse_literal(text):
    """A message typed as JSON or a Python literal (bytes allowed)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise UsageError("not a JSON or Python literal: %s" % exc) from None


def parse_start(text, now):
    """now | +15m | +2h | +90s | HH:MM (UTC, today or tomorrow) | epoch seconds -> epoch seconds."""
    text = text.strip().lower()
    if text == "now":
        return int(now)
    if text.startswith("+") and len(text) > 2 and text[-1] in "smh" and text[1:-1].isdigit():
        return int(now) + int(text[1:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]
    if ":" in text:
        hh, _sep, mm = text.partition(":")
        if hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60:
            day = int(now) - int(now) % 86400
            t = day + int(hh) * 3600 + int(mm) * 60
            return t if t >= int(now) - 60 else t + 86400
    if text.isdigit() and len(text) >= 9:
        return int(text)
    raise UsageError("START is now, +15m, +2h, HH:MM (UTC) or epoch seconds, not %r" % text)


def _int(text, what):
    try:
        return int(text)
    except ValueError:
        raise UsageError("%s must be a number, not %r" % (what, text)) from None

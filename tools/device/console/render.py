"""How frames look on the console: one line each, local time, kind name, seq and fields as name=value."""

import json
import time

from transport import kinds as K
from transport.errors import ERROR_NAMES, ProtocolError
from transport.messages import parse, to_dict


def clock_text(t=None):
    t = time.time() if t is None else t
    return time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % int((t % 1) * 1000)


def value_text(v):
    if isinstance(v, (bytes, bytearray)):
        hx = bytes(v[:8]).hex()
        return "<%d bytes %s%s>" % (len(v), hx, "..." if len(v) > 8 else "")
    if isinstance(v, str):
        return v if v and not any(c.isspace() or c in "\"'=" for c in v) else json.dumps(v)
    if isinstance(v, (dict, list, tuple)):
        try:
            return json.dumps(v, separators=(",", ":"), default=repr)
        except (TypeError, ValueError):
            return repr(v)
    return repr(v)


def message_text(obj):
    """(kind name, 'seq=.. name=value ...') for a decoded message, valid or not."""
    try:
        kind, seq, fields = parse(obj)
    except ProtocolError as exc:
        if isinstance(obj, (list, tuple)) and len(obj) >= 2 and isinstance(obj[0], int):
            shown = " ".join(["seq=%s" % value_text(obj[1])] + [value_text(f) for f in obj[2:]])
            return K.kind_name(obj[0]), "%s  (invalid: %s)" % (shown, exc)
        return "?", "%s  (invalid: %s)" % (value_text(obj), exc)
    parts = ["seq=%d" % seq]
    for name, value in to_dict(kind, fields).items():
        parts.append("%s=%s" % (name, value_text(value)))
    if len(fields) > len(K.KINDS[kind][2]):
        parts.append("+%s" % value_text(list(fields[len(K.KINDS[kind][2]) :])))
    if kind == K.ERROR and fields and fields[0] in ERROR_NAMES:
        parts[1] = "code=%d(%s)" % (fields[0], ERROR_NAMES[fields[0]])
    return K.kind_name(kind), " ".join(parts)

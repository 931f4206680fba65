"""CPython-side views of the kind table in ``transport.kinds``, and helpers only CPython needs.

The tables themselves are compact strings, read per entry when needed, so that the board
builds almost nothing at import. Tools, tests and the hub want richer shapes; they are built
here, on first use, through the table's module ``__getattr__`` (``kinds.KINDS`` ...), or
called directly (``accepted_types`` by ``messages.parse``, ``to_dict`` ...).

This module is not part of the board bundle: everything named in a module loaded on the
board costs heap there (one interned string per name), whether it runs or not.
"""

from transport import kinds

_WHO = {"s": "station", "v": "vehicle", "o": "operator", "h": "hub"}


def direction_name(d):
    """``"any"``, ``"station>hub"`` ... for a direction code of the kind table."""
    return "any" if d == "*" else _WHO[d[0]] + ">" + _WHO[d[2]]


class _Any:
    """Stands for the accepted types of an "any" field: every type but nil's (``a``), or every
    type (``A``)."""

    def __init__(self, nil):
        self.nil = nil

    def __contains__(self, t):
        return self.nil or t is not type(None)


_ACCEPTED = {"i": (int,), "n": (int, float), "s": (str,), "b": (bytes,), "t": (bool,), "l": (list, tuple), "m": (dict,)}


def accepted_types(types):
    """A kind's types string compiled for CPython: per field, what ``type(value)`` must be in."""
    out = []
    for code in types:
        acc = _ACCEPTED.get(code.lower())
        if acc is None:
            acc = _Any(code.isupper())
        elif code.isupper():
            acc = acc + (type(None),)
        out.append(acc)
    return tuple(out)


def to_dict(kind, fields):
    """Field names to values, for logs, the console and JSON output."""
    s = kinds.spec(kind)
    if s is None:
        return {"fields": list(fields)}
    out = {}
    names = s[3]
    for i in range(len(names)):
        out[names[i]] = fields[i] if i < len(fields) else None
    return out


def field_names(kind):
    s = kinds.spec(kind)
    return s[3] if s else ()


def kinds_view(name):
    """The value of ``kinds.<name>`` for the long-form names; AttributeError for any other."""
    if name == "KINDS":
        # kind -> (name, direction, ((field, type), ...)) with "station>hub", "int?" ...
        out = {}
        for k in kinds.kinds():
            s = kinds.spec(k)
            fields = tuple((s[3][i], kinds.type_name(s[2][i])) for i in range(len(s[2])))
            out[k] = (s[0], direction_name(s[1]), fields)
        return out
    if name == "TYPE_NAMES":
        return {c: kinds.type_name(c) for c in "insbtlma"}
    if name == "CONNECTOR_STATUSES":
        # OCPP 1.6 meanings; firmware/connector.py holds the same names. SuspendedEVSE (the charger,
        # not the car, paused the energy) comes only from OCPP chargers (hub/ocpp); our boards never send it.
        return (
            "Available",
            "Reserved",
            "Preparing",
            "Charging",
            "SuspendedEV",
            "SuspendedEVSE",
            "Finishing",
            "Unavailable",
            "Faulted",
        )
    if name == "STATION_STATUSES":
        # What the hub shows to vehicles and operators.
        return ("Available", "Occupied", "Reserved", "Offline", "Unavailable", "Faulted")
    raise AttributeError("module 'transport.kinds' has no attribute %r" % (name,))

"""Build and validate messages against the kind table.

``make`` builds a message for sending; ``parse`` takes whatever the codec
decoded and returns ``(kind, seq, fields)`` or raises ProtocolError with a code
a peer can act on. Nothing here raises anything but ProtocolError. ``to_dict`` and
``field_names`` (for logs, the console and JSON output) exist on CPython only.

Two ways to check the field types, with the same result (a test holds them to
it): on CPython each kind's types are compiled once into a tuple of accepted
Python types per field (the hub parses every message); on the board the type
characters of the table are read one by one, so nothing is kept per kind.
"""

import sys

from transport import kinds as K
from transport.compat import is_int
from transport.errors import E_BAD_FIELD, E_MALFORMED, E_UNKNOWN_KIND, ProtocolError

MAX_SEQ = 0xFFFFFFFF

# CPython: kind -> per field, what the value's type must be in (see tableviews.accepted_types).
_ACCEPT = None if sys.implementation.name == "micropython" else {}
if _ACCEPT is not None:
    from transport.tableviews import accepted_types, field_names, to_dict  # noqa: F401  (to_dict, field_names: CPython only)


def _type_ok(code, value):
    """Whether `value` fits a type character of the table (upper case: nil allowed)."""
    if value is None:
        return code < "a"  # upper case
    t = type(value)
    k = "insbtlmaINSBTLMA".find(code) & 7
    if k == 0:
        return t is int
    if k == 1:
        return t is int or t is float
    if k == 2:
        return t is str
    if k == 3:
        return t is bytes
    if k == 4:
        return t is bool
    if k == 5:
        return t is list or t is tuple
    if k == 6:
        return t is dict
    return True  # a: any


def _refuse(kind, seq, fields, i):
    name, _d, types, names = K.spec(kind)
    if i >= len(fields):
        raise ProtocolError(E_BAD_FIELD, "%s: missing field %r" % (name, names[i]), seq)
    raise ProtocolError(
        E_BAD_FIELD,
        "%s: field %r must be %s, got %s"
        % (name, names[i], K.type_name(types[i]).replace("?", " or nil"), type(fields[i]).__name__),
        seq,
    )


def _missing(kind, seq, fields, n):
    """Fields left out at the end are read as nil if the table allows nil there (how a field is
    appended without refusing older peers); a missing field that may not be nil is refused."""
    types = K.spec(kind)[2]
    for i in range(len(fields), n):
        if types[i] >= "a":  # lower case: nil not allowed
            _refuse(kind, seq, fields, i)


def _check_fields(kind, seq, fields):
    """Refuses an unknown kind or bad fields; returns the number of fields the table knows."""
    if _ACCEPT is not None:
        acc = _ACCEPT.get(kind)
        if acc is None:
            s = K.spec(kind)
            if s is None:
                raise ProtocolError(E_UNKNOWN_KIND, "unknown kind %r" % (kind,), seq)
            acc = _ACCEPT[kind] = accepted_types(s[2])
        n = len(acc)
        if len(fields) < n:
            _missing(kind, seq, fields, n)
        for a, v in zip(acc, fields):
            if type(v) not in a:
                for i in range(min(n, len(fields))):
                    if type(fields[i]) not in acc[i]:
                        _refuse(kind, seq, fields, i)
        return n
    s = K.spec(kind)
    if s is None:
        raise ProtocolError(E_UNKNOWN_KIND, "unknown kind %r" % (kind,), seq)
    types = s[2]
    n = len(types)
    if len(fields) < n:
        _missing(kind, seq, fields, n)
    for i in range(min(n, len(fields))):
        if not _type_ok(types[i], fields[i]):
            _refuse(kind, seq, fields, i)
    return n


def make(kind, seq, *fields):
    """A message ready for the codec; raises ProtocolError if it breaks the table."""
    if not is_int(seq) or seq < 0 or seq > MAX_SEQ:
        raise ProtocolError(E_BAD_FIELD, "seq must be an int in 0..2**32-1", 0)
    _check_fields(kind, seq, fields)
    return [kind, seq] + list(fields)


def parse(obj):
    """Validate a decoded message; returns (kind, seq, fields)."""
    if type(obj) is not list and type(obj) is not tuple:
        raise ProtocolError(E_MALFORMED, "a message is an array [kind, seq, ...]", 0)
    if len(obj) < 2:
        raise ProtocolError(E_MALFORMED, "a message needs at least kind and seq", 0)
    kind = obj[0]
    seq = obj[1]
    if not is_int(seq) or seq < 0 or seq > MAX_SEQ:
        raise ProtocolError(E_MALFORMED, "seq must be an int in 0..2**32-1", 0)
    if not is_int(kind):
        raise ProtocolError(E_MALFORMED, "kind must be an int", seq)
    fields = obj[2:]
    n = _check_fields(kind, seq, fields)
    if len(fields) > n:
        fields = fields[:n]  # a newer peer's appended fields: ignored, so handlers see the known shape
    elif len(fields) < n:
        fields = list(fields) + [None] * (n - len(fields))  # an older peer's: nil (checked above)
    return kind, seq, fields

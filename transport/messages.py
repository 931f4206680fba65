"""Build and validate messages against the kind table.

``make`` builds a message for sending; ``parse`` takes whatever the codec
decoded and returns ``(kind, seq, fields)`` or raises ProtocolError with a code
a peer can act on. Nothing here raises anything but ProtocolError.
"""

from transport import kinds as K
from transport.compat import is_int, is_number
from transport.errors import E_BAD_FIELD, E_MALFORMED, E_UNKNOWN_KIND, ProtocolError

MAX_SEQ = 0xFFFFFFFF


def _type_ok(t, value):
    if value is None:
        return bool(t & K.OPT)
    t = t & 0x0F
    if t == K.T_INT:
        return is_int(value)
    if t == K.T_NUM:
        return is_number(value)
    if t == K.T_STR:
        return type(value) is str
    if t == K.T_BIN:
        return type(value) is bytes
    if t == K.T_BOOL:
        return type(value) is bool
    if t == K.T_LIST:
        return type(value) is list or type(value) is tuple
    if t == K.T_MAP:
        return type(value) is dict
    return t == K.T_ANY


def _check_fields(kind, seq, fields):
    entry = K.KINDS.get(kind)
    if entry is None:
        raise ProtocolError(E_UNKNOWN_KIND, "unknown kind %r" % (kind,), seq)
    name, _direction, spec = entry
    if len(fields) < len(spec):
        missing = spec[len(fields)][0]
        raise ProtocolError(E_BAD_FIELD, "%s: missing field %r" % (name, missing), seq)
    for i in range(len(spec)):
        fname, ftype = spec[i]
        if not _type_ok(ftype, fields[i]):
            raise ProtocolError(
                E_BAD_FIELD,
                "%s: field %r must be %s%s, got %s"
                % (
                    name,
                    fname,
                    K.TYPE_NAMES.get(ftype & 0x0F, "?"),
                    " or nil" if ftype & K.OPT else "",
                    type(fields[i]).__name__,
                ),
                seq,
            )


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
    _check_fields(kind, seq, fields)
    spec_len = len(K.KINDS[kind][2])
    if len(fields) > spec_len:
        fields = fields[:spec_len]  # a newer peer's appended fields: ignored, so handlers see the known shape
    return kind, seq, fields


def to_dict(kind, fields):
    """Field names to values, for logs, the console and JSON output."""
    entry = K.KINDS.get(kind)
    if entry is None:
        return {"fields": list(fields)}
    out = {}
    spec = entry[2]
    for i in range(len(spec)):
        out[spec[i][0]] = fields[i] if i < len(fields) else None
    return out


def field_names(kind):
    entry = K.KINDS.get(kind)
    return tuple(f[0] for f in entry[2]) if entry else ()

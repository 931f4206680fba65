"""The small exception hierarchy of the wire layer, and the error codes sent in ERROR messages."""

import sys

from transport.compat import const

# Error codes carried by the ERROR message ([KIND_ERROR, seq, code, text]).
E_MALFORMED = const(1)  # frame or msgpack could not be decoded / wrong shape
E_UNKNOWN_KIND = const(2)  # kind not in the table
E_BAD_FIELD = const(3)  # a field has the wrong type or value
E_NOT_AUTHENTICATED = const(4)  # a message before the handshake completed
E_AUTH_FAILED = const(5)  # unknown id, wrong key, or replayed proof
E_UNSUPPORTED_VERSION = const(6)
E_NOT_FOUND = const(7)  # unknown station, reservation, session
E_CONFLICT = const(8)  # reservation window taken
E_FORBIDDEN = const(9)  # not yours (another vehicle's reservation, another station's id)
E_RATE_LIMITED = const(10)
E_TOO_LARGE = const(11)  # frame bigger than MAX_FRAME_SIZE
E_INVALID_STATE = const(12)  # e.g. start on a Faulted connector
E_TIMEOUT = const(13)
E_INTERNAL = const(14)  # a bug on the hub; the link stays up
E_OVERLOADED = const(15)  # outbox full / too many links

# The names of the codes above in lower case, in code order (and ERROR_NAMES on CPython).
_NAMES = (
    "malformed unknown_kind bad_field not_authenticated auth_failed unsupported_version not_found conflict"
    " forbidden rate_limited too_large invalid_state timeout internal overloaded"
)


def error_name(code):
    """``"bad_field"`` for E_BAD_FIELD ...; None for a code outside the table."""
    names = _NAMES.split(" ")
    return names[code - 1] if type(code) is int and 0 < code <= len(names) else None


if sys.implementation.name != "micropython":  # tools and the hub; the board has no use for it
    ERROR_NAMES = {i + 1: name for i, name in enumerate(_NAMES.split(" "))}  # code -> name


class EvhubError(Exception):
    """Base of every refusal evhub raises, on the board and on the hub: `code` is one of the E_* codes
    above (what an ERROR message carries back) and `text` the reason a person reads."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
        self.text = text


class WireError(EvhubError):
    """Base of every error the wire layer raises: bytes or messages that break the protocol."""

    def __init__(self, text, code=E_MALFORMED):
        EvhubError.__init__(self, code, text)


class CodecError(WireError):
    """Bytes that are not the msgpack subset we speak (truncated, trailing, ext, too deep)."""


class FrameError(WireError):
    """A frame that is too large, corrupt or truncated."""


class ProtocolError(WireError):
    """A decoded message that breaks the protocol; `code` is one of the E_* codes."""

    def __init__(self, code, text, seq=0):
        EvhubError.__init__(self, code, text)
        self.seq = seq

    def __str__(self):
        return "%s: %s" % (error_name(self.code) or self.code, self.text)

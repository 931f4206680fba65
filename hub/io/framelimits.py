"""How large a frame a peer may send the hub, per kind.

Everything a station, vehicle or operator sends is small: ids, numbers and a short text. Only
the hub's own replies (NEAREST_RESULT, RESERVATIONS, STATIONS) grow with the network, and those
go the other way. So the hub reads at most `max_in_frame` bytes per frame (the framer refuses a
longer announced length and closes the link before buffering it), and each kind has its own,
smaller limit below that: a frame over its kind's limit is answered `too_large` and counted as a
bad message. The kind is peeked from the first two bytes (msgpack array header + kind), so an
oversized frame is never decoded.
"""

from transport import kinds as K
from transport.framing import StreamFramer, encode_stream

SMALL = 512  # fixed fields: numbers, ids of <= 64 characters
TEXT = 2048  # kinds that carry a free text or a small map (firmware, info, reason, filters, error text)
UNKNOWN = 4096  # a kind not in the table (refused later anyway) or a payload we cannot peek

IN_FRAME_LIMITS = {
    K.HELLO: SMALL,
    K.CHALLENGE: SMALL,
    K.AUTH: SMALL,
    K.WELCOME: SMALL,
    K.PING: SMALL,
    K.PONG: SMALL,
    K.ERROR: TEXT,
    K.ACK: TEXT,
    K.BOOT: TEXT,
    K.STATUS: TEXT,
    K.METER: SMALL,
    K.SESSION_START: SMALL,
    K.SESSION_END: TEXT,
    K.POSITION: SMALL,
    K.NEAREST: TEXT,
    K.RESERVE: SMALL,
    K.CANCEL: SMALL,
    K.LIST_RESERVATIONS: SMALL,
    K.START_CHARGE: TEXT,
    K.STOP_CHARGE: SMALL,
    K.LIST_SESSIONS: SMALL,
    K.RESERVATION_HISTORY: SMALL,
    K.STATIONS_LIST: SMALL,
    K.HUB_STATS: SMALL,
}


def peek_kind(payload):
    """The kind of a packed message from its first two bytes (fixarray header, positive fixint), or None."""
    if len(payload) >= 2 and 0x90 <= payload[0] <= 0x9F and payload[1] < 0x80:
        return payload[1]
    return None


def peek_seq(payload):
    """The seq (third byte on: a msgpack unsigned int) of a packed message, or 0, so the refusal
    can answer the request it refuses."""
    if len(payload) < 3:
        return 0
    b = payload[2]
    if b < 0x80:
        return b
    width = {0xCC: 1, 0xCD: 2, 0xCE: 4}.get(b)
    if width is None or len(payload) < 3 + width:
        return 0
    return int.from_bytes(payload[3 : 3 + width], "big")


def over_limit(payload):
    """(kind, seq, limit) when `payload` is larger than its kind allows, else None."""
    if len(payload) <= SMALL:
        return None  # no kind is limited below SMALL: the common case costs one comparison
    kind = peek_kind(payload)
    limit = IN_FRAME_LIMITS.get(kind, UNKNOWN)
    if len(payload) > limit:
        return kind, peek_seq(payload), limit
    return None


class HubStreamFramer(StreamFramer):
    """Reads frames of at most `max_in` bytes (`max_frame`, as the framer checks it) but writes
    up to `max_out`: the hub's replies may be large, what it reads never is."""

    def __init__(self, max_out, max_in):
        StreamFramer.__init__(self, min(max_in, max_out))
        self.max_out = max_out

    def encode(self, payload):
        if self.seal is not None:  # the session's MAC, as StreamFramer.encode adds it
            payload = self.seal.seal(payload)
        return encode_stream(payload, self.max_out)

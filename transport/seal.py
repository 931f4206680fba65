"""Per-frame MAC after the handshake, sans-I/O: ``seal(payload) -> bytes``, ``open(bytes) -> payload``.

A sealed frame's payload is::

    0xC1 | seq (4 bytes, big-endian) | msgpack payload | tag (16 bytes)
    tag = HMAC-SHA256(direction key, seq | payload)[:16]

0xC1 is the one byte msgpack never uses, so a sealed frame cannot be mistaken for a plain
message. Each direction has its own key (derived at the handshake, see transport.session), so a
frame reflected back at its sender fails. ``seq`` counts the sender's sealed frames from 1: on
TCP (``strict``) the receiver takes exactly last + 1, so an injected, replayed, reordered or
dropped frame is refused; on a serial line, where a frame lost to CRC is normal, it takes any
seq strictly greater than the last, so replay and reordering are still refused but a lost frame
costs only itself. The tag is truncated to 16 bytes (128 bits: a forger has one try per frame
and the link drops on the first miss over TCP) to keep serial frames short.

The framers hold a Seal (``framer.seal``); it passes frames through unchanged until the session
calls ``start`` with the keys. A few plain frames are still let through after that, because the
handshake's last steps cross the switch: ``plain_out`` outgoing frames (the client's AUTH),
an incoming ERROR before the first sealed frame (the hub refusing AUTH), and on serial a HELLO
(a station that restarted; the hub starts a new session) and an ERROR at any time (a hub that
restarted refuses the station's sealed frames with E_NOT_AUTHENTICATED and the station says
hello again). The most a forger on a serial wire gains from that is a new handshake (which
it cannot complete), never an accepted request.

MicroPython-safe: hashlib.sha256 only (the board has no hmac module); on CPython the C hmac
gives the same bytes, faster.
"""

import hashlib
import struct
import sys

from transport.compat import const
from transport.errors import FrameError

TAG_SIZE = const(16)
OVERHEAD = const(21)  # marker + seq + tag
_MARK = const(0xC1)
_MAX_SEQ = const(0xFFFFFFFF)
_BLOCK = const(64)

if sys.implementation.name != "micropython":
    import hmac as _hmac

    def _keyed(key):
        return key

    def _mac(k, data):
        return _hmac.digest(k, data, "sha256")[:TAG_SIZE]

else:

    def _keyed(key):
        # The padded inner and outer keys, once per session (the board's HMAC is two sha256 runs).
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key + b"\x00" * (_BLOCK - len(key))
        return (bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key))

    def _mac(k, data):
        inner = hashlib.sha256(k[0])
        inner.update(data)
        outer = hashlib.sha256(k[1])
        outer.update(inner.digest())
        return outer.digest()[:TAG_SIZE]


def _equal(a, b):
    diff = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        diff |= a[i] ^ b[i]
    return diff == 0


class Seal:
    active = False
    plain_out = 0
    tx = 0  # seq of the last frame sealed
    rx = 0  # seq of the last frame opened
    refused = 0  # frames refused (serial: dropped; TCP: the caller drops the link)

    def start(self, tx_key, rx_key, plain_out=0):
        self._tx_key = _keyed(tx_key)
        self._rx_key = _keyed(rx_key)
        self.plain_out = plain_out
        self.active = True

    def seal(self, payload):
        if not self.active:
            return payload
        if self.plain_out:
            self.plain_out -= 1
            return payload
        if self.tx >= _MAX_SEQ:
            raise FrameError("sealed sequence exhausted: reconnect")
        self.tx += 1
        head = struct.pack(">BI", _MARK, self.tx)
        return head + payload + _mac(self._tx_key, head[1:] + payload)

    def open(self, frame, strict=True):
        """The payload of `frame`, or FrameError (strict) / None (serial: drop this frame)."""
        if not self.active:
            return frame
        if frame[0] != _MARK:
            head = bytes(frame[:2])
            # The hub's plain ERROR refusing AUTH, before anything sealed arrived; on serial a
            # HELLO (the peer restarted: the session starts over).
            if (head == b"\x94\x07" and (self.rx == 0 or not strict)) or (not strict and head == b"\x96\x01"):
                return frame
            return self._refuse(strict, "unsealed frame on an authenticated link")
        n = len(frame)
        if n < OVERHEAD + 1:
            return self._refuse(strict, "sealed frame too short")
        seq = struct.unpack_from(">I", frame, 1)[0]
        mv = memoryview(frame)
        if not _equal(_mac(self._rx_key, mv[1 : n - TAG_SIZE]), mv[n - TAG_SIZE :]):
            return self._refuse(strict, "frame MAC does not verify")
        if seq != self.rx + 1 if strict else seq <= self.rx:
            return self._refuse(strict, "frame seq %d after %d (replayed, reordered or lost)" % (seq, self.rx))
        self.rx = seq
        return bytes(mv[5 : n - TAG_SIZE])

    def _refuse(self, strict, text):
        self.refused += 1
        if strict:
            raise FrameError(text)
        return None

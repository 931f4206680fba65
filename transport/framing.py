"""Framing, sans-I/O: feed bytes in, get whole payloads out; encode payloads to bytes.

Two framings, both with a named maximum payload size and a bounded buffer:

StreamFramer (TCP): ``[4-byte big-endian length][payload]``. A length above
``max_frame`` raises FrameError as soon as its 4 header bytes arrive: a byte
stream cannot resync after that, so the caller closes the link (and may send
E_TOO_LARGE first). A zero length is also a FrameError: every message is at
least one msgpack byte, so a peer sending empty frames is not speaking our
protocol. ``encode`` refuses empty and oversize payloads the same way. Bytes
held between calls never exceed ``max_frame + 4`` (one unfinished frame).

SerialFramer (UART): ``COBS(payload + crc32(payload) as 4 bytes little-endian) + b"\\x00"``.
The 0x00 delimiter lets the receiver resync after any damage; the CRC-32
(``binascii.crc32``, on both runtimes) catches what COBS cannot. Damaged
frames are dropped and counted, never raised: a corrupt byte costs one frame.
The receive buffer is one bytearray, grown in place as frames need it (from
256 bytes, doubling) up to ``encoded_size(max_frame)`` and never shrunk; a
longer run is discarded up to the next 0x00 without growing memory. Growing
rather than preallocating the maximum: a station's frames are ~100 bytes, and a
4 KB block is hard to find in a small, fragmented heap (a board's 64 KB). If
the heap cannot give the room a frame needs, that frame is dropped as oversize.

Counters (SerialFramer attributes, for ``evhub console`` and link stats):

- ``frames_ok``     payloads delivered (COBS and CRC good).
- ``crc_errors``    frames that decoded as COBS but whose CRC-32 did not match
                    (line noise, a lost byte inside the frame, two frames merged).
- ``decode_errors`` frames that are not valid COBS (a code byte pointing past the
                    end) or are too short to hold a payload byte and a CRC.
- ``oversize``      frames discarded because they exceed the buffer (or, once
                    decoded, ``max_frame``).
- ``resyncs``       times a good frame arrived after one or more dropped frames,
                    i.e. the link lost sync and found it again.

Empty frames (0x00 0x00 ...) are ignored without counting: a sender may emit a
leading 0x00 to flush line noise at the receiver.
"""

import binascii
import hashlib
import struct
import sys

from transport.compat import const
from transport.errors import FrameError

MAX_FRAME_SIZE = const(1 << 20)  # largest payload on a TCP link
SERIAL_MAX_FRAME = const(4096)  # largest payload on a serial link
_STREAM_HEADER = const(4)
_CRC_SIZE = const(4)
_SERIAL_FIRST = const(256)  # the serial receive buffer's first size


# --- TCP: length prefix ----------------------------------------------------------


def encode_stream(payload, max_frame=MAX_FRAME_SIZE):
    """``payload`` with its 4-byte big-endian length prefix; FrameError if empty or too large."""
    n = len(payload)
    if n == 0:
        raise FrameError("empty frame: a message is at least one byte")
    if n > max_frame:
        raise FrameError("frame of %d bytes exceeds the %d-byte limit" % (n, max_frame))
    return struct.pack(">I", n) + bytes(payload)


class StreamFramer:
    """Incremental decoder (and encoder) of length-prefixed frames."""

    seal = None  # a Seal (below) once a session is attached: MACs every frame after the handshake

    def __init__(self, max_frame=MAX_FRAME_SIZE):
        self.max_frame = max_frame
        self._buf = bytearray()  # bytes of the one unfinished frame, header included
        self._want = -1  # payload length of the unfinished frame once its header is known

    def encode(self, payload):
        if self.seal is not None:
            payload = self.seal.seal(payload)
        return encode_stream(payload, self.max_frame)

    def buffered(self):
        """Bytes held for the unfinished frame (never more than max_frame + 4)."""
        return len(self._buf)

    def _length(self, data, pos):
        n = struct.unpack_from(">I", data, pos)[0]
        if n > self.max_frame:
            raise FrameError("peer announced a %d-byte frame; the limit is %d" % (n, self.max_frame))
        if n == 0:
            raise FrameError("peer sent an empty frame")
        return n

    def feed(self, data):
        """Every payload completed by ``data`` (a list, maybe empty); FrameError on a bad length."""
        out = []
        mv = memoryview(data)
        end = len(mv)
        pos = 0
        buf = self._buf
        if buf:
            # Finish the unfinished frame first, copying only the bytes it needs.
            have = len(buf)
            if have < _STREAM_HEADER:
                take = min(_STREAM_HEADER - have, end)
                buf += mv[:take]
                pos = take
                if len(buf) < _STREAM_HEADER:
                    return out
                self._want = self._length(buf, 0)
            total = _STREAM_HEADER + self._want
            take = min(total - len(buf), end - pos)
            buf += mv[pos : pos + take]
            pos += take
            if len(buf) < total:
                return out
            out.append(bytes(memoryview(buf)[_STREAM_HEADER:]))
            self._buf = bytearray()
            self._want = -1
        # Whole frames straight out of ``data``: an offset, no per-frame copy of the rest.
        while end - pos >= _STREAM_HEADER:
            n = self._length(data, pos)
            stop = pos + _STREAM_HEADER + n
            if stop > end:
                self._want = n
                break
            out.append(bytes(mv[pos + _STREAM_HEADER : stop]))
            pos = stop
        if pos < end:
            self._buf = bytearray(mv[pos:])
        seal = self.seal
        if seal is not None and seal.keys is not None and out:
            out = [seal.open(p) for p in out]  # FrameError on a bad MAC or seq: the link is dropped
        return out


# --- serial: COBS + CRC-32 + 0x00 ----------------------------------------------------


def encoded_size(max_frame):
    """The longest encoded frame (without its delimiter) for a payload of ``max_frame`` bytes."""
    n = max_frame + _CRC_SIZE
    return n + n // 254 + 1


def cobs_encode(data):
    """COBS-encode ``data`` (the result holds no 0x00 byte)."""
    out = bytearray()
    n = len(data)
    start = 0
    while True:
        zero = data.find(b"\x00", start)
        stop = n if zero < 0 else zero
        while stop - start >= 254:
            out.append(0xFF)
            out += data[start : start + 254]
            start += 254
        out.append(stop - start + 1)
        out += data[start:stop]
        if zero < 0:
            return out
        start = zero + 1


def cobs_decode_into(buf, n):
    """Decode the COBS bytes ``buf[:n]`` in place; the decoded length, or -1 if malformed."""
    mv = memoryview(buf)
    r = 0  # read index: the code byte of the current block
    w = 0  # write index, always behind r
    while r < n:
        code = buf[r]
        if code == 0 or r + code > n:
            return -1
        if code > 1:
            mv[w : w + code - 1] = mv[r + 1 : r + code]  # moves left; overlap-safe (memmove)
            w += code - 1
        r += code
        if code < 0xFF and r < n:
            buf[w] = 0
            w += 1
    return w


def encode_serial(payload, max_frame=SERIAL_MAX_FRAME):
    """One serial frame: COBS(payload + crc32 LE) + 0x00; FrameError if empty or too large."""
    n = len(payload)
    if n == 0:
        raise FrameError("empty frame: a message is at least one byte")
    if n > max_frame:
        raise FrameError("frame of %d bytes exceeds the %d-byte limit" % (n, max_frame))
    body = bytearray(payload)
    body += struct.pack("<I", binascii.crc32(payload) & 0xFFFFFFFF)
    out = cobs_encode(body)
    out.append(0)
    return bytes(out)


class SerialFramer:
    """Incremental decoder (and encoder) of COBS + CRC-32 frames delimited by 0x00."""

    seal = None  # as StreamFramer.seal; a frame failing its MAC or seq is dropped and counted in seal.refused

    def __init__(self, max_frame=SERIAL_MAX_FRAME):
        self.max_frame = max_frame
        self._cap = encoded_size(max_frame)
        self._buf = bytearray(self._cap if self._cap < _SERIAL_FIRST else _SERIAL_FIRST)  # frames are assembled here
        self._len = 0  # bytes of the unfinished frame in _buf
        self._skipping = False  # discarding an oversize frame up to the next 0x00
        self._lost = False  # a frame was dropped since the last good one
        self.frames_ok = 0
        self.crc_errors = 0
        self.decode_errors = 0
        self.oversize = 0
        self.resyncs = 0

    def encode(self, payload):
        if self.seal is not None:
            payload = self.seal.seal(payload)
        return encode_serial(payload, self.max_frame)

    def buffered(self):
        """Bytes held for the unfinished frame (never more than encoded_size(max_frame))."""
        return self._len

    if sys.implementation.name != "micropython":  # evhub console and link stats; the board reads the attributes

        def stats(self):
            return {
                "frames_ok": self.frames_ok,
                "crc_errors": self.crc_errors,
                "decode_errors": self.decode_errors,
                "oversize": self.oversize,
                "resyncs": self.resyncs,
            }

    def feed(self, data):
        """Every good payload completed by ``data`` (a list, maybe empty). Never raises on bad input."""
        if type(data) is memoryview:
            data = bytes(data)  # .find() is needed below
        out = []
        mv = memoryview(data)
        end = len(mv)
        pos = 0
        while pos < end:
            zero = data.find(b"\x00", pos)
            stop = end if zero < 0 else zero
            if not self._skipping and stop > pos:
                n = stop - pos
                if self._len + n > len(self._buf) and not self._room(self._len + n):
                    self._skipping = True
                    self._len = 0
                else:
                    memoryview(self._buf)[self._len : self._len + n] = mv[pos:stop]
                    self._len += n
            if zero < 0:
                break
            pos = zero + 1
            if self._skipping:
                self._skipping = False
                self._drop_oversize()
            elif self._len:
                self._frame(out)
        seal = self.seal
        if seal is not None and seal.keys is not None and out:
            out = [p for p in [seal.open(p, False) for p in out] if p is not None]
        return out

    def _room(self, need):
        """Grows the buffer in place toward `need` bytes (doubling, at most _cap); whether they fit."""
        size = len(self._buf)
        cap = self._cap
        grow = size if size < cap - size else cap - size
        if grow < need - size and need <= cap:
            grow = need - size
        if grow > 0:
            try:
                self._buf.extend(bytes(grow))
            except MemoryError:  # a fragmented heap: this frame is lost, the link is not
                return False
        return need <= len(self._buf)

    def _drop_oversize(self):
        self.oversize += 1
        self._lost = True

    def _frame(self, out):
        size = cobs_decode_into(self._buf, self._len)
        self._len = 0
        if size < _CRC_SIZE + 1:
            self.decode_errors += 1
            self._lost = True
            return
        size -= _CRC_SIZE
        if size > self.max_frame:
            self._drop_oversize()
            return
        mv = memoryview(self._buf)[:size]
        if binascii.crc32(mv) & 0xFFFFFFFF != struct.unpack_from("<I", self._buf, size)[0]:
            self.crc_errors += 1
            self._lost = True
            return
        out.append(bytes(mv))
        self.frames_ok += 1
        if self._lost:
            self._lost = False
            self.resyncs += 1


# --- the seal: a MAC on every frame after the handshake ---------------------------------------
#
# Per-frame MAC after the handshake, sans-I/O: ``seal(payload) -> bytes``, ``open(bytes) -> payload``.
#
# A sealed frame's payload is::
#
#     0xC1 | seq (4 bytes, big-endian) | msgpack payload | tag (16 bytes)
#     tag = HMAC-SHA256(direction key, seq | payload)[:16]
#
# 0xC1 is the one byte msgpack never uses, so a sealed frame cannot be mistaken for a plain
# message. Each direction has its own key (derived at the handshake, see transport.session), so a
# frame reflected back at its sender fails. ``seq`` counts the sender's sealed frames from 1: on
# TCP the receiver takes exactly last + 1, so an injected, replayed, reordered or
# dropped frame is refused; on a serial line, where a frame lost to CRC is normal, it takes any
# seq strictly greater than the last, so replay and reordering are still refused but a lost frame
# costs only itself. The tag is truncated to 16 bytes (128 bits: a forger has one try per frame
# and the link drops on the first miss over TCP) to keep serial frames short.
#
# The framers hold a Seal (``framer.seal``); it passes frames through unchanged until the session
# calls ``start`` with the keys. A few plain frames are still let through after that, because the
# handshake's last steps cross the switch: one outgoing frame (the client's AUTH),
# an incoming ERROR before the first sealed frame (the hub refusing AUTH), and on serial a HELLO
# (a station that restarted; the hub starts a new session) and an ERROR at any time (a hub that
# restarted refuses the station's sealed frames with E_NOT_AUTHENTICATED and the station says
# hello again). The most a forger on a serial wire gains from that is a new handshake (which
# it cannot complete), never an accepted request.
#
# MicroPython-safe: hashlib.sha256 only (the board has no hmac module); on CPython the C hmac
# gives the same bytes, faster. Written for few names: on the board every new identifier and
# string is a qstr, and the import set sits just under a qstr pool doubling (~8 KB of heap).

_TAG = const(16)
_OVERHEAD = const(21)  # marker + seq + tag
_MARK = const(0xC1)  # b"\xc1" below
SEALED_MARK = b"\xc1"  # the first byte of a sealed frame's payload (tools show such frames as sealed)


class Seal:
    keys = None  # (tx, rx) once started
    tx = 0  # seq of the last frame sealed; below 0: that many frames still go out plain
    rx = 0  # seq of the last frame opened
    hub_proof = None  # a client's: the proof the hub's WELCOME must carry

    def start(self, tx, rx):
        self.keys = (self._p(tx), self._p(rx))  # the client then sets tx = -1: its AUTH goes out plain

    # One helper, a method: every new name is a qstr on the board, and a new global can make
    # framing's globals table grow at import, which a 64 KB heap cannot always give.
    if sys.implementation.name != "micropython":

        def _p(self, key, data=None):
            """`key` prepared (sha256 states keyed with its inner and outer blocks), or HMAC-SHA256(key, data)[:16]."""
            if data is None:
                from transport.session import hmac_sha256

                return [hashlib.sha256(pad) for pad in hmac_sha256(key)]
            h = key[0].copy()
            h.update(data)
            o = key[1].copy()
            o.update(h.digest())
            return o.digest()[:_TAG]

    else:

        def _p(self, key, data=None):
            # The board's hashlib has no copy(): the padded blocks are kept and hashed for each frame.
            from transport.session import hmac_sha256

            return hmac_sha256(key) if data is None else hmac_sha256(key, data)[:_TAG]

    def seal(self, data):
        if self.keys is None:
            return data
        self.tx += 1
        if self.tx <= 0:
            return data  # the client's AUTH (struct.pack fails past 2**32 - 1 frames: reconnect)
        n = len(data)
        out = bytearray(n + _OVERHEAD)  # one buffer, filled in place: no joined copies on a small heap
        out[0] = _MARK
        struct.pack_into(">I", out, 1, self.tx)
        out[5 : n + 5] = data
        out[n + 5 :] = self._p(self.keys[0], memoryview(out)[1 : n + 5])
        return out

    def open(self, data, tcp=True):
        """The payload of `data`, or FrameError (tcp) / None (serial: drop this frame)."""
        if self.keys is None:
            return data
        n = len(data)
        if data[0] != _MARK:
            head = bytes(data[:2])
            # The hub's plain ERROR refusing AUTH, before anything sealed arrived; on serial a
            # HELLO (the peer restarted: the session starts over) or an ERROR at any time.
            if (head == b"\x94\x07" and (self.rx == 0 or not tcp)) or (not tcp and head == b"\x96\x01"):
                return data
            n = 0
        if n >= _OVERHEAD + 1:
            seq = struct.unpack_from(">I", data, 1)[0]
            mv = memoryview(data)
            mac = self._p(self.keys[1], mv[1 : n - _TAG])
            diff = 0  # compared in constant time
            for i in range(_TAG):
                diff |= mac[i] ^ data[n - _TAG + i]
            if diff == 0 and (seq == self.rx + 1 if tcp else seq > self.rx):
                self.rx = seq
                return bytes(mv[5 : n - _TAG])
        # Unsealed, too short, a bad MAC, or a seq out of order (injected, replayed, reordered, cut).
        if tcp:
            raise FrameError("frame refused: not sealed in order by the peer")
        return None

"""Framing: split anywhere, fed a byte at a time, corrupted, oversized -- payloads in, the same payloads out."""

import binascii
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from transport.errors import FrameError
from transport.framing import (
    MAX_FRAME_SIZE,
    SERIAL_MAX_FRAME,
    SerialFramer,
    StreamFramer,
    cobs_decode_into,
    cobs_encode,
    encode_serial,
    encode_stream,
    encoded_size,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Payloads rich in the bytes COBS cares about: zeros, and runs around 254 non-zero bytes.
runs = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.integers(1, 600).map(lambda n: b"\x00" * n),
    st.sampled_from([253, 254, 255, 508, 509]).map(lambda n: b"\x7f" * n),
)
payloads = st.lists(runs, min_size=1, max_size=4).map(b"".join)
payload_lists = st.lists(payloads, min_size=1, max_size=8)


def split(data, cuts):
    cuts = sorted(set(c % (len(data) + 1) for c in cuts))
    out, last = [], 0
    for c in cuts + [len(data)]:
        out.append(data[last:c])
        last = c
    return out


def feed_all(framer, chunks):
    got = []
    for chunk in chunks:
        got.extend(framer.feed(chunk))
    return got


# --- COBS ------------------------------------------------------------------------------


@FAST
@given(st.one_of(payloads, st.binary(max_size=1200)))
def test_cobs_encoding_has_no_zero_byte_and_decodes_back(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    buf = bytearray(enc)
    n = cobs_decode_into(buf, len(buf))
    assert bytes(buf[:n]) == data


def test_cobs_known_vectors_match_the_reference_encoding():
    # From the COBS paper / Wikipedia examples.
    assert bytes(cobs_encode(b"\x00")) == b"\x01\x01"
    assert bytes(cobs_encode(b"\x00\x00")) == b"\x01\x01\x01"
    assert bytes(cobs_encode(b"\x11\x22\x00\x33")) == b"\x03\x11\x22\x02\x33"
    assert bytes(cobs_encode(b"\x11\x00\x00\x00")) == b"\x02\x11\x01\x01\x01"
    data = bytes(range(1, 255))
    assert bytes(cobs_encode(data)) == b"\xff" + data + b"\x01"


def test_cobs_code_pointing_past_the_end_is_malformed():
    buf = bytearray(b"\x05\x11\x22")
    assert cobs_decode_into(buf, 3) == -1


# --- stream (TCP) framing ----------------------------------------------------------------


@FAST
@given(payload_lists, st.lists(st.integers(0, 10**6), max_size=12))
def test_stream_frames_split_at_random_points_come_out_whole_and_in_order(frames, cuts):
    framer = StreamFramer()
    wire = b"".join(framer.encode(p) for p in frames)
    assert feed_all(framer, split(wire, cuts)) == frames
    assert framer.buffered() == 0


@FAST
@given(payload_lists)
def test_stream_frames_fed_one_byte_at_a_time_come_out_whole(frames):
    framer = StreamFramer(max_frame=4096)
    wire = b"".join(encode_stream(p) for p in frames)
    got = []
    for i in range(len(wire)):
        got.extend(framer.feed(wire[i : i + 1]))
        assert framer.buffered() <= 4096 + 4
    assert got == frames


def test_thousands_of_small_stream_frames_in_one_chunk_are_all_returned():
    frames = [struct.pack(">I", i) for i in range(20000)]
    framer = StreamFramer()
    wire = b"".join(framer.encode(p) for p in frames)
    # Cut mid-frame so the unfinished-frame path runs too.
    assert framer.feed(wire[:-3]) + framer.feed(wire[-3:]) == frames


def test_stream_feed_accepts_bytearray_and_memoryview():
    framer = StreamFramer()
    wire = framer.encode(b"abc") + framer.encode(b"de")
    assert framer.feed(bytearray(wire)) == [b"abc", b"de"]
    assert framer.feed(memoryview(wire)) == [b"abc", b"de"]


def test_stream_announced_oversize_frame_raises_frame_error_as_soon_as_its_header_arrives():
    framer = StreamFramer(max_frame=1000)
    header = struct.pack(">I", 1001)
    assert framer.feed(header[:3]) == []
    with pytest.raises(FrameError, match="1001"):
        framer.feed(header[3:])
    with pytest.raises(FrameError):
        StreamFramer(max_frame=1000).feed(encode_stream(b"x") + header + b"\x00" * 10)


def test_stream_frame_of_exactly_max_frame_is_accepted_and_buffer_stays_bounded():
    framer = StreamFramer(max_frame=10000)
    wire = framer.encode(b"\x01" * 10000)
    got = []
    for i in range(0, len(wire), 333):
        got.extend(framer.feed(wire[i : i + 333]))
        assert framer.buffered() <= 10000 + 4
    assert got == [b"\x01" * 10000]


def test_stream_encode_refuses_oversize_and_empty_payloads():
    with pytest.raises(FrameError):
        encode_stream(b"\x00" * (MAX_FRAME_SIZE + 1))
    with pytest.raises(FrameError):
        StreamFramer(max_frame=10).encode(b"x" * 11)
    with pytest.raises(FrameError):
        encode_stream(b"")
    assert len(encode_stream(b"\x00" * MAX_FRAME_SIZE)) == MAX_FRAME_SIZE + 4


def test_stream_zero_length_frame_is_a_frame_error():
    with pytest.raises(FrameError, match="empty"):
        StreamFramer().feed(b"\x00\x00\x00\x00")


# --- serial framing ----------------------------------------------------------------------


def test_serial_frame_is_cobs_of_payload_and_little_endian_crc_then_a_zero():
    payload = b"\x93\x05\x00\x01"
    crc = struct.pack("<I", binascii.crc32(payload))
    assert encode_serial(payload) == bytes(cobs_encode(payload + crc)) + b"\x00"


@FAST
@given(payload_lists, st.lists(st.integers(0, 10**6), max_size=12))
def test_serial_frames_split_at_random_points_come_out_whole_and_in_order(frames, cuts):
    framer = SerialFramer()
    wire = b"".join(framer.encode(p) for p in frames)
    assert feed_all(framer, split(wire, cuts)) == frames
    assert framer.frames_ok == len(frames)
    assert framer.crc_errors == framer.decode_errors == framer.oversize == framer.resyncs == 0


@FAST
@given(payload_lists)
def test_serial_frames_fed_one_byte_at_a_time_come_out_whole(frames):
    framer = SerialFramer()
    wire = b"".join(framer.encode(p) for p in frames)
    got = []
    for i in range(len(wire)):
        got.extend(framer.feed(wire[i : i + 1]))
        assert framer.buffered() <= encoded_size(SERIAL_MAX_FRAME)
    assert got == frames


def is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


damage = st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 10**6), st.integers(1, 255))


@FAST
@given(st.lists(payloads, min_size=3, max_size=8), st.data())
def test_corrupted_serial_frame_is_dropped_and_the_frames_around_it_are_received(frames, data):
    frames = [b"%d:" % i + p for i, p in enumerate(frames)]  # unique payloads
    framer = SerialFramer()
    encoded = [framer.encode(p) for p in frames]
    victim = data.draw(st.integers(0, len(frames) - 1))
    bad = bytearray(encoded[victim])
    for op, where, value in data.draw(st.lists(damage, min_size=1, max_size=4)):
        if op == "flip" and bad:
            bad[where % len(bad)] ^= value
        elif op == "insert":
            bad.insert(where % (len(bad) + 1), value % 256)
        elif op == "delete" and bad:
            del bad[where % len(bad)]
    encoded[victim] = bytes(bad)
    wire = b"".join(encoded)
    got = feed_all(framer, split(wire, data.draw(st.lists(st.integers(0, 10**6), max_size=6))))
    # The link is in sync again: after a delimiter (which also flushes a victim that lost its
    # own), the next frame arrives intact.
    assert framer.feed(b"\x00" + framer.encode(b"after")) == [b"after"]
    # CRC: nothing that was not sent comes out, and nothing comes out twice or out of order.
    assert is_subsequence(got, frames)
    # Damage costs at most the victim and, if its delimiter was hit, the frame after it.
    lost = [p for p in frames if p not in got]
    assert set(lost) <= {frames[victim], frames[min(victim + 1, len(frames) - 1)]}
    if lost:
        assert framer.crc_errors + framer.decode_errors + framer.oversize >= 1
    assert framer.frames_ok == len(got) + 1


@FAST
@given(st.binary(min_size=1, max_size=3000), payload_lists)
def test_serial_line_noise_never_yields_a_payload_and_a_following_frame_is_received(noise, frames):
    framer = SerialFramer()
    assert framer.feed(noise) == []  # noise passing COBS and the CRC-32 has odds of ~2**-32
    wire = b"\x00" + b"".join(framer.encode(p) for p in frames)
    assert framer.feed(wire) == frames


def test_corrupted_serial_frame_is_dropped_and_next_frame_received():
    framer = SerialFramer()
    first = bytearray(framer.encode(b"hello world"))
    first[3] ^= 0x01
    got = framer.feed(bytes(first) + framer.encode(b"next"))
    assert got == [b"next"]
    assert (framer.crc_errors, framer.frames_ok, framer.resyncs) == (1, 1, 1)


def test_truncated_serial_frame_is_dropped_and_counted():
    framer = SerialFramer()
    frame = framer.encode(b"0123456789")
    got = framer.feed(frame[:5] + b"\x00" + framer.encode(b"ok"))
    assert got == [b"ok"]
    assert framer.crc_errors + framer.decode_errors == 1


def test_serial_frame_too_short_for_a_crc_is_a_decode_error():
    framer = SerialFramer()
    assert framer.feed(b"\x03ab\x00") == []
    assert framer.decode_errors == 1


def test_serial_oversize_frame_is_counted_and_dropped_without_growing_the_buffer():
    framer = SerialFramer(max_frame=256)
    buffer_before = framer._buf
    big = encode_serial(b"\x55" * 1000, max_frame=1000)
    got = []
    for i in range(0, len(big), 100):
        got.extend(framer.feed(big[i : i + 100]))
        assert framer.buffered() <= encoded_size(256)
    got.extend(framer.feed(framer.encode(b"small")))
    assert got == [b"small"]
    assert framer.oversize == 1 and framer.resyncs == 1
    assert framer._buf is buffer_before and len(framer._buf) == encoded_size(256)


def test_serial_noise_without_delimiters_never_grows_memory():
    framer = SerialFramer()
    for _ in range(50):
        assert framer.feed(b"\x01" * 10000) == []
        assert framer.buffered() <= encoded_size(SERIAL_MAX_FRAME)
    assert framer.feed(b"\x00" + framer.encode(b"ok")) == [b"ok"]
    assert framer.oversize == 1


def test_serial_payload_that_fits_the_buffer_but_exceeds_max_frame_is_oversize():
    # Zeros COBS-encode to one byte each, so 270 zero bytes fit an encoded_size(256) buffer.
    framer = SerialFramer(max_frame=256)
    assert framer.feed(encode_serial(b"\x00" * 260, max_frame=1000)) == []
    assert framer.oversize == 1


def test_serial_empty_frames_are_ignored_silently():
    framer = SerialFramer()
    assert framer.feed(b"\x00\x00\x00" + framer.encode(b"x") + b"\x00\x00") == [b"x"]
    assert framer.stats() == {"frames_ok": 1, "crc_errors": 0, "decode_errors": 0, "oversize": 0, "resyncs": 0}


def test_serial_encode_refuses_oversize_and_empty_payloads():
    with pytest.raises(FrameError):
        encode_serial(b"x" * (SERIAL_MAX_FRAME + 1))
    with pytest.raises(FrameError):
        SerialFramer().encode(b"")
    framer = SerialFramer()
    assert framer.feed(framer.encode(b"\x00" * SERIAL_MAX_FRAME)) == [b"\x00" * SERIAL_MAX_FRAME]
    assert framer.feed(framer.encode(b"\xff" * SERIAL_MAX_FRAME)) == [b"\xff" * SERIAL_MAX_FRAME]


def test_serial_feed_accepts_bytearray_and_memoryview():
    framer = SerialFramer()
    wire = framer.encode(b"abc")
    assert framer.feed(bytearray(wire)) == [b"abc"]
    assert framer.feed(memoryview(wire)) == [b"abc"]


def test_thousands_of_small_serial_frames_in_one_chunk_are_all_returned():
    framer = SerialFramer()
    frames = [struct.pack(">I", i) for i in range(5000)]
    assert framer.feed(b"".join(framer.encode(p) for p in frames)) == frames

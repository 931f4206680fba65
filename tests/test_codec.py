"""msgpack: golden vectors, C msgpack vs purepack byte equality, and every bad input -> CodecError."""

import datetime

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from codec_vectors import TYPICAL, VECTORS, as_float32, same
from transport import codec, purepack
from transport.errors import CodecError

IMPLS = {"codec": (codec.packb, codec.unpackb), "purepack": (purepack.packb, purepack.unpackb)}
impls = pytest.mark.parametrize("impl", sorted(IMPLS))


def c_packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def test_codec_uses_the_c_package_on_cpython():
    assert codec.IMPLEMENTATION == "msgpack-c"
    assert codec.MAX_DEPTH == purepack.MAX_DEPTH == 32


# --- golden vectors ------------------------------------------------------------------


@pytest.mark.parametrize("name,obj,hexbytes", VECTORS, ids=[v[0] for v in VECTORS])
def test_golden_vector_is_packed_to_the_same_bytes_by_c_msgpack_codec_and_purepack(name, obj, hexbytes):
    expected = bytes.fromhex(hexbytes)
    assert c_packb(obj) == expected
    assert codec.packb(obj) == expected
    assert purepack.packb(obj) == expected


@pytest.mark.parametrize("name,obj,hexbytes", VECTORS, ids=[v[0] for v in VECTORS])
def test_golden_vector_decodes_to_the_same_value_with_every_decoder(name, obj, hexbytes):
    data = bytes.fromhex(hexbytes)
    assert same(msgpack.unpackb(data, strict_map_key=False), obj)
    assert same(codec.unpackb(data), obj)
    assert same(purepack.unpackb(data), obj)


@impls
def test_nan_packs_to_the_c_bytes_and_decodes_to_nan(impl):
    packb, unpackb = IMPLS[impl]
    nan = float("nan")
    assert packb(nan) == c_packb(nan) == bytes.fromhex("cb7ff8000000000000")
    value = unpackb(packb(nan))
    assert value != value


@impls
def test_float32_from_a_c_peer_is_decoded(impl):
    _, unpackb = IMPLS[impl]
    assert unpackb(bytes.fromhex("ca3fc00000")) == 1.5


@impls
def test_bytearray_and_memoryview_pack_as_bin_and_are_accepted_as_input(impl):
    packb, unpackb = IMPLS[impl]
    assert packb(bytearray(b"ab")) == packb(memoryview(b"ab")) == c_packb(b"ab")
    data = packb(TYPICAL)
    assert unpackb(bytearray(data)) == unpackb(memoryview(data)) == TYPICAL


@impls
def test_subclasses_pack_like_their_base_as_c_msgpack_does(impl):
    import collections
    import enum

    class Kind(enum.IntEnum):
        X = 300

    class Name(str, enum.Enum):
        A = "alpha"

    Point = collections.namedtuple("Point", "lat lon")
    obj = [Kind.X, Name.A, Point(1.5, 2.5), collections.OrderedDict(a=1)]
    assert IMPLS[impl][0](obj) == c_packb(obj)


# --- hypothesis: round trip and byte equality ----------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
keys = st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=10) | st.binary(max_size=10)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=40,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(values)
def test_any_value_packs_to_identical_bytes_in_c_msgpack_and_purepack(obj):
    expected = c_packb(obj)
    assert purepack.packb(obj) == expected
    assert codec.packb(obj) == expected


@FAST
@given(values)
def test_any_value_round_trips_through_both_implementations_and_across(obj):
    for packb, _ in IMPLS.values():
        data = packb(obj)
        for _, unpackb in IMPLS.values():
            assert same(unpackb(data), obj)


def decode_both(data):
    results = []
    for _, unpackb in IMPLS.values():
        try:
            results.append(("ok", unpackb(data)))
        except CodecError:
            results.append(("error", None))
    assert results[0][0] == results[1][0], (data.hex(), results)
    assert same(results[0][1], results[1][1])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_either_decode_identically_or_raise_codec_error_in_both(data):
    decode_both(data)


@FAST
@given(values, st.data())
def test_a_damaged_valid_message_decodes_identically_or_raises_codec_error_in_both(obj, data):
    wire = bytearray(c_packb(obj))
    pos = data.draw(st.integers(0, len(wire) - 1))
    wire[pos] = data.draw(st.integers(0, 255))
    decode_both(bytes(wire))


# --- every bad input class raises CodecError -----------------------------------------

SAMPLES = [
    TYPICAL,
    {"k": [b"x" * 300, {None: 1.0}], "s": "é" * 40, "n": [-(2**63), 2**64 - 1, -129, 65536]},
    list(range(20)),
    "x" * 300,
]


@impls
@pytest.mark.parametrize("sample", range(len(SAMPLES)))
def test_message_truncated_at_every_cut_point_raises_codec_error(impl, sample):
    packb, unpackb = IMPLS[impl]
    data = packb(SAMPLES[sample])
    for cut in range(len(data)):
        with pytest.raises(CodecError):
            unpackb(data[:cut])


@impls
def test_trailing_bytes_after_a_value_raise_codec_error(impl):
    packb, unpackb = IMPLS[impl]
    for extra in (b"\x00", b"\xc0", packb(TYPICAL)):
        with pytest.raises(CodecError, match="trailing"):
            unpackb(packb(TYPICAL) + extra)


EXT_SAMPLES = {
    "fixext1": "d40100",
    "fixext2": "d5010000",
    "fixext4": "d60100000000",
    "fixext8": "d7010000000000000000",
    "fixext16": "d801" + "00" * 16,
    "ext8": "c70301000000",
    "ext8 empty": "c70005",
    "ext16": "c8000301000000",
    "ext32": "c90000000301000000",
    "timestamp32": "d6ff00000001",
    "timestamp64": "d7ff0000000000000001",
    "timestamp96": "c70cff" + "00" * 12,
    "timestamp empty": "c700ff",
    "ext inside an array": "92 01 d40100".replace(" ", ""),
}


@impls
@pytest.mark.parametrize("name", sorted(EXT_SAMPLES))
def test_ext_types_including_timestamps_raise_codec_error(impl, name):
    with pytest.raises(CodecError):
        IMPLS[impl][1](bytes.fromhex(EXT_SAMPLES[name]))


def nested(depth):
    obj = []
    for _ in range(depth - 1):
        obj = [obj]
    return obj


@impls
def test_nesting_of_max_depth_is_accepted_and_one_more_is_refused_both_ways(impl):
    packb, unpackb = IMPLS[impl]
    ok = nested(codec.MAX_DEPTH)
    assert unpackb(packb(ok)) == ok
    with pytest.raises(CodecError, match="deeper"):
        packb(nested(codec.MAX_DEPTH + 1))
    with pytest.raises(CodecError, match="deeper"):
        unpackb(b"\x91" * codec.MAX_DEPTH + b"\x90")
    with pytest.raises(CodecError, match="deeper"):
        unpackb(b"\x81\x00" * codec.MAX_DEPTH + b"\x80")
    with pytest.raises(CodecError):
        unpackb(b"\x91" * 100000 + b"\xc0")


@impls
def test_a_cyclic_structure_raises_codec_error(impl):
    loop = []
    loop.append(loop)
    with pytest.raises(CodecError):
        IMPLS[impl][0](loop)


UNSUPPORTED = {
    "set": {1, 2},
    "object": object(),
    "complex": 1j,
    "int above 2**64-1": 2**64,
    "int below -2**63": -(2**63) - 1,
    "ext type": msgpack.ExtType(1, b"x"),
    "timestamp": msgpack.Timestamp(1),
    "datetime": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    "lone surrogate": "\ud800",
    "nested set": [1, {"a": {3}}],
    "ext in a map": {"t": msgpack.ExtType(5, b"")},
}


@impls
@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_value_raises_codec_error_when_packing(impl, name):
    with pytest.raises(CodecError):
        IMPLS[impl][0](UNSUPPORTED[name])


MALFORMED = {
    "empty input": "",
    "reserved 0xc1": "c1",
    "invalid utf-8": "a2fffe",
    "utf-8 cut inside a character": "a2e282",
    "str32 longer than the data": "dbffffffff61",
    "bin32 longer than the data": "c6ffffffff00",
    "array32 longer than the data": "ddffffffff00",
    "map32 longer than the data": "dfffffffff0000",
    "map16 of 3 with 2 items": "de0003010101",
    "array as map key": "819001",
    "map as map key": "818001",
}


@impls
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_raises_codec_error(impl, name):
    with pytest.raises(CodecError):
        IMPLS[impl][1](bytes.fromhex(MALFORMED[name]))


@impls
@pytest.mark.parametrize("bad", ["c0", None, 5, [b"\xc0"]], ids=["str", "none", "int", "list"])
def test_non_bytes_input_raises_codec_error(impl, bad):
    with pytest.raises(CodecError, match="expected bytes"):
        IMPLS[impl][1](bad)


def test_the_vectors_of_a_single_precision_board_are_the_bytes_it_sends():
    """What a float32 board sends (its floats are float32 values, widened) is in the golden table
    as it is: those vectors do not change when every float goes through float32."""
    board = [v for v in VECTORS if v[0].startswith("float32 board")]
    assert len(board) == 5
    for name, obj, hexbytes in board:
        assert msgpack.packb(as_float32(obj), use_bin_type=True).hex() == hexbytes, name
        assert purepack.packb(as_float32(obj)).hex() == hexbytes, name
    # and a double the board cannot hold is sent as its float32 neighbour
    assert msgpack.packb(as_float32(-12.2664)).hex() == "cbc0288865a0000000"

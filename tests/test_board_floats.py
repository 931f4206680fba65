"""The hub reads a board's floats (BOOT lat, lon, max_kw) the same from float32 and float64 boards."""

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from codec_vectors import VECTORS
from fw_f32 import round32
from hub.domain.boardfloats import board_float


def test_float32_values_read_as_the_decimals_the_board_was_configured_with():
    for decimal in (52.520008, 13.404954, -122.4194, 179.9999, -0.000123, 7.4, 22.0, 3.7, 0.1):
        assert board_float(round32(decimal)) == decimal, decimal
        assert board_float(decimal) == decimal, decimal  # a double-precision board: unchanged


def test_values_float32_cannot_hold_ints_and_non_finite_values_are_left_alone():
    assert board_float(52.52) == 52.52 and round32(52.52) != 52.52
    assert board_float(7) == 7 and type(board_float(7)) is int
    assert board_float(float("inf")) == float("inf")
    assert board_float(1e300) == 1e300


@given(st.integers(min_value=-180_000_000, max_value=180_000_000), st.integers(min_value=0, max_value=6))
def test_any_position_or_power_with_six_significant_digits_reads_alike_from_both(mantissa, shift):
    decimal = float("%.6g" % (mantissa / 10**shift))
    assert board_float(round32(decimal)) == board_float(decimal) == decimal


def test_the_golden_boot_of_a_single_precision_board_reads_as_configured():
    boot = dict((name, obj) for name, obj, _hex in VECTORS)["float32 board BOOT"]
    kind, seq, lat, lon, connectors, max_kw, fw = msgpack.unpackb(msgpack.packb(boot))
    # -122.419416 has more digits than a float32 holds at that size (its step there is 7.6e-6 deg,
    # ~0.8 m): the board itself holds -122.41942, 0.2 m away, and the hub reads what it holds.
    assert (board_float(lat), board_float(lon), board_float(max_kw)) == (52.520008, -122.41942, 7.4)

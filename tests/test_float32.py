"""ESP32 number semantics (single-precision floats) for the firmware, under CPython and `micropython`.

tests/fw_f32.py reproduces float32; tests/fw_f32_scenario.py runs a whole station through it (the
board's own tick and wall clocks at an epoch near 1.8e9 with the 2**30 tick counter wrapping after
100 days of uptime): reservations held and expired, a charge to COMPLETE at the right energy with
METERs on their interval, the hub lost and back with the journal replayed, and a power cut replayed
as PowerLoss. Before the board kept integer time, it failed 13 of the 19 checks it reached (22 in
all; see the report of issue 12); the float-wall test below keeps proving that it can fail.
"""

import os
import subprocess
import sys

import pytest

from fw_f32 import F32, f32, round32
from fw_mp import REPO, TESTS, run

SCENARIO = os.path.join(TESTS, "fw_f32_scenario.py")
# The scenario compiles the firmware, board.py and its fakes from source on the device: the compiler
# allocates blocks of several KB, and near 256 KB whether they fit moves with any change to the sources
# (measured: passes at 208, fails at 224 and 240, passes at 256, then the reverse after a few names
# changed). This test is about float32 numbers, not the heap (tests/test_firmware_micropython.py is).
SOURCE_HEAP = "320K"


def _cpython(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, TESTS]))
    return subprocess.run(
        [sys.executable, SCENARIO, str(tmp_path)] + list(args),
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
    )


def test_float32_numbers_lose_what_an_esp32_loses():
    epoch = F32(1.8e9)
    assert epoch + 1 == epoch and epoch + 63 == epoch and (epoch + 65).v == 1.8e9 + 128  # 128 s steps
    assert (F32(1799999937.0) + 0).v == 1800000000.0
    assert F32(8640000.0) + 0.001 == F32(8640000.0)  # 100 days of uptime in s: the ms are gone
    assert round32(0.1) != 0.1 and round32(22.0) == 22.0
    assert type(f32(1800000000)) is int and f32(1800000000) + 1 == 1800000001  # ints stay exact
    assert type(f32(1.5)) is F32 and type(f32(1.5) / 3) is F32 and type(3 - f32(1.5)) is F32


def test_a_full_station_scenario_passes_with_float32_numbers_under_cpython(tmp_path):
    res = _cpython(tmp_path)
    assert "F32 SCENARIO OK" in res.stdout and res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(" ok\n") == 22, res.stdout


def test_a_full_station_scenario_passes_with_float32_numbers_under_micropython(tmp_path):
    res = run(SCENARIO, SOURCE_HEAP, [REPO, TESTS], cwd=str(tmp_path), args=(str(tmp_path),))
    assert "F32 SCENARIO OK" in res.stdout and res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(" ok\n") == 22, res.stdout


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_the_scenario_fails_with_the_float_wall_clock_boards_had_before(tmp_path, runtime):
    if runtime == "cpython":
        res = _cpython(tmp_path, "float-wall")
    else:
        res = run(SCENARIO, SOURCE_HEAP, [REPO, TESTS], cwd=str(tmp_path), args=(str(tmp_path), "float-wall"))
    # It fails its checks (the hold starts up to 128 s late), then the integer core refuses to put the
    # float time on the wire: either way the scenario must not pass.
    assert res.returncode != 0 and "F32 SCENARIO OK" not in res.stdout, res.stdout + res.stderr
    assert "hold begins hold_before_s before the start FAIL" in res.stdout, res.stdout

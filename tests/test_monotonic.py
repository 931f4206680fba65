"""transport.compat.monotonic_ms on MicroPython: ticks_ms wraps (2**30 ms on the ESP32, ~12.4 days), the
clock built on it must not. Driven by a fake tick counter, under CPython and the real interpreter."""

from fw_mp import REPO, run
from transport.compat import TicksClock

PERIOD = 1 << 30  # MicroPython's TICKS_PERIOD
DAY_MS = 86400 * 1000


class FakeTicks:
    """ticks_ms() and ticks_diff() as MicroPython defines them, on a counter the test moves."""

    def __init__(self, start_ms):
        self.t = start_ms

    def __call__(self):
        return self.t % PERIOD

    @staticmethod
    def diff(a, b):
        half = PERIOD // 2
        return ((a - b + half) % PERIOD) - half


def test_the_clock_runs_on_across_the_tick_counter_wrap():
    ticks = FakeTicks(PERIOD - 1500)
    clock = TicksClock(ticks, FakeTicks.diff)
    assert clock() == 0
    ticks.t += 1000
    assert clock() == 1000
    ticks.t += 1000  # the counter wraps here: 2**30 - 500 -> 500
    assert ticks() == 500
    assert clock() == 2000
    ticks.t += 250
    assert clock() == 2250


def test_forty_days_read_every_few_days_add_up_to_forty_days():
    ticks = FakeTicks(12345)
    clock = TicksClock(ticks, FakeTicks.diff)
    for _ in range(16):  # 2.5 days per reading: below the half period (~6.2 days)
        ticks.t += DAY_MS * 5 // 2
        clock()
    ticks.t += 7  # a few ms on top
    assert clock() == 40 * DAY_MS + 7 and type(clock()) is int
    assert 40 * DAY_MS > 3 * PERIOD  # the raw counter wrapped three times meanwhile


def test_the_clock_never_goes_backwards():
    ticks = FakeTicks(PERIOD - 3)
    clock = TicksClock(ticks, FakeTicks.diff)
    last = clock()
    for step in (1, 1, 1, 1, 999, 1, 0, 5000, PERIOD // 2 - 1):
        ticks.t += step
        now = clock()
        assert now >= last
        last = now


MP_SCRIPT = """
import time
from transport import compat
from transport.compat import TicksClock, monotonic_ms

assert isinstance(monotonic_ms, TicksClock), monotonic_ms
a = monotonic_ms()
time.sleep_ms(30)
b = monotonic_ms()
assert type(b) is int and 20 <= b - a < 1000, (a, b)

# a fake counter just below the wrap, with the interpreter's own ticks_diff and period
# (2**30 on the ESP32, 2**62 on the 64-bit unix port)
PERIOD = time.ticks_add(0, -1) + 1
t = [PERIOD - 1500]
clock = TicksClock(lambda: t[0] % PERIOD, time.ticks_diff)
for i in range(6):
    t[0] += 500
print("WRAP", clock(), t[0] % PERIOD)
for i in range(16):
    t[0] = (t[0] + 216000000) % PERIOD  # 2.5 days
    clock()
print("DAYS", clock())
"""


def test_micropython_uses_the_wrap_safe_clock_with_its_own_ticks_diff(tmp_path):
    script = tmp_path / "clock.py"
    script.write_text(MP_SCRIPT)
    res = run(str(script), "64K", [REPO], cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "WRAP 3000 1500" in res.stdout, res.stdout  # one reading, 3000 ms later, across the wrap
    assert "DAYS 3456003000" in res.stdout, res.stdout  # and 40 days more

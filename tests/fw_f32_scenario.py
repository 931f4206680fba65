"""A full charge-point scenario with ESP32 number semantics (float32), run by tests/test_float32.py
under CPython and under `micropython`:  fw_f32_scenario.py <work dir>

The station's clocks are the board's own (transport.compat.TicksClock on a ticks_ms counter with
the ESP32's 2**30 period that wraps during the run, after 100 days of uptime; board.wall_clock on
a time_ns near 1.8e9 s), and every reading passes through fw_f32.f32: a float becomes float32
from there on, an int stays exact, as on a board. Float config values hold their float32 values.
The fake hub (tests/fw_hub.py) runs on exact integer clocks, as the real hub on a PC does.

The scenario: boot; two reservations (one used, one that expires unused); hold; plug; charge to
COMPLETE at the right energy with METERs on their interval; the hub lost mid-charge (offline,
reduced power, the session completes offline) and back (journal replay, exactly once); then a
power cut mid-session and a reboot that replays it as PowerLoss at its checkpoint energy.

Prints one "CHECK <name> ok|FAIL <detail>" line per check and "F32 SCENARIO OK" when all pass
(exit status 1 otherwise). Only MicroPython-safe code.

``fw_f32_scenario.py <dir> float-wall`` runs it with the old float wall clock: it must fail.
"""

import sys

from fw_f32 import f32, f32_float
from fw_hub import KEY, FakeClock, FakeHub, Wire

from firmware.chargepoint import ChargePoint
from firmware.journal import Journal
from firmware.micropython import board
from transport import codec
from transport import kinds as K
from transport.compat import TicksClock

WORK = sys.argv[1] if len(sys.argv) > 1 else "."
# "float-wall": the wall clock the boards had before (time_ns() / 1e9), to prove the harness catches it
FLOAT_WALL = len(sys.argv) > 2 and sys.argv[2] == "float-wall"
EPOCH = 1799999937  # the hub's epoch at t = 0: not a multiple of float32's 128 s step at 1.8e9
PERIOD = 1 << 30  # ticks_ms period on the ESP32
UPTIME_MS = 100 * 86400 * 1000  # the board has run 100 days: a float32 uptime in s steps by 1 s
TICK0 = PERIOD - 90000  # the raw counter wraps 90 s into the run (after the uptime, mod PERIOD)
EV = {"max_kw": f32_float(11.0), "capacity_kwh": f32_float(40.0), "soc": f32_float(0.78), "target_soc": f32_float(0.82)}
ENERGY_WH = 1600  # 4% of 40 kWh
failures = []


def check(name, ok, detail=""):
    print("CHECK %s %s" % (name, "ok" if ok else "FAIL %s" % (detail,)))
    if not ok:
        failures.append(name)


def ticks_diff(a, b):  # MicroPython's ticks_diff for a 2**30 period
    half = PERIOD // 2
    return ((a - b + half) % PERIOD) - half


class BoardTime:
    """What the board's `time` module gives, driven by the test's master clock (seconds)."""

    def __init__(self, master, tick0):
        self.master = master
        self.tick0 = tick0  # the raw counter when the master clock reads 0
        self.shift = 0  # ms added to the counter (the uptime warm-up moves it)

    def ms(self):
        return int(self.master.t * 1000)

    def ticks_ms(self):
        return (self.tick0 + self.shift + self.ms()) % PERIOD

    def time_ns(self):
        return (EPOCH * 1000 + self.ms()) * 1000000

    def gmtime(self, t=None):
        return (1970, 1, 1, 0, 0, 0, 3, 1)


def station(master, tick0, uptime_ms, journal_path):
    bt = BoardTime(master, tick0)
    bt.shift = -uptime_ms
    ticks = TicksClock(bt.ticks_ms, ticks_diff)
    while bt.shift < 0:  # the board has run `uptime_ms`: its loop read the clock all along
        bt.shift = min(bt.shift + 2 * 86400 * 1000, 0)
        ticks()
    saved = board.time
    board.time = bt  # board.wall_clock reads the port's `time` module
    try:
        wall = board.wall_clock()
    finally:
        board.time = saved
    if FLOAT_WALL:
        wall = lambda: bt.time_ns() / 1000000000  # noqa: E731
    config = {
        "id": "CP-1",
        "key": KEY,
        "connectors": 2,
        "meter_interval_s": 60,
        "hold_before_s": 60,
        "grace_s": 120,
        "checkpoint_s": 30,
        "max_kw": f32_float(22.0),
        "offline_power_kw": f32_float(3.7),
        "lat": f32_float(52.520008),
        "lon": f32_float(13.404954),
    }
    cp = ChargePoint(config, lambda: f32(ticks()), lambda: f32(wall()), journal=Journal(journal_path, 2))
    return cp, bt


def main():
    master = FakeClock(0)
    hub_wall = lambda: EPOCH + int(master.t)  # noqa: E731
    hub = FakeHub(master, hub_wall)
    cp, bt = station(master, TICK0, UPTIME_MS, WORK + "/journal.log")
    wire = Wire(cp, hub, master, codec)
    wire.start()
    check("boot", wire.run_until(lambda: cp.usable, limit_s=30), "not usable after 30 s")

    # --- reservations: one used (connector 1), one that expires unused (connector 2) -----------
    now = hub_wall()
    s1, s2 = now + 400, now + 150  # connector 2's reservation expires before connector 1's hold begins
    hub.request(K.RESERVE_NOW, 7, 1, "V-1", s1, now + 3600)
    hub.request(K.RESERVE_NOW, 8, 2, "V-2", s2, now + 3600)
    wire.pump()
    last = {1: cp.status(1), 2: cp.status(2)}
    seen = {}  # (connector, status) -> hub time of its first change to it

    def watch():
        for n in (1, 2):
            st = cp.status(n)
            if st != last[n]:
                last[n] = st
                if (n, st) not in seen:
                    seen[(n, st)] = hub_wall()
        return (2, "Available") in seen and (1, "Reserved") in seen

    wire.run_until(watch, limit_s=600)
    r1 = seen.get((1, "Reserved"))
    check(
        "hold begins hold_before_s before the start",
        r1 is not None and 0 <= r1 - (s1 - 60) <= 1,
        "connector 1 Reserved at %s, expected %d" % (r1, s1 - 60),
    )
    r2 = seen.get((2, "Reserved"))
    check(
        "second hold begins on time",
        r2 is not None and 0 <= r2 - (s2 - 60) <= 1,
        "connector 2 Reserved at %s, expected %d" % (r2, s2 - 60),
    )
    a2 = seen.get((2, "Available"))
    check(
        "an unused reservation expires at start + grace_s",
        a2 is not None and 0 <= a2 - (s2 + 120) <= 2,
        "connector 2 Available again at %s, expected %d" % (a2, s2 + 121),
    )
    check("the expired reservation is gone", cp.reservations.get(8) is None, "still booked")

    # --- plug and charge; the hub is lost mid-charge and comes back --------------------------
    plugged = hub_wall()
    sid = cp.plug(1, "V-1", EV)
    check("the reserved vehicle starts charging", sid is not None and cp.status(1) == "Charging", cp.status(1))
    wire.run(150)
    down = hub_wall()
    hub.down()
    wire.run_until(lambda: cp.offline, limit_s=400)
    off_after = hub_wall() - down
    check("the lost hub is noticed after 3 heartbeats", 55 <= off_after <= 95, "offline after %d s" % off_after)
    charge = cp.connectors[0].charge
    power = charge.power_w() if charge is not None else None
    check("offline power is reduced", power == 3700, "%s W" % (power,))
    wire.run_until(lambda: cp.status(1) != "Charging", limit_s=4000)
    check("the session completes offline", cp.status(1) == "Finishing", cp.status(1))
    hub.up()
    wire.run_until(lambda: sid in hub.ends, limit_s=300)
    end = hub.ends.get(sid)
    check("the journal replays the session to the hub", end is not None, "no SESSION_END")
    if end is not None:
        check(
            "COMPLETE at the right energy", end[7] == "Complete" and end[4] == ENERGY_WH, "%s %s Wh" % (end[7], end[4])
        )
        check("started when plugged", end[5] == plugged, "started %s, plugged %d" % (end[5], plugged))
        dur = end[6] - end[5]
        # 150 s + ~90 s at 11 kW (~730 Wh), the rest at 3.7 kW (~850 s): 1000..1300 s
        check("the charge took as long as its power says", 1000 <= dur <= 1300, "%d s" % dur)
    check(
        "each record reached the hub exactly once",
        hub.records.count((K.SESSION_START, sid)) == 1 and hub.records.count((K.SESSION_END, sid)) == 1,
        hub.records,
    )
    times = [m[4] for m in hub.meters if m[1] == sid and m[3] > 0]
    gaps = sorted(set(b - a for a, b in zip(times, times[1:])))
    check("METERs come on their 60 s interval", len(times) >= 2 and gaps == [60], "times %s" % (times,))
    wh = [m[2] for m in hub.meters if m[1] == sid]
    check("metered energy only grows", len(wh) >= 2 and wh == sorted(wh) and wh[-1] < ENERGY_WH, wh)

    # --- a power cut mid-session; the reboot replays it as PowerLoss --------------------------
    cp.unplug(1)
    wire.run(5)
    plugged2 = hub_wall()
    sid2 = cp.plug(2, "V-3", EV)
    check("an unreserved vehicle waits for the hub", sid2 is None and cp.status(2) == "Preparing", cp.status(2))
    hub.request(K.REMOTE_START, 2, "V-3", None, EV)
    wire.pump()
    sid2 = cp.connectors[1].session_id
    wire.run(100)  # checkpoints at +30, +60, +90
    saved_wh = cp.journal.running[sid2][1] if sid2 in cp.journal.running else None
    hub.down()
    wire.drop("power cut")
    master.t += 20  # the board is off for 20 s
    cp2, _bt2 = station(master, 12345, 0, WORK + "/journal.log")  # a reboot: a fresh tick counter
    hub.up()
    wire2 = Wire(cp2, hub, master, codec)
    wire2.start()
    wire2.run_until(lambda: sid2 in hub.ends, limit_s=120)
    end2 = hub.ends.get(sid2)
    check("the cut session is replayed after the reboot", end2 is not None, "no SESSION_END")
    if end2 is not None:
        check(
            "as PowerLoss at its checkpoint energy",
            end2[7] == "PowerLoss" and end2[4] == saved_wh and saved_wh > 0,
            "%s %s Wh (checkpoint %s)" % (end2[7], end2[4], saved_wh),
        )
        check(
            "ended at its last checkpoint",
            end2[6] - plugged2 == 90,
            "ended %d s after the start" % (end2[6] - plugged2),
        )
        check("exactly once", hub.records.count((K.SESSION_END, sid2)) == 1, hub.records)
    check("the tick counter wrapped during the run", bt.ticks_ms() < TICK0, bt.ticks_ms())
    if failures:
        print("F32 SCENARIO FAILED: %s" % ", ".join(failures))
        sys.exit(1)
    print("F32 SCENARIO OK")


main()

"""Run under `micropython` by tests/test_firmware_micropython.py: a full reserved session with a hub
restart in the middle, then a reboot that replays an unacknowledged SESSION_END, against a fake hub
built from ServerSession, through the pure codec. Prints the heap high-water mark.

The test prepends ``JOURNAL = "<path>"``. Live heap is sampled after gc.collect() at every step, so
PEAK is the most the firmware (and the in-process fake hub) ever held at once.
"""

import gc

gc.collect()
START = gc.mem_alloc()

from transport import codec  # noqa: E402
from transport import framing  # noqa: E402,F401  (the board loads it; each session's Seal lives there)
from transport import kinds as K  # noqa: E402
from firmware.chargepoint import ChargePoint  # noqa: E402
from firmware.journal import Journal  # noqa: E402
from fw_hub import EPOCH, KEY, FakeClock, FakeHub, Wire  # noqa: E402

# Every global the scenario binds later, bound now: this script's dict reaches its final size before
# the firmware runs. Bound one by one mid-run, its last growth (a 752-byte table) decided the smallest
# heap of the whole scenario, and moved it by 2-5 KB with any change in what came before.
clock = config = cp = hub = wire = now = sid = hub1 = sid2 = cp2 = hub2 = wire2 = None

gc.collect()
BASE = gc.mem_alloc()
PEAK = [BASE]
EV = {"max_kw": 11.0, "capacity_kwh": 40.0, "soc": 0.5, "target_soc": 0.9}


def sample():
    gc.collect()
    a = gc.mem_alloc()
    if a > PEAK[0]:
        PEAK[0] = a


class SampledWire(Wire):
    def step(self, dt=1.0):
        Wire.step(self, dt)
        sample()


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        raise SystemExit(1)


def make_hub(clock, wall):
    hub = FakeHub(clock, wall)
    hub.keep_meters = False
    return hub


def ask(hub, wire, kind, *fields):
    seq = hub.request(kind, *fields)
    wire.pump()
    return hub.reply(seq)


clock = FakeClock()


def wall():
    return EPOCH + int(clock.t)


config = {"id": "CP-1", "key": KEY, "connectors": 2, "max_kw": 22.0, "meter_interval_s": 60}
cp = ChargePoint(config, clock, wall, journal=Journal(JOURNAL, 2), rand=lambda: 32768)
hub = make_hub(clock, wall)
wire = SampledWire(cp, hub, clock, codec)
wire.start()
check(cp.usable and hub.boots == 1, "boot")

# A vehicle reserves for 15 minutes from now; the connector is held from start - 10 min.
now = int(wall())
check(ask(hub, wire, K.RESERVE_NOW, 5, 0, "V-1", now + 900, now + 4500).kind == K.ACK, "reserve_now acked")
wire.run(400, dt=10)
check(cp.status(1) == "Reserved" and hub.status(1) == "Reserved", "reserved")
check(ask(hub, wire, K.REMOTE_START, 0, "V-1", 5, EV).kind == K.ACK, "remote_start acked")
sid = cp.connectors[0].session_id
wire.run(1200, dt=10)

# The hub dies mid-session; the station backs off, goes offline (reduced power), keeps charging.
hub1 = hub
hub.down()
wire.drop("connection reset")
wire.run(150, dt=1)
check(cp.offline and cp.status(1) == "Charging", "offline, still charging")
hub = make_hub(clock, wall)  # restarted
wire.hub = hub
check(wire.run_until(lambda: cp.usable, 120, 1), "reconnected")
check(hub.boots == 1 and not cp.offline, "rebooted into the new hub")
check(wire.run_until(lambda: sid in hub.ends, 6 * 3600, 10), "session ended")
wire.run(100, dt=10)
check(hub1.records.count((K.SESSION_START, sid)) == 1, "start recorded once")
check(hub.records.count((K.SESSION_START, sid)) == 0, "start not resent after its ack")
check(hub.records.count((K.SESSION_END, sid)) + hub1.records.count((K.SESSION_END, sid)) == 1, "end recorded once")
hub1 = None
check(hub.ends[sid][4] == 16000 and hub.ends[sid][7] == "Complete", "energy and reason")
check(cp.journal.pending() == [], "journal empty")

# Second session; its SESSION_END is not acknowledged before the station reboots.
check(ask(hub, wire, K.REMOTE_START, 2, "V-2", None, EV).kind == K.ACK, "second start")
sid2 = cp.connectors[1].session_id
hub.ack_ends = False
check(wire.run_until(lambda: (K.SESSION_END, sid2) in hub.records, 6 * 3600, 30), "second end sent")
cp = None
wire = None
gc.collect()
cp2 = ChargePoint(config, clock, wall, journal=Journal(JOURNAL, 2), rand=lambda: 32768)
hub2 = make_hub(clock, wall)
wire2 = SampledWire(cp2, hub2, clock, codec)
wire2.start()
check(hub2.records == [(K.SESSION_END, sid2)], "replayed once after reboot")
wire2.drop("again")
wire2.run(5)
check(hub2.links == 2 and hub2.records == [(K.SESSION_END, sid2)], "not replayed after ack")

sample()
print("HEAP start=%d base=%d peak=%d runtime=%d" % (START, BASE, PEAK[0], PEAK[0] - BASE))
print("OK")

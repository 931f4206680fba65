"""Two devices with one id: replaced at first, then damped; a reconnect always wins."""

import os
import re
import subprocess
import sys
import time

from hubproc import REPO, HubProcess
from hub.io.peerclash import FLAP_COUNT, HOLD_MAX_S, HOLD_MIN_S, REFUSE, REPLACE, PeerClash
from waiting import wait_for

KEY = ("station", "CP-1")


def test_an_occasional_reconnect_replaces_the_old_link():
    clash = PeerClash()
    for t in (0.0, 100.0, 200.0, 300.0):
        assert clash.decide(KEY, t) == (REPLACE, False)


def test_flapping_holds_the_id_and_the_hold_doubles_while_it_goes_on():
    clash = PeerClash()
    t = 0.0
    for _ in range(FLAP_COUNT - 1):
        assert clash.decide(KEY, t)[0] == REPLACE
        t += 1
    assert clash.decide(KEY, t) == (REFUSE, True)  # the third in a minute: flapping
    assert clash.hold_s(KEY) == HOLD_MIN_S
    assert clash.decide(KEY, t + 5) == (REFUSE, False)  # held: refused quietly
    t += HOLD_MIN_S + 1
    for _ in range(FLAP_COUNT - 1):
        assert clash.decide(KEY, t)[0] == REPLACE
        t += 1
    assert clash.decide(KEY, t) == (REFUSE, True)
    assert clash.hold_s(KEY) == 2 * HOLD_MIN_S
    assert clash.decide(("station", "CP-2"), t) == (REPLACE, False)  # other ids are not affected


def test_a_long_calm_resets_the_hold():
    clash = PeerClash()
    for t in (0.0, 1.0, 2.0):
        clash.decide(KEY, t)
    t = 2.0 + HOLD_MIN_S + 2 * HOLD_MAX_S
    clash.forget_idle(t)
    for i in range(FLAP_COUNT):
        verdict = clash.decide(KEY, t + i)
    assert verdict == (REFUSE, True) and clash.hold_s(KEY) == HOLD_MIN_S


def _chargepoint(hub, key, state_dir):
    env = dict(os.environ, PYTHONPATH=REPO, XDG_STATE_HOME=str(state_dir), **hub.env)
    return subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "chargepoint", "--id", "CP-1", "--key", key, "--hub", hub.url],
        cwd=hub.tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def test_two_devices_with_one_id_are_warned_about_with_both_addresses_and_stop_flapping(tmp_path):
    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-1")
        procs = [_chargepoint(hub, key, tmp_path / ("state%d" % i)) for i in range(2)]
        try:
            wait_for(lambda: "two devices share this id" in hub.log(), 45, "the two-devices warning", step=0.2)
            log = hub.log()
            warning = [line for line in log.splitlines() if "two devices share this id" in line]
            assert warning, log[-3000:]
            assert "WARNING" in warning[0]
            assert len(set(re.findall(r"127\.0\.0\.1:\d+", warning[0]))) == 2  # both addresses named
            replaced = log.count("the newer link replaces it")
            time.sleep(5)  # the hold is 30 s: no replacement at all may happen in the next 5
            assert hub.log().count("the newer link replaces it") == replaced
            assert hub.log().count("two devices share this id") == 1  # one line per hold, not per attempt
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)

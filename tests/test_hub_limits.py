"""Limits that keep one hostile peer from hurting the others."""

import pytest

from hub.io.limits import LoginThrottle, RateLimiter
from hubproc import HubProcess
from tools.client.hubclient import HubClient, HubError
from transport.errors import E_AUTH_FAILED, E_RATE_LIMITED


def test_rate_limiter_allows_a_burst_then_the_sustained_rate():
    rl = RateLimiter(rate=10, burst=20)
    now = rl.stamp
    assert sum(rl.allow(now) for _ in range(50)) == 20
    assert sum(rl.allow(now + 1.0) for _ in range(50)) == 10


def test_login_throttle_makes_an_address_wait_after_repeated_failures_for_one_id():
    t = LoginThrottle(free=3, window_s=300)
    for i in range(3):
        assert t.wait_s("10.0.0.1:5000", "station", "CP-1", now=100.0) == 0
        t.failed("10.0.0.1:%d" % (5000 + i), "station", "CP-1", now=100.0)
    assert t.wait_s("10.0.0.1:6000", "station", "CP-1", now=100.0) == pytest.approx(1.0)
    t.failed("10.0.0.1:1", "station", "CP-1", now=100.0)
    assert t.wait_s("10.0.0.1:1", "station", "CP-1", now=100.0) == pytest.approx(2.0)
    assert t.wait_s("10.0.0.2:1", "station", "CP-1", now=100.0) == 0, "other addresses are not affected"
    assert t.wait_s("10.0.0.1:1", "station", "CP-2", now=100.0) == 0, "other ids are not affected"
    assert t.wait_s("10.0.0.1:1", "station", "CP-1", now=103.0) == 0
    t.succeeded("10.0.0.1:9", "station", "CP-2")
    assert t.wait_s("10.0.0.1:1", "station", "CP-1", now=100.0) > 0, "another id's success resets nothing"
    t.succeeded("10.0.0.1:9", "station", "CP-1")
    assert t.wait_s("10.0.0.1:1", "station", "CP-1", now=100.0) == 0


def test_repeated_wrong_keys_from_one_address_are_slowed_down_and_logged(tmp_path):
    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-1")
        codes = []
        for _ in range(7):
            with pytest.raises(HubError) as exc:
                HubClient(hub.url, "station", "CP-1", "ab" * 16, timeout=5).connect()
            codes.append(exc.value.code)
        assert codes[:5] == [E_AUTH_FAILED] * 5
        assert E_RATE_LIMITED in codes[5:]
        # Even the right key waits until the penalty has passed.
        with pytest.raises(HubError) as exc:
            HubClient(hub.url, "station", "CP-1", key, timeout=5).connect()
        assert exc.value.code == E_RATE_LIMITED and "retry in" in str(exc.value)
        assert "refused from 127.0.0.1" in hub.log()


def test_login_throttle_survives_thousands_of_failures_and_keeps_serial_lines_apart():
    t = LoginThrottle(free=5, max_wait_s=300)
    for i in range(200):
        t.failed("10.0.0.9:1", "vehicle", "V-1", now=float(i))
    assert t.wait_s("10.0.0.9:1", "vehicle", "V-1", now=200.0) == pytest.approx(299.0)
    for _ in range(11):
        t.failed("serial:/dev/ttyUSB0", "station", "CP-1", now=0.0)
    assert t.wait_s("serial:/dev/ttyUSB1", "station", "CP-1", now=0.0) == 0

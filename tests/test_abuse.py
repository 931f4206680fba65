"""Abuse is bounded: login guessing, idle sockets, huge frames and wire text in the log,
each tried against the real hub process (issue 13)."""

import os
import time

import pytest

from fw_ptypair import PtyPair
from hubproc import HubProcess
from tools.client.hubclient import HubClient, HubError
from transport.codec import packb
from transport.errors import E_AUTH_FAILED, E_RATE_LIMITED
from transport.session import Authenticated
from serial_login import serial_login
from waiting import wait_for

WRONG = "ab" * 16


def wrong_login(hub, role, peer_id):
    with pytest.raises(HubError) as exc:
        HubClient(hub.url, role, peer_id, WRONG, timeout=5).connect()
    return exc.value.code


def test_wrong_logins_for_one_id_never_lock_out_a_correct_key_for_another_id_on_the_same_address(tmp_path):
    with HubProcess(tmp_path) as hub:
        key1 = hub.add_station("CP-1")
        hub.add_station("CP-2")
        codes = [wrong_login(hub, "station", "CP-2") for _ in range(15)]
        assert codes[:5] == [E_AUTH_FAILED] * 5 and E_RATE_LIMITED in codes[5:], codes
        # The guessed id is throttled, even with its right key, but CP-1 from the same address is not.
        with HubClient(hub.url, "station", "CP-1", key1, timeout=5) as c:
            assert c.session.authenticated
        # ... and CP-1 logging in does not reset CP-2's counter.
        assert wrong_login(hub, "station", "CP-2") == E_RATE_LIMITED


def test_wrong_logins_from_one_address_never_refuse_the_same_ids_correct_key_from_another(tmp_path, monkeypatch):
    import functools
    import socket

    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-1")
        plain = socket.create_connection
        monkeypatch.setattr(socket, "create_connection", functools.partial(plain, source_address=("127.0.0.2", 0)))
        codes = [wrong_login(hub, "station", "CP-1") for _ in range(8)]
        assert E_RATE_LIMITED in codes, codes
        monkeypatch.setattr(socket, "create_connection", plain)
        with HubClient(hub.url, "station", "CP-1", key, timeout=5) as c:
            assert c.session.authenticated


def test_past_the_global_cap_a_pair_that_already_failed_waits_even_below_its_own_limit(tmp_path):
    cfg = tmp_path / "hub.toml"
    cfg.write_text("[hub]\nlogin_failures_per_s = 1\n")
    with HubProcess(tmp_path, extra_args=["--config", str(cfg)]) as hub:
        token = hub.add_vehicle("V-OK")
        assert wrong_login(hub, "vehicle", "V-A") == E_AUTH_FAILED
        # V-A stays under its own 5 failures: a refusal can only come from the hub-wide budget (1/s),
        # spent by another id's failure just before (retried: a slow machine may let a second pass).
        codes = []
        for i in range(3):
            assert wrong_login(hub, "vehicle", "V-B%d" % i) == E_AUTH_FAILED  # a pair that never failed gets its try
            codes.append(wrong_login(hub, "vehicle", "V-A"))
            if codes[-1] == E_RATE_LIMITED:
                break
        assert codes[-1] == E_RATE_LIMITED, codes
        with HubClient(hub.url, "vehicle", "V-OK", token, timeout=5) as c:
            assert c.session.authenticated


def test_a_failure_now_and_then_never_adds_up_to_a_lockout():
    from hub.io.limits import LoginThrottle

    t = LoginThrottle(free=5, window_s=300)
    for i in range(20):  # one wrong login every 301 s
        t.failed("10.0.0.1:5", "station", "CP-1", now=i * 301.0)
        assert t.wait_s("10.0.0.1:6", "station", "CP-1", now=i * 301.0 + 1) == 0


def test_the_global_cap_stops_guessing_across_many_ids_but_lets_a_pair_that_never_failed_try():
    from hub.io.limits import LoginThrottle

    t = LoginThrottle(free=5, global_per_s=10)
    for i in range(10):
        t.failed("10.0.0.1:5", "vehicle", "V-%d" % i, now=100.0)
    assert t.wait_s("10.0.0.1:5", "vehicle", "V-3", now=100.0) > 0, "failed pairs wait for the global budget"
    assert t.wait_s("10.0.0.2:5", "vehicle", "V-OK", now=100.0) == 0, "a pair that never failed goes ahead"
    assert t.wait_s("10.0.0.1:5", "vehicle", "V-3", now=101.0) == 0, "the budget refills within a second"


def test_wrong_logins_on_a_serial_line_are_throttled_per_id(tmp_path):
    pair = PtyPair()
    try:
        with HubProcess(tmp_path, extra_args=["--serial", pair.path1]) as hub:
            key1 = hub.add_station("CP-1")
            hub.add_station("CP-2")
            fd = os.open(pair.path2, os.O_RDWR | os.O_NOCTTY)
            try:
                codes = [serial_login(fd, "CP-2", WRONG).code for _ in range(8)]
                assert codes[:5] == [E_AUTH_FAILED] * 5 and E_RATE_LIMITED in codes[5:], codes
                assert isinstance(serial_login(fd, "CP-1", key1), Authenticated)
            finally:
                os.close(fd)
    finally:
        pair.close()


FORGED = "WARNING hub.actors.registry: station CP-9 FORGED"


def test_newlines_and_escapes_sent_by_a_station_and_a_vehicle_never_forge_a_hub_log_line(tmp_path):
    from transport import kinds as K

    evil = "x\n2026-01-01 00:00:00,000 " + FORGED + "\r\x1b[2J\u2028"
    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-1")
        token = hub.add_vehicle("V-1")
        with HubClient(hub.url, "station", "CP-1", key, timeout=5) as c:
            c.request(K.BOOT, -12.2664, -38.9663, 1, 22.0, evil)
            c.request(K.STATUS, 1, "Faulted", evil)
            c.send(K.ERROR, 1, evil)
        with HubClient(hub.url, "vehicle", "V-1", token, timeout=5) as v:
            v.send(K.ERROR, 1, evil)
        wrong_login(hub, "station", "CP-1")
        hub.stop()
        log = hub.log()
    lines = log.splitlines()
    assert not any(line.startswith("2026-01-01") or FORGED in line.split(": ", 1)[0] for line in lines)
    assert not [line for line in lines if "FORGED" in line and "\\n" not in line], "wire text is logged escaped"
    assert "\x1b" not in log and "\u2028" not in log
    assert "boot firmware=x\\n2026" in log


def test_a_frame_over_its_kinds_limit_is_refused_as_a_bad_message_and_a_megabyte_frame_closes_only_its_link(tmp_path):
    import struct

    from transport import kinds as K
    from transport.errors import E_TOO_LARGE

    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-1")
        token = hub.add_vehicle("V-1")
        hub.add_vehicle("V-2")
        with HubClient(hub.url, "station", "CP-1", key, timeout=5) as station:
            # A STATUS with 3 KiB of "info": valid msgpack, over STATUS's limit: refused, link kept.
            with pytest.raises(HubError) as exc:
                station.request(K.STATUS, 1, "Available", "i" * 3000)
            assert exc.value.code == E_TOO_LARGE and "status frame is at most" in str(exc.value)
            station.request(K.STATUS, 1, "Available", None)
            # A vehicle announcing 1 MiB frames is cut off at the header; the station is not stalled.
            attacker = HubClient(hub.url, "vehicle", "V-1", token, timeout=5).connect()
            body = packb([K.NEAREST, 1, 0.0, 0.0, 1, {"x": "y" * (1 << 20)}])
            started = time.monotonic()
            try:
                for _ in range(5):
                    attacker.sock.sendall(struct.pack(">I", len(body)) + body)
            except OSError:
                pass  # the hub closed it, as it should
            attacker.sock.settimeout(5)
            try:
                while attacker.sock.recv(65536):
                    pass
            except OSError:
                pass
            attacker.close()
            t0 = time.monotonic()
            station.request(K.STATUS, 1, "Available", None)
            assert time.monotonic() - t0 < 0.5
            assert time.monotonic() - started < 10
        hub.stop()
        assert "framing error" in hub.log() and "limit is 8192" in hub.log()


def _low_nofile(n):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    return apply


def test_300_idle_sockets_under_a_256_descriptor_limit_leave_logins_http_and_open_links_working(tmp_path):
    import socket

    from test_http_api import HttpHub
    from transport import kinds as K

    hub = HttpHub(tmp_path)
    hub.preexec_fn = _low_nofile(256)
    with hub:
        key = hub.add_station("CP-1")
        token = hub.add_vehicle("V-1")
        assert "open-file limit (RLIMIT_NOFILE) 256" in hub.log()
        idle = []
        deadline = time.monotonic() + 30
        with HubClient(hub.url, "station", "CP-1", key, timeout=5) as station:
            try:
                for _ in range(300):
                    assert time.monotonic() < deadline, "opening the idle sockets took too long"
                    idle.append(socket.create_connection(("127.0.0.1", hub.port), timeout=5))
                # The station that was already in keeps being served...
                station.request(K.STATUS, 1, "Available", None)
                # ... a new, legitimate login gets in, and so does HTTP.
                with HubClient(hub.url, "vehicle", "V-1", token, timeout=5) as v:
                    assert v.session.authenticated
                assert isinstance(hub.get("/api/stations"), (list, dict))
            finally:
                for s in idle:
                    s.close()
        hub.stop()
        log = hub.log()
    assert len(log) < 200_000, "the log stays small (%d bytes)" % len(log)
    assert "Traceback" not in log


def test_a_flood_of_accept_errors_is_logged_once_per_interval_with_a_count(caplog):
    import errno
    import logging

    from hub.io.fdlimits import AcceptErrorLog

    now = [0.0]
    handler = AcceptErrorLog(loop=None, every_s=10.0, clock=lambda: now[0])
    exc = OSError(errno.EMFILE, "Too many open files")
    with caplog.at_level(logging.ERROR, logger="hub.io.fdlimits"):
        for i in range(5000):
            now[0] = i * 0.004  # 5000 errors in 20 s
            handler(None, {"message": "socket.accept() out of system resource", "exception": exc})
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "2499 times" in lines[1] or "2500 times" in lines[1], lines
    assert all(r.exc_info is None for r in caplog.records), "no traceback per error"


def _http_from(source, port, path, keep=True):
    """A raw HTTP/1.1 GET from loopback address `source`; returns (socket, status line)."""
    import socket

    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (path.encode(), b"" if keep else b"Connection: close\r\n")
    )
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head.split(b"\r\n", 1)[0].decode()


def test_one_address_holding_keep_alive_connections_and_event_streams_does_not_lock_out_the_dashboard(tmp_path):
    from test_http_api import HttpHub, SseClient

    with HttpHub(tmp_path) as hub:
        held = []
        deadline = time.monotonic() + 30
        try:
            statuses = []
            for _ in range(256):
                assert time.monotonic() < deadline
                s, status = _http_from("127.0.0.2", hub.http_port, "/api/stations")
                held.append(s)
                statuses.append(status)
            assert statuses[0].endswith("200 OK") and statuses[-1].endswith("503 Service Unavailable"), statuses[-1]
            sse = []
            for _ in range(20):
                s, status = _http_from("127.0.0.3", hub.http_port, "/api/events")
                held.append(s)
                sse.append(status)
            assert sse[0].endswith("200 OK") and sse[-1].endswith("503 Service Unavailable")
            # Another address still gets its page and its event stream at once.
            t0 = time.monotonic()
            assert isinstance(hub.get("/api/stations", timeout=2), (list, dict))
            events = SseClient(hub.http_port)
            assert events.status == 200 and time.monotonic() - t0 < 2
            events.conn.close()
        finally:
            for s in held:
                s.close()


def test_an_idle_keep_alive_connection_is_closed_within_seconds(tmp_path):
    from test_http_api import HttpHub

    with HttpHub(tmp_path) as hub:
        s, status = _http_from("127.0.0.2", hub.http_port, "/api/stations")
        assert status.endswith("200 OK")
        t0 = time.monotonic()
        s.settimeout(15)
        try:
            while s.recv(65536):  # the rest of the answer, then the server's close
                pass
        finally:
            s.close()
        assert 3 < time.monotonic() - t0 < 10, "closed after %.1f s idle" % (time.monotonic() - t0)


def test_closed_event_streams_free_their_slots_at_once_not_at_the_next_keepalive(tmp_path):
    from test_http_api import HttpHub, SseClient

    with HttpHub(tmp_path) as hub:
        for i in range(64):  # connect and close, from many addresses so the per-address cap is not the limit
            s, status = _http_from("127.0.%d.%d" % (1 + i // 8, 10 + i % 8), hub.http_port, "/api/events")
            assert status.endswith("200 OK"), (i, status)
            s.close()

        def slot_free():
            events = SseClient(hub.http_port)
            events.conn.close()
            return events.status == 200

        # the keepalive is 15 s: a slot freed only then would fail here
        wait_for(slot_free, 3, "an event-stream slot free within 3 s of its clients leaving")


def test_wire_text_escapes_every_line_break_and_control_character_and_caps_the_length():
    from hub.io.logsafe import wire_text

    for evil in ("a\nb", "a\rb", "a\x1b[31mb", "a\u2028b", "a\u0085b", "a\x00b"):
        out = wire_text(evil)
        assert out.isprintable() and out.startswith("a") and out.endswith("b"), (evil, out)
    long = wire_text("x" * 10000)
    assert len(long) < 250 and long.endswith("(10000 chars)")


def test_when_keep_alive_connections_from_many_addresses_fill_the_server_the_longest_idle_makes_room(tmp_path):
    from test_http_api import HttpHub

    with HttpHub(tmp_path) as hub:
        held = []
        deadline = time.monotonic() + 30
        try:
            for i in range(256):  # 8 addresses x 32: each within its own cap, together the whole server
                assert time.monotonic() < deadline
                s, status = _http_from("127.0.1.%d" % (1 + i // 32), hub.http_port, "/api/stations")
                assert status.endswith("200 OK"), (i, status)
                held.append(s)
            t0 = time.monotonic()
            s, status = _http_from("127.0.0.1", hub.http_port, "/api/stations")
            s.close()
            assert status.endswith("200 OK") and time.monotonic() - t0 < 2, status
        finally:
            for s in held:
                s.close()

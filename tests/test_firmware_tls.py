"""TLS between charge points and the hub (`evhub serve --tls-cert/--tls-key`): the CPython runner and
`evhub chargepoint --hub tls://`, and the MicroPython firmware on the unix port (its ssl module,
mbedTLS), against the real hub with the committed test certificate. An untrusted hub gets nothing."""

import json
import logging
import os
import subprocess
import ssl
import sys
import threading

import pytest

from firmware.runner import Fleet, run_chargepoint
from charging import charge_to_complete
from fw_fakes import FAKE_NETWORK
from fw_mp import REPO, micropython, run
from hubproc import HubProcess, evhub
from test_firmware_micropython import Firmware as _Firmware, bundle_dir  # noqa: F401 (a fixture)
from tools import cli
from tools.client.hubclient import HubClient
from waiting import thread as _thread, wait_for as _wait

TLS_DIR = os.path.join(os.path.dirname(__file__), "data", "tls")
CERT = os.path.join(TLS_DIR, "hub.crt")
KEY = os.path.join(TLS_DIR, "hub.key")
OTHER = os.path.join(TLS_DIR, "other.crt")  # a CA that did not sign hub.crt
MP_HEAP = "256K"  # the .mpy bundle (~140 KB with code in RAM) plus mbedTLS's ~25 KB per connection


@pytest.fixture
def tls_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("EVHUB_TLS_CA", CERT)  # for the vehicle and operator clients of the tests
    with HubProcess(tmp_path, extra_args=["--tls-cert", CERT, "--tls-key", KEY]) as hub:
        hub.tls_url = "tls://127.0.0.1:%d" % hub.port
        yield hub


def _status(hub, station_id):
    res = evhub(
        "stations", "list", "--hub", hub.tls_url, "--db", hub.db, "--json", env={"EVHUB_TLS_CA": CERT}, check=False
    )
    if res.returncode != 0:
        return None
    return {s["id"]: s["status"] for s in json.loads(res.stdout)}.get(station_id)


# --- CPython: the runner and `evhub chargepoint` -------------------------------------------------------


def test_evhub_chargepoint_over_tls_boots_and_shows_available(tls_hub, tmp_path):
    key = tls_hub.add_station("CP-T1")
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("EVHUB_TLS_CA", None)  # the CA comes from --tls-ca
    log = open(tmp_path / "cp.out", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "chargepoint",
            "--id",
            "CP-T1",
            "--key",
            key,
            "--hub",
            tls_hub.tls_url,
            "--tls-ca",
            CERT,
            "--journal",
            "none",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: _status(tls_hub, "CP-T1") == "Available", 20, "CP-T1 Available over TLS")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    out = (tmp_path / "cp.out").read_text()
    assert "with TLSv1." in out and "Traceback" not in out, out
    assert "station CP-T1: boot" in tls_hub.log()


def test_a_runner_station_charges_a_vehicle_over_tls(tls_hub, tmp_path):
    key = tls_hub.add_station("CP-T2")
    token = tls_hub.add_vehicle("V-T2")
    cfg = {
        "id": "CP-T2",
        "key": key,
        "hub": {"host": "127.0.0.1", "port": tls_hub.port, "tls": True, "ca": CERT},
        "meter_interval_s": 1,
        "finishing_s": 1,
    }
    stop = threading.Event()
    t = _thread(run_chargepoint, cfg, stop_event=stop, journal=str(tmp_path / "t2.journal"))
    try:
        _wait(lambda: "station CP-T2: boot" in tls_hub.log(), 15, "BOOT over TLS")
        with HubClient(tls_hub.tls_url, "vehicle", "V-T2", token) as v:
            done = charge_to_complete(v, "CP-T2")
    finally:
        stop.set()
        t.join(timeout=10)
    assert done is not None and done.fields[4] == "Complete" and done.fields[2] == 35


@pytest.mark.parametrize("ca", [OTHER, ssl.get_default_verify_paths().cafile], ids=["other-ca", "system-store"])
def test_a_runner_station_refuses_a_hub_whose_certificate_it_does_not_trust(tls_hub, caplog, ca):
    key = tls_hub.add_station("CP-T3")
    cfg = {"id": "CP-T3", "key": key, "hub": {"host": "127.0.0.1", "port": tls_hub.port, "tls": True, "ca": ca}}
    fleet = Fleet([cfg])
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="firmware.runner")
    t = _thread(fleet.run, stop)
    try:
        _wait(lambda: fleet.devices[0].cp.link.failures >= 2, 15, "two refused attempts")
    finally:
        stop.set()
        t.join(timeout=10)
    assert "a certificate we do not trust" in caplog.text and "next attempt" in caplog.text, caplog.text
    assert not fleet.devices[0].cp.booted
    assert "station CP-T3: boot" not in tls_hub.log() and "station CP-T3: authenticated" not in tls_hub.log()


def test_a_plaintext_station_gets_nowhere_on_a_tls_listener(tls_hub):
    key = tls_hub.add_station("CP-T4")
    fleet = Fleet([{"id": "CP-T4", "key": key, "hub": {"host": "127.0.0.1", "port": tls_hub.port}}])
    stop = threading.Event()
    t = _thread(fleet.run, stop)
    try:
        _wait(lambda: fleet.devices[0].cp.link.failures >= 1, 20, "a failed attempt")
    finally:
        stop.set()
        t.join(timeout=10)
    assert not fleet.devices[0].cp.booted and tls_hub.proc.poll() is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--hub", "tcp://127.0.0.1:7878", "--tls-ca", CERT], "--tls-ca is for a tls://HOST:PORT hub"),
        (["--hub", "tls://127.0.0.1:7878", "--tls-ca", "/nonexistent/ca.pem"], "does not exist"),
    ],
)
def test_bad_tls_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    assert cli.main(["chargepoint", "--id", "CP-1", "--key", "k", "--journal", "none"] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_tls_ca_comes_from_the_environment_and_the_flag_wins(monkeypatch, tmp_path):
    from tools.commands.chargepoint import build_config

    class Args:
        config = None
        id = "CP-1"
        key = "k"
        lat = lon = connectors = max_kw = offline_policy = None
        serial = None
        baud = None
        hub = "tls://10.1.2.3:9000"
        tls_ca = None

    monkeypatch.delenv("EVHUB_TLS_CA", raising=False)
    # no CA given: the system's trust store, named as a file (a station config always names its CA)
    assert build_config(Args())["hub"]["ca"] == ssl.get_default_verify_paths().cafile
    monkeypatch.setenv("EVHUB_TLS_CA", CERT)
    assert build_config(Args())["hub"] == {"host": "10.1.2.3", "port": 9000, "tls": True, "ca": CERT}
    Args.tls_ca = OTHER
    assert build_config(Args())["hub"]["ca"] == OTHER
    # a config file's hub (with TLS) is used when no --hub is given
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"hub": {"host": "10.9.9.9", "port": 7000, "tls": True, "ca": CERT}}))
    Args.config, Args.hub, Args.tls_ca = str(cfg), None, None
    assert build_config(Args())["hub"] == {"host": "10.9.9.9", "port": 7000, "tls": True, "ca": CERT}


# --- MicroPython: the firmware on the unix port, its ssl module -------------------------------------------


def Firmware(bundle, tmp_path, config):
    """The firmware process of test_firmware_micropython, with the port's ssl and a TLS-sized heap."""
    config.setdefault("debug", False)
    return _Firmware(bundle, tmp_path, config, heapsize=MP_HEAP, frozen=True)


def test_the_micropython_firmware_boots_over_tls_and_the_hub_shows_it_available(tls_hub, tmp_path, bundle_dir):
    key = tls_hub.add_station("CP-MT")
    token = tls_hub.add_vehicle("V-MT")
    fw = Firmware(
        bundle_dir,
        tmp_path,
        {
            "id": "CP-MT",
            "key": key,
            "meter_interval_s": 1,
            "finishing_s": 1,
            "hub": {"host": "127.0.0.1", "port": tls_hub.port, "tls": True, "ca": CERT},
        },
    )
    try:
        _wait(lambda: _status(tls_hub, "CP-MT") == "Available", 30, "CP-MT Available over TLS")
        with HubClient(tls_hub.tls_url, "vehicle", "V-MT", token) as v:  # and a charge, both ways over TLS
            done = charge_to_complete(v, "CP-MT")
    finally:
        out = fw.stop()
    assert done is not None and done.fields[4] == "Complete" and done.fields[2] == 35, out
    assert "link tls 127.0.0.1:%d" % tls_hub.port in out and "hub welcomed us" in out, out
    assert "Traceback" not in out and "ERROR" not in out and "not checked" not in out, out


def test_the_micropython_firmware_refuses_a_hub_its_ca_did_not_sign(tls_hub, tmp_path, bundle_dir):
    key = tls_hub.add_station("CP-MX")
    fw = Firmware(
        bundle_dir,
        tmp_path,
        {"id": "CP-MX", "key": key, "hub": {"host": "127.0.0.1", "port": tls_hub.port, "tls": True, "ca": OTHER}},
    )
    try:
        _wait(lambda: fw.output().count("link down (TLS:") >= 2, 20, "two refused TLS handshakes")
    finally:
        out = fw.stop()
    assert "ERROR CP-MX: hub link: TLS: The certificate is not correctly signed by the trusted CA" in out, out
    assert "Traceback" not in out, out
    assert "station CP-MX: authenticated" not in tls_hub.log() and "hub welcomed us" not in out


def test_a_station_config_with_tls_but_no_ca_is_refused_unless_it_says_tls_insecure():
    from firmware import config

    hub = {"host": "127.0.0.1", "port": 7878, "tls": True}
    with pytest.raises(ValueError, match="tls_insecure"):
        config.normalize({"id": "CP-1", "key": "k", "hub": hub})
    assert (
        config.normalize({"id": "CP-1", "key": "k", "hub": dict(hub, tls_insecure=True)})["hub"]["tls_insecure"] is True
    )


def test_the_micropython_firmware_without_a_ca_encrypts_but_warns_that_the_hub_is_not_checked(
    tls_hub, tmp_path, bundle_dir
):
    key = tls_hub.add_station("CP-MN")
    fw = Firmware(
        bundle_dir,
        tmp_path,
        {
            "id": "CP-MN",
            "key": key,
            "hub": {"host": "127.0.0.1", "port": tls_hub.port, "tls": True, "tls_insecure": True},
        },
    )
    try:
        _wait(lambda: "station CP-MN: boot" in tls_hub.log(), 20, "BOOT over unverified TLS")
    finally:
        out = fw.stop()
    assert "WARNING CP-MN: hub TLS without a ca: encrypted, but the hub's certificate is not checked" in out, out


def test_the_board_reads_a_pem_ca_bundle_as_der_for_mbedtls(tmp_path):
    """The unix port's mbedTLS parses no PEM (ValueError: invalid cert): firmware/tls.py der_certs converts, one
    DER per certificate of a bundle, and passes DER through."""
    with open(CERT, "rb") as f:
        pem = f.read()
    with open(OTHER, "rb") as f:
        other = f.read()
    script = tmp_path / "der.py"
    script.write_text(
        "import ssl\nfrom firmware import tls\n"
        "ders = tls.der_certs(%r)\nprint('N', len(ders))\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "for d in ders:\n    ctx.load_verify_locations(cadata=d)\nprint('LOADED')\n"
        "print('DER', tls.der_certs(b'0\\x82') == [b'0\\x82'])\n" % (pem + other,)
    )
    res = run(str(script), "256K", [".frozen", REPO, os.path.join(REPO, "firmware", "micropython")], cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "N 2" in res.stdout and "LOADED" in res.stdout and "DER True" in res.stdout, res.stdout


FAKE_NTPTIME = """
CALLS = [0]
FAIL = %r


def settime():
    CALLS[0] += 1
    if FAIL:
        raise OSError(110)  # ETIMEDOUT: no NTP server answers
"""

BOARD_SCRIPT = """
import json
import board
import ntptime
from firmware import tls

tls.RTC_MIN_YEAR = 3000  # the unix port's clock is set: make the board believe it is not
cfg = json.load(open(%(cfg)r))
board.Board(cfg).run(%(seconds)r)
print("NTP CALLS", ntptime.CALLS[0])
"""


@pytest.mark.parametrize("ntp_fails", [False, True])
def test_a_board_whose_clock_was_never_set_asks_ntp_before_a_tls_connect(tls_hub, tmp_path, bundle_dir, ntp_fails):
    """mbedTLS checks the hub certificate's dates against the RTC, which a board starts at 2000-01-01.
    (The unix port's clock is right, so the handshake succeeds either way here.)"""
    key = tls_hub.add_station("CP-NTP")
    fake = tmp_path / "fakehw"
    fake.mkdir()
    (fake / "network.py").write_text(FAKE_NETWORK)
    (fake / "ntptime.py").write_text(FAKE_NTPTIME % ntp_fails)
    cfg = {
        "id": "CP-NTP",
        "key": key,
        "wifi": {"ssid": "depot", "password": "secret123"},
        "hub": {"host": "127.0.0.1", "port": tls_hub.port, "tls": True, "ca": CERT},
        "journal": str(tmp_path / "ntp.journal"),
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    script = tmp_path / "board_main.py"
    script.write_text(BOARD_SCRIPT % {"cfg": str(tmp_path / "cfg.json"), "seconds": 4})
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", str(fake), bundle_dir]))
    res = subprocess.run(
        [micropython(), "-X", "heapsize=" + MP_HEAP, str(script)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "NTP CALLS 1" in out and "station CP-NTP: boot" in tls_hub.log(), out
    if ntp_fails:
        assert "WARNING CP-NTP: clock not set (" in out and "NTP failed: [Errno 110]" in out, out
    else:
        assert "INFO CP-NTP: clock set from NTP for TLS: 20" in out, out

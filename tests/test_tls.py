"""Optional TLS on the hub's TCP listener: clients use tls://, plaintext and untrusted peers fail clearly."""

import os

import pytest

from hubproc import HubProcess, evhub
from tools.client.hubclient import HubClient, HubError
from transport import kinds as K
from waiting import wait_for

TLS_DIR = os.path.join(os.path.dirname(__file__), "data", "tls")
CERT = os.path.join(TLS_DIR, "hub.crt")
KEY = os.path.join(TLS_DIR, "hub.key")


@pytest.fixture
def tls_hub(tmp_path):
    with HubProcess(tmp_path, extra_args=["--tls-cert", CERT, "--tls-key", KEY]) as hub:
        yield hub


def test_a_vehicle_talks_to_a_tls_hub_over_tls_url(tls_hub, monkeypatch):
    monkeypatch.setenv("EVHUB_TLS_CA", CERT)
    tls_hub.add_station("CP-1")
    token = tls_hub.add_vehicle("V-1")
    url = "tls://127.0.0.1:%d" % tls_hub.port
    with HubClient(url, "vehicle", "V-1", token) as v:
        assert v.sock.version().startswith("TLS"), "the link is a TLS socket, not plaintext"

        def nearest_ids():  # provisioned while running: the hub picks the station up within a tick
            _k, (found,) = v.request(K.NEAREST, -12.26, -38.96, 3, None)
            return [s["id"] for s in found]

        assert wait_for(nearest_ids, 5, "CP-1 in a NEAREST answer over TLS") == ["CP-1"]


def test_the_operator_cli_lists_stations_over_tls(tls_hub):
    tls_hub.add_station("CP-1")

    def listed():  # provisioned while running: the hub picks it up within a tick
        res = evhub(
            "stations",
            "list",
            "--hub",
            "tls://127.0.0.1:%d" % tls_hub.port,
            "--db",
            tls_hub.db,
            "--json",
            env={"EVHUB_TLS_CA": CERT},
        )
        return '"id": "CP-1"' in res.stdout

    wait_for(listed, 5, "CP-1 in the operator's listing over TLS")


def test_an_untrusted_certificate_is_refused_with_a_clear_error(tls_hub, monkeypatch):
    monkeypatch.delenv("EVHUB_TLS_CA", raising=False)
    token = tls_hub.add_vehicle("V-1")
    with pytest.raises(HubError) as exc:
        HubClient("tls://127.0.0.1:%d" % tls_hub.port, "vehicle", "V-1", token, timeout=5).connect()
    assert "certificate we do not trust" in str(exc.value)


def test_a_plaintext_client_gets_nowhere_on_a_tls_listener_and_the_hub_stays_up(tls_hub):
    token = tls_hub.add_vehicle("V-1")
    with pytest.raises(HubError):
        HubClient(tls_hub.url, "vehicle", "V-1", token, timeout=3).connect()
    assert tls_hub.proc.poll() is None


def test_serve_refuses_a_missing_certificate_file(tmp_path):
    res = evhub(
        "serve",
        "--listen",
        "tcp://127.0.0.1:0",
        "--db",
        str(tmp_path / "h.db"),
        "--tls-cert",
        str(tmp_path / "nope.crt"),
        check=False,
    )
    assert res.returncode == 2 and "cannot load the TLS certificate" in res.stderr and "Traceback" not in res.stderr

"""The HTTP API of a real hub process (`evhub serve --http`), spoken to over real HTTP."""

import contextlib
import http.client
import json
import re
import time
import types

import pytest

from hubproc import HubProcess
from tools.client.hubclient import HubClient
from transport import kinds as K
from waiting import wait_for

TOKEN = "s3cret-operator-token"
HTTP_RE = re.compile(r"http api listening on http://[\d.]+:(\d+)")


class HttpHub(HubProcess):
    """The real hub with its HTTP API on a free loopback port."""

    def __init__(self, tmp_path, token=TOKEN, extra_args=()):
        args = ["--http", "127.0.0.1:0"] + (["--http-token", token] if token else []) + list(extra_args)
        super().__init__(tmp_path, extra_args=args)
        self.http_port = None

    def start(self, timeout=20):
        super().start(timeout)
        self.http_port = int(HTTP_RE.findall(self.log())[-1])
        return self

    def request(self, method, path, body=None, token=None, headers=None, timeout=10):
        """(status, headers dict, JSON body or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("Content-Type", "")
            parsed = json.loads(data) if ctype.startswith("application/json") else data.decode()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed
        finally:
            conn.close()

    def get(self, path, **kw):
        status, _h, body = self.request("GET", path, **kw)
        assert status == 200, (path, status, body)
        return body

    def wait_for(self, path, predicate, timeout=5):
        """GET `path` until `predicate(body)` holds; returns that body."""
        last = []

        def ready():
            last[:] = [self.get(path)]
            return predicate(last[0])

        wait_for(ready, timeout, "GET %s to satisfy the condition" % path)
        return last[0]


class SseClient:
    """A real HTTP client reading /api/events: next() returns (id, type, data)."""

    def __init__(self, port, path="/api/events", headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", path, headers=dict({"Accept": "text/event-stream"}, **(headers or {})))
        self.sock = self.conn.sock  # http.client lets go of it for a Connection: close response
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.seen = []

    def next(self, kinds=None, timeout=5, where=None):
        deadline = time.monotonic() + timeout
        fields = {}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no %s event within %s s; saw %r" % (kinds, timeout, self.seen[-10:]))
            self.sock.settimeout(remaining)
            line = self.resp.fp.readline()
            if not line:
                raise AssertionError("the event stream closed; saw %r" % self.seen[-10:])
            line = line.decode().rstrip("\n")
            if line:
                if not line.startswith(":"):
                    name, _sep, value = line.partition(": ")
                    fields[name] = value
                continue
            if "data" not in fields:
                fields = {}
                continue
            event = (int(fields["id"]) if "id" in fields else None, fields.get("event"), json.loads(fields["data"]))
            fields = {}
            self.seen.append(event)
            if (kinds is None or event[1] in kinds) and (where is None or where(event[2])):
                return event

    def close(self):
        self.resp.close()
        self.sock.close()


def boot_station(hub, station_id, key, connectors=1, lat=-12.2664, lon=-38.9663):
    """A connected, booted station client with every connector Available (use it in a `with`)."""
    c = HubClient(hub.url, "station", station_id, key).connect()
    c.request(K.BOOT, lat, lon, connectors, 22.0, "test-fw")
    for n in range(1, connectors + 1):
        c.request(K.STATUS, n, "Available", None)
    return contextlib.closing(c)  # HubClient's own __enter__ would connect a second time


@pytest.fixture
def hub(tmp_path):
    with HttpHub(tmp_path) as h:
        yield h
    assert "Traceback" not in h.log(), h.log()


def test_stations_are_listed_with_status_free_in_min_connectors_and_heartbeat(hub):
    key = hub.add_station("CP-1", connectors=2)
    hub.add_station("CP-2", lat=-12.30, lon=-38.90)
    hub.wait_for("/api/stations", lambda b: len(b["stations"]) == 2)
    with boot_station(hub, "CP-1", key, connectors=2):
        body = hub.wait_for("/api/stations", lambda b: b["stations"][0]["status"] == "Available")
        cp1, cp2 = body["stations"]
        assert (cp1["id"], cp1["free_in_min"], cp1["connectors"], cp1["online"]) == ("CP-1", 0, 2, True)
        assert cp1["connector_status"] == {"1": "Available", "2": "Available"}
        assert abs(cp1["last_heartbeat"] - time.time()) < 10 and cp1["lat"] == -12.2664
        assert (cp2["status"], cp2["online"], cp2["last_heartbeat"]) == ("Offline", False, None)
        only = hub.get("/api/stations?status=Offline")["stations"]
        assert [s["id"] for s in only] == ["CP-2"]


def test_a_station_shows_its_sessions_with_live_energy_and_its_reservations(hub):
    key = hub.add_station("CP-1", connectors=2)
    start = int(time.time()) + 3600
    with boot_station(hub, "CP-1", key, connectors=2) as st:
        status, _h, made = hub.request(
            "POST",
            "/api/reservations",
            token=TOKEN,
            body={"station_id": "CP-1", "vehicle_id": "V-9", "start": start, "duration_min": 30},
        )
        assert status == 201, made
        now = int(time.time())
        st.request(K.STATUS, 1, "Charging", None)
        st.request(K.SESSION_START, "S-1", 1, "V-1", None, 0, now)
        st.send(K.METER, 1, "S-1", 1500, 11000, now + 5)
        detail = hub.wait_for(
            "/api/stations/CP-1", lambda b: b["sessions"] and b["sessions"][0].get("energy_wh") == 1500
        )
        assert detail["connector_status"] == {"1": "Charging", "2": "Available"}
        assert [r["reservation_id"] for r in detail["reservations"]] == [made["reservation"]["reservation_id"]]
        sessions = hub.get("/api/stations/CP-1/sessions")["sessions"]
        assert sessions[0]["session_id"] == "S-1" and sessions[0]["live"] and sessions[0]["energy_wh"] == 1500
        st.request(K.SESSION_END, "S-1", 1, "V-1", None, 4200, now, now + 60, "Complete")
        done = hub.wait_for("/api/stations/CP-1/sessions", lambda b: b["sessions"][0]["ended"] is not None)
        assert done["sessions"][0]["energy_wh"] == 4200 and not done["sessions"][0]["live"]
        assert hub.get("/api/sessions")["sessions"] == []
        res = hub.get("/api/stations/CP-1/reservations")["reservations"]
        assert [(r["vehicle_id"], r["start"], r["end"]) for r in res] == [("V-9", start, start + 1800)]


def test_reservations_are_created_listed_and_cancelled_with_the_token(hub):
    key = hub.add_station("CP-1")
    with boot_station(hub, "CP-1", key) as st:
        status, headers, made = hub.request(
            "POST",
            "/api/reservations",
            token=TOKEN,
            body={
                "station_id": "CP-1",
                "vehicle_id": "V-1",
                "start": "2099-01-01T10:00:00Z",
                "end": "2099-01-01T10:40:00Z",
            },
        )
        assert status == 400 and "within" in made["error"]  # 30 days ahead at most
        start = int(time.time()) + 600
        status, headers, made = hub.request(
            "POST",
            "/api/reservations",
            token=TOKEN,
            body={"station_id": "CP-1", "vehicle_id": "V-1", "start": start, "end": start + 2400},
        )
        assert status == 201, made
        r = made["reservation"]
        assert headers["location"] == "/api/reservations/%d" % r["reservation_id"]
        assert (r["station_id"], r["vehicle_id"], r["state"], r["connector"]) == ("CP-1", "V-1", "confirmed", 1)
        assert st.wait_event((K.RESERVE_NOW,), timeout=5).fields[0] == r["reservation_id"]  # the station is told
        listed = hub.get("/api/reservations")["reservations"]
        assert [x["reservation_id"] for x in listed] == [r["reservation_id"]]
        assert hub.get("/api/reservations?vehicle_id=V-2")["reservations"] == []
        status, _h, clash = hub.request(
            "POST",
            "/api/reservations",
            token=TOKEN,
            body={"station_id": "CP-1", "vehicle_id": "V-2", "start": start + 60, "duration_min": 20},
        )
        assert status == 409 and "conflict" in clash["error"] and clash["alternatives"]
        status, _h, gone = hub.request("DELETE", "/api/reservations/%d" % r["reservation_id"], token=TOKEN)
        assert status == 200 and gone["reservation"]["state"] == "cancelled"
        assert st.wait_event((K.CANCEL_RESERVATION,), timeout=5).fields[0] == r["reservation_id"]
        status, _h, again = hub.request("DELETE", "/api/reservations/%d" % r["reservation_id"], token=TOKEN)
        assert status == 409 and "already ended (cancelled)" in again["error"]
        assert hub.get("/api/reservations/%d" % r["reservation_id"])["reservation"]["state"] == "cancelled"
        assert [x["state"] for x in hub.get("/api/reservations?state=all")["reservations"]] == ["cancelled"]


def test_writes_need_the_right_token_and_reads_are_open_on_loopback(hub):
    hub.add_station("CP-1")
    body = {"station_id": "CP-1", "vehicle_id": "V-1", "duration_min": 30}
    for token, expected in ((None, "needs a token"), ("wrong", "not valid")):
        status, headers, err = hub.request("POST", "/api/reservations", body=body, token=token)
        assert status == 401 and expected in err["error"] and headers["www-authenticate"].startswith("Bearer")
    status, _h, err = hub.request("DELETE", "/api/reservations/1")
    assert status == 401
    assert hub.request("GET", "/api/stations")[0] == 200  # no token needed on loopback
    assert hub.request("GET", "/api/stations", token="wrong")[0] == 401  # but a wrong one is refused
    status, _h, err = hub.request("GET", "/api/stations", headers={"Host": "evil.example:8080"})
    assert status == 403 and "loopback Host" in err["error"]  # DNS-rebinding guard
    assert hub.request("GET", "/api/stations", headers={"Host": "evil.example"}, token=TOKEN)[0] == 200


def test_a_hub_without_a_token_refuses_http_writes(tmp_path):
    with HttpHub(tmp_path, token=None) as h:
        h.add_station("CP-1")
        status, _h, err = h.request(
            "POST", "/api/reservations", body={"station_id": "CP-1", "vehicle_id": "V", "duration_min": 5}
        )
        assert status == 403 and "--http-token" in err["error"]


BAD_REQUESTS = [
    ("POST", "/api/reservations", b"{not json", 400, "not valid JSON"),
    ("POST", "/api/reservations", b"[1, 2]", 400, "JSON object"),
    ("POST", "/api/reservations", {"station_id": 7, "vehicle_id": "V", "duration_min": 5}, 400, "station_id"),
    ("POST", "/api/reservations", {"station_id": "CP-1", "vehicle_id": "V", "duration_min": "5"}, 400, "duration_min"),
    ("POST", "/api/reservations", {"station_id": "CP-1", "vehicle_id": "V", "duration_min": True}, 400, "duration_min"),
    (
        "POST",
        "/api/reservations",
        {"station_id": "CP-1", "vehicle_id": "V", "start": "14:00", "duration_min": 5},
        400,
        "ISO 8601",
    ),
    (
        "POST",
        "/api/reservations",
        {"station_id": "CP-1", "vehicle_id": "V", "start": "2030-01-01T14:00:00", "duration_min": 5},
        400,
        "UTC offset",
    ),
    (
        "POST",
        "/api/reservations",
        {"station_id": "CP-1", "vehicle_id": "V", "start": 1.5, "duration_min": 5},
        400,
        "epoch",
    ),
    ("POST", "/api/reservations", {"station_id": "CP-1", "vehicle_id": "V"}, 400, "end or duration_min"),
    (
        "POST",
        "/api/reservations",
        {"station_id": "CP-1", "vehicle_id": "V", "end": 5, "duration_min": 5},
        400,
        "not both",
    ),
    (
        "POST",
        "/api/reservations",
        {"station_id": "CP-1", "vehicle_id": "V", "start": 2000000000, "end": 1999999999},
        400,
        "after start",
    ),
    (
        "POST",
        "/api/reservations",
        {"station_id": "CP-1", "vehicle_id": "V", "duration_min": 5, "colour": "red"},
        400,
        "unknown field",
    ),
    (
        "POST",
        "/api/reservations",
        {"station_id": "CP-NOPE", "vehicle_id": "V", "duration_min": 5},
        404,
        "no station CP-NOPE",
    ),
    ("DELETE", "/api/reservations/abc", None, 400, "positive integer"),
    ("DELETE", "/api/reservations/99999999999999999999", None, 400, "positive integer"),
    ("DELETE", "/api/reservations/424242", None, 404, "no reservation 424242"),
    ("GET", "/api/reservations/0", None, 400, "positive integer"),
    ("GET", "/api/reservations?state=lost", None, 400, "state must be"),
    ("GET", "/api/reservations?limit=abc", None, 400, "limit"),
    ("GET", "/api/stations?status=Sleeping", None, 400, "status must be"),
    ("GET", "/api/stations/CP-NOPE", None, 404, "no station"),
    ("GET", "/api/stations/CP-NOPE/sessions", None, 404, "no station"),
    ("GET", "/api/stations/CP-1/sessions?limit=0", None, 400, "limit"),
    ("GET", "/api/vehicles/V-NOPE", None, 404, "no vehicle"),
    ("GET", "/api/events?types=weather", None, 400, "unknown event types"),
    ("GET", "/api/nothing-here", None, 404, "no such endpoint"),
    ("PUT", "/api/stations", None, 405, "not allowed"),
    ("GET", "/static/../../etc/passwd", None, 404, "no such"),
]


def test_bad_requests_get_json_errors_with_the_right_status_never_a_traceback(hub):
    hub.add_station("CP-1")
    hub.wait_for("/api/stations", lambda b: b["stations"])
    for method, path, body, expected, text in BAD_REQUESTS:
        status, headers, err = hub.request(method, path, body=body, token=TOKEN)
        assert (status, headers["content-type"]) == (expected, "application/json"), (method, path, body, status, err)
        assert text in err["error"], (method, path, body, err)
    status, _h, err = hub.request(
        "POST",
        "/api/reservations",
        body="station=CP-1",
        token=TOKEN,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415
    status, _h, err = hub.request(
        "POST", "/api/reservations", body=b"x" * 70000, token=TOKEN, headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert hub.get("/api/health")["status"] == "ok"  # still serving


def test_vehicles_are_listed_with_their_last_position(hub):
    token = hub.add_vehicle("V-1")
    with HubClient(hub.url, "vehicle", "V-1", token) as v:
        sent = int(time.time())
        v.send(K.POSITION, -12.25, -38.95, sent, 0.42)
        body = hub.wait_for("/api/vehicles", lambda b: b["vehicles"] and b["vehicles"][0]["lat"] is not None)
        assert body["vehicles"] == [
            {"id": "V-1", "lat": -12.25, "lon": -38.95, "time": sent, "soc": 0.42, "connected": True}
        ]
        assert hub.get("/api/vehicles/V-1")["lat"] == -12.25
    hub.add_vehicle("V-2")
    assert hub.get("/api/vehicles/V-2")["lat"] is None  # provisioned, never reported


def _parse_prometheus(text):
    """{name{labels}: value}; asserts the exposition format (HELP/TYPE before samples, valid lines)."""
    samples, typed = {}, set()
    sample_re = re.compile(
        r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (\S+)$'
    )
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _h, _t, name, kind = line.split(" ")
            assert kind in ("counter", "gauge"), line
            typed.add(name)
        elif line.startswith("# HELP ") or not line:
            continue
        else:
            m = sample_re.match(line)
            assert m, "not a sample line: %r" % line
            assert m.group(1) in typed, "sample before its TYPE: %r" % line
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    return samples


def test_health_and_prometheus_metrics_count_links_messages_reservations_sessions_and_energy(hub):
    key = hub.add_station("CP-1")
    with boot_station(hub, "CP-1", key) as st:
        now = int(time.time())
        st.request(K.SESSION_START, "S-1", 1, "V-1", None, 0, now)
        st.request(K.SESSION_END, "S-1", 1, "V-1", None, 2500, now, now + 30, "Complete")
        status, _h, _b = hub.request(
            "POST",
            "/api/reservations",
            token=TOKEN,
            body={"station_id": "CP-1", "vehicle_id": "V-1", "start": now + 3600, "duration_min": 30},
        )
        assert status == 201
        health = hub.get("/api/health")
        assert health["status"] == "ok" and health["links"] == {"station": 1} and health["stations_online"] == 1
        assert health["counters"]["messages_in"] >= 4
        status, headers, text = hub.request("GET", "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        m = _parse_prometheus(text)
        assert m['evhub_links{role="station"}'] == 1
        assert m["evhub_messages_in_total"] >= 4 and m['evhub_frames_total{direction="out"}'] >= 4
        assert m['evhub_sessions_total{event="completed"}'] == 1 and m["evhub_energy_wh_total"] == 2500
        assert m['evhub_reservations_total{state="confirmed"}'] == 1 and m["evhub_reservations_open"] == 1
        assert m['evhub_stations{status="Available"}'] == 1
        assert 'evhub_errors_total{kind="auth_failed"}' in m and m['evhub_http_requests_total{code="201"}'] == 1


def test_openapi_describes_exactly_the_served_endpoints(hub):
    from hub.events import EventBus
    from hub.http.app import HttpApp

    spec = hub.get("/api/openapi.json")
    assert spec["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    fake = types.SimpleNamespace(
        loop=None,
        config={"http": "127.0.0.1:0", "db": hub.db, "open_loopback_reads": True, "speedup": 1.0},
        events=EventBus(None),
        clock=time.time,
        router=None,
        gateway=None,
        book=None,
        tracker_last={},
    )
    app = HttpApp(fake)
    try:
        served = {(r.method, r.template) for r in app.server.routes}
    finally:
        app.reads.close()
    assert documented == served
    for ref in re.findall(r'"#/components/schemas/(\w+)"', json.dumps(spec)):
        assert ref in spec["components"]["schemas"]


def test_the_token_can_come_from_the_config_file(tmp_path):
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nhttp_token = "from-the-file"\n')
    with HttpHub(tmp_path, token=None, extra_args=["--config", str(config)]) as h:
        h.add_station("CP-1")
        h.wait_for("/api/stations", lambda b: b["stations"])
        body = {"station_id": "CP-1", "vehicle_id": "V-1", "duration_min": 15}
        assert h.request("POST", "/api/reservations", body=body, token=TOKEN)[0] == 401
        assert h.request("POST", "/api/reservations", body=body, token="from-the-file")[0] == 201


def test_serve_refuses_a_malformed_http_address(tmp_path):
    from hubproc import evhub

    res = evhub("serve", "--db", tmp_path / "x.db", "--http", "localhost", check=False, timeout=30)
    assert res.returncode == 2 and "HOST:PORT" in res.stderr

"""The live event stream (/api/events), read by real HTTP clients."""

import asyncio
import socket
import threading
import time

import pytest

from test_http_api import TOKEN, HttpHub, SseClient, boot_station
from tools.client.hubclient import HubClient
from transport import kinds as K


@pytest.fixture
def hub(tmp_path):
    with HttpHub(tmp_path) as h:
        yield h
    assert "Traceback" not in h.log(), h.log()


def test_the_stream_carries_status_changes_reservations_sessions_and_meter_values(hub):
    key = hub.add_station("CP-1")
    events = SseClient(hub.http_port)
    try:
        assert events.status == 200
        with boot_station(hub, "CP-1", key) as st:
            _id, _k, up = events.next(("station",), where=lambda d: d["status"] == "Available")
            assert up["id"] == "CP-1" and up["online"] and up["free_in_min"] == 0
            st.request(K.STATUS, 1, "Charging", None)
            _id, _k, busy = events.next(("station",), where=lambda d: d["status"] == "Occupied")
            assert busy["previous_status"] == "Available" and busy["connector_status"] == {"1": "Charging"}
            start = int(time.time()) + 7200
            status, _h, made = hub.request(
                "POST",
                "/api/reservations",
                token=TOKEN,
                body={"station_id": "CP-1", "vehicle_id": "V-7", "start": start, "duration_min": 30},
            )
            assert status == 201
            _id, _k, res = events.next(("reservation",))
            assert res == dict(made["reservation"])
            now = int(time.time())
            st.request(K.SESSION_START, "S-1", 1, "V-1", None, 0, now)
            _id, _k, s = events.next(("session_start",))
            # No remote start or reservation of V-1 here: a local session, billed to nobody (issue 13).
            assert (s["session_id"], s["station_id"], s["vehicle_id"], s["connector"]) == ("S-1", "CP-1", None, 1)
            st.send(K.METER, 1, "S-1", 700, 7400, now + 10)
            _id, _k, m = events.next(("meter",))
            assert (m["session_id"], m["energy_wh"], m["power_w"]) == ("S-1", 700, 7400)
            st.request(K.SESSION_END, "S-1", 1, "V-1", None, 900, now, now + 20, "Complete")
            _id, _k, e = events.next(("session_end",))
            assert (e["energy_wh"], e["reason"]) == (900, "Complete")
            hub.request("DELETE", "/api/reservations/%d" % res["reservation_id"], token=TOKEN)
            _id, _k, gone = events.next(("reservation",))
            assert (gone["reservation_id"], gone["state"]) == (res["reservation_id"], "cancelled")
        _id, _k, down = events.next(("station",), where=lambda d: d["status"] == "Offline")
        assert not down["online"]
        ids = [e[0] for e in events.seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        events.close()


def test_a_client_reconnecting_with_last_event_id_gets_what_it_missed(hub):
    key = hub.add_station("CP-1")
    first = SseClient(hub.http_port)
    watcher = SseClient(hub.http_port)  # stays connected: when it has seen both events, they are in the ring
    with boot_station(hub, "CP-1", key) as st:
        last_id, _k, _d = first.next(("station",), where=lambda d: d["status"] == "Available")
        first.close()
        st.request(K.STATUS, 1, "Faulted", "ground fault")
        st.request(K.STATUS, 1, "Available", None)
        watcher.next(("station",), where=lambda d: d["status"] == "Faulted")
        watcher.next(("station",), where=lambda d: d["status"] == "Available")
        watcher.close()
        again = SseClient(hub.http_port, headers={"Last-Event-ID": str(last_id)})
        try:
            statuses = [again.next(("station",))[2]["status"] for _ in range(2)]
            assert statuses == ["Faulted", "Available"]
        finally:
            again.close()


def test_a_client_can_ask_for_some_event_types_only(hub):
    key = hub.add_station("CP-1")
    only = SseClient(hub.http_port, "/api/events?types=reservation")
    try:
        with boot_station(hub, "CP-1", key):
            status, _h, _b = hub.request(
                "POST",
                "/api/reservations",
                token=TOKEN,
                body={"station_id": "CP-1", "vehicle_id": "V-1", "duration_min": 10},
            )
            assert status == 201
            _id, kind, _d = only.next()
            assert kind == "reservation" and [e[1] for e in only.seen] == ["reservation"]
    finally:
        only.close()


def test_vehicle_positions_reach_the_stream(hub):
    token = hub.add_vehicle("V-1")
    events = SseClient(hub.http_port, "/api/events?types=positions")
    try:
        with HubClient(hub.url, "vehicle", "V-1", token) as v:
            v.send(K.POSITION, -12.2, -38.9, int(time.time()), 0.5)
            _id, _k, data = events.next(("positions",), timeout=8)
            assert {"id": "V-1", "lat": -12.2, "lon": -38.9, "soc": 0.5}.items() <= data["vehicles"][0].items()
    finally:
        events.close()


def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_receiving():
    """In-process: the real server, bus and stream on a loop; one client never reads."""
    from hub.events import EventBus
    from hub.http.server import HttpServer
    from hub.http.sse import EventStream

    loop = asyncio.new_event_loop()
    bus = EventBus(loop, max_queue=200)
    server = HttpServer(loop, [], token="")
    stream = EventStream(bus, server, {})
    server.routes = stream.routes()
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", server.port))
        slow.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        fast = SseClient(server.port)
        deadline = time.monotonic() + 5
        while len(bus.subscribers) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        blob = "x" * 8000
        got = 0
        for i in range(1500):  # ~12 MB: far more than the slow socket's buffers hold
            bus.publish("meter", {"n": i, "pad": blob})
            if i % 50 == 49:
                while got < i - 100:  # the fast client keeps up
                    got = fast.next(("meter",))[2]["n"]
        assert fast.next(("meter",), where=lambda d: d["n"] == 1499)[2]["n"] == 1499
        assert bus.dropped_clients == 1 and len(bus.subscribers) == 1
        slow.settimeout(5)
        received = 0
        try:
            while True:
                chunk = slow.recv(65536)
                if not chunk:
                    break
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert received < 1500 * 8000  # it was cut off, not waited for
        fast.close()
        slow.close()
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_event_ids_keep_growing_across_a_hub_restart(hub):
    key = hub.add_station("CP-1")
    before = SseClient(hub.http_port)
    with boot_station(hub, "CP-1", key):
        old_id = before.next(("station",), where=lambda d: d["status"] == "Available")[0]
    before.close()
    hub.stop()
    hub.restart()
    watcher = SseClient(hub.http_port)  # when it has seen the station's event, the event is in the ring
    with boot_station(hub, "CP-1", key):
        watcher.next(("station",), where=lambda d: d["status"] == "Available")
        watcher.close()
        after = SseClient(hub.http_port, headers={"Last-Event-ID": str(old_id)})
        try:
            new_id, _k, data = after.next(("station",), where=lambda d: d["status"] == "Available")
            assert new_id > old_id  # replayed from this run's ring: nothing missed
        finally:
            after.close()

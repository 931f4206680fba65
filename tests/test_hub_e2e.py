"""The real hub process over real loopback TCP: stations, vehicles, reservations, restarts, bad input."""

import json
import socket
import threading
import time

import pytest

from hubproc import HubProcess, evhub
from tools.client.hubclient import HubClient, HubError
from transport import kinds as K
from transport.codec import packb
from transport.errors import E_AUTH_FAILED, E_BAD_FIELD, E_FORBIDDEN, E_NOT_FOUND
from transport.framing import encode_stream
from waiting import wait_for


@pytest.fixture
def hub(tmp_path):
    with HubProcess(tmp_path) as h:
        yield h


def station_client(hub, station_id, key, connectors=1):
    c = HubClient(hub.url, "station", station_id, key).connect()
    c.request(K.BOOT, -12.2664, -38.9663, connectors, 22.0, "test-fw")
    for n in range(1, connectors + 1):
        c.request(K.STATUS, n, "Available", None)
    return c


def stations(hub, expect=None, timeout=5):
    """The hub's station list; waits (bounded) until `expect(listing)` holds, if given."""

    def listing():
        out = evhub("stations", "list", "--hub", hub.url, "--db", hub.db, "--json").stdout
        return {s["id"]: s for s in json.loads(out)}

    if expect is None:
        return listing()
    last = {}

    def met():
        last["listing"] = listing()
        return expect(last["listing"])

    try:
        wait_for(met, timeout, "the station list as expected", step=0.2)
    except AssertionError:
        pass  # the caller's assertion on the listing says what differs
    return last["listing"]


def test_provisioned_station_is_listed_offline_then_available_once_it_boots(hub):
    key = hub.add_station("CP-1", connectors=2)
    assert stations(hub, lambda listing: "CP-1" in listing)["CP-1"]["status"] == "Offline"
    with station_client(hub, "CP-1", key, connectors=2):
        listed = stations(hub)["CP-1"]
        assert listed["status"] == "Available" and listed["free_in_min"] == 0
        assert listed["lat"] == -12.2664 and listed["lon"] == -38.9663


def test_wrong_station_key_and_unknown_station_are_refused(hub):
    hub.add_station("CP-1")
    for sid, key in (("CP-1", "00" * 16), ("CP-404", "00" * 16)):
        with pytest.raises(HubError) as exc:
            HubClient(hub.url, "station", sid, key).connect()
        assert exc.value.code == E_AUTH_FAILED
    assert "refused" in hub.log() and "CP-404" in hub.log()


def test_vehicle_finds_nearest_station_with_status_and_distance(hub):
    k1 = hub.add_station("CP-NEAR", lat=-12.2664, lon=-38.9663)
    hub.add_station("CP-FAR", lat=-12.9714, lon=-38.5014)
    token = hub.add_vehicle("V-1")
    stations(hub, lambda listing: "CP-FAR" in listing)  # provisioned while running: known within a tick
    with station_client(hub, "CP-NEAR", k1), HubClient(hub.url, "vehicle", "V-1", token) as v:
        _k, (found,) = v.request(K.NEAREST, -12.25, -38.95, 5, None)
    assert [s["id"] for s in found] == ["CP-NEAR", "CP-FAR"]
    assert found[0]["status"] == "Available" and found[1]["status"] == "Offline"
    assert 0 < found[0]["distance_km"] < found[1]["distance_km"]


def test_reservation_makes_a_station_reserved_and_cancel_frees_it(hub):
    key = hub.add_station("CP-1")
    token = hub.add_vehicle("V-1")
    start = int(time.time()) + 60
    with station_client(hub, "CP-1", key) as st, HubClient(hub.url, "vehicle", "V-1", token) as v:
        _k, (ok, rid, alts, reason) = v.request(K.RESERVE, "CP-1", start, start + 2400)
        assert ok and isinstance(rid, int)
        msg = st.wait_event((K.RESERVE_NOW,), timeout=5)
        assert msg is not None and msg.fields[0] == rid and msg.fields[2] == "V-1"
        _k, (mine,) = v.request(K.LIST_RESERVATIONS)
        assert [r["reservation_id"] for r in mine] == [rid]
        v.request(K.CANCEL, rid)
        assert st.wait_event((K.CANCEL_RESERVATION,), timeout=5).fields[0] == rid


def test_a_vehicle_cannot_cancel_another_vehicles_reservation(hub):
    hub.add_station("CP-1")
    t1, t2 = hub.add_vehicle("V-1"), hub.add_vehicle("V-2")
    start = int(time.time()) + 600
    with HubClient(hub.url, "vehicle", "V-1", t1) as v1, HubClient(hub.url, "vehicle", "V-2", t2) as v2:
        _k, (ok, rid, _a, _r) = v1.request(K.RESERVE, "CP-1", start, start + 1800)
        assert ok
        with pytest.raises(HubError) as exc:
            v2.request(K.CANCEL, rid)
        assert exc.value.code == E_FORBIDDEN and "not yours" in str(exc.value)
        _k, (mine,) = v1.request(K.LIST_RESERVATIONS)
        assert mine[0]["state"] == "confirmed"


def test_reserving_an_unknown_station_is_an_error_not_a_crash(hub):
    token = hub.add_vehicle("V-1")
    with HubClient(hub.url, "vehicle", "V-1", token) as v:
        with pytest.raises(HubError) as exc:
            v.request(K.RESERVE, "CP-NOPE", int(time.time()) + 60, int(time.time()) + 600)
        assert exc.value.code == E_NOT_FOUND


def test_two_hundred_vehicles_racing_for_one_window_get_exactly_one_confirmation(hub):
    hub.add_station("CP-1", connectors=1)
    hub.add_station("CP-2", lat=-12.30, lon=-38.97)
    # Provision 200 vehicles in one go through the store (200 CLI runs would be slow).
    from hub.store.store import Store

    store = Store(hub.db)
    tokens = {"V-%d" % i: store.add_vehicle("V-%d" % i) for i in range(200)}
    store.close()
    clients = [HubClient(hub.url, "vehicle", vid, tok, timeout=30).connect() for vid, tok in tokens.items()]
    start = int(time.time()) + 3600
    barrier = threading.Barrier(len(clients))
    results = [None] * len(clients)

    def race(i):
        barrier.wait()
        results[i] = clients[i].request(K.RESERVE, "CP-1", start, start + 2400)[1]

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in clients:
        c.close()
    confirmed = [r for r in results if r and r[0]]
    conflicted = [r for r in results if r and not r[0]]
    assert len(confirmed) == 1
    assert len(conflicted) == 199
    assert all(r[2] for r in conflicted), "every refused vehicle is offered alternatives"


def test_reservations_and_keys_survive_kill_9_of_the_hub(hub):
    key = hub.add_station("CP-1")
    token = hub.add_vehicle("V-1")
    start = int(time.time()) + 600
    with HubClient(hub.url, "vehicle", "V-1", token) as v:
        acked = [
            v.request(K.RESERVE, "CP-1", start + i * 3600, start + i * 3600 + 1800)[1][1] for i in range(3)
        ]  # the cap
    hub.kill9()
    hub.restart()
    with HubClient(hub.url, "vehicle", "V-1", token) as v:
        _k, (mine,) = v.request(K.LIST_RESERVATIONS)
    assert sorted(r["reservation_id"] for r in mine) == sorted(acked)
    with station_client(hub, "CP-1", key):
        pass


def _read_until_eof(sock, timeout=10):
    """Every frame the hub sends on this socket until it closes it (AssertionError if it does not)."""
    from transport.codec import unpackb
    from transport.framing import StreamFramer

    framer, frames = StreamFramer(), []
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("the hub did not close the link within %d s" % timeout) from None
        except ConnectionResetError:
            return frames
        if not data:
            return frames
        frames.extend(unpackb(p) for p in framer.feed(data))


def _raw(hub):
    s = socket.create_connection(("127.0.0.1", hub.port), timeout=5)
    return s


def test_garbage_huge_frames_and_half_frames_never_disturb_other_links(hub):
    hub.add_station("CP-1")
    token = hub.add_vehicle("V-1")
    stations(hub, lambda listing: "CP-1" in listing)
    with HubClient(hub.url, "vehicle", "V-1", token) as good:
        garbage = _raw(hub)
        garbage.sendall(b"\x00\x00\x00\x05" + b"\xc1" * 5)  # a frame that is not msgpack
        huge = _raw(hub)
        huge.sendall(b"\x7f\xff\xff\xff")  # announces a 2 GB frame
        half = _raw(hub)
        half.sendall(encode_stream(packb([K.HELLO, 0, 1, "vehicle", "V-1", b"x" * 16]))[:7])  # and then nothing
        unknown = _raw(hub)
        unknown.sendall(encode_stream(packb([250, 1])))
        # garbage and unknown kinds before the handshake, and a huge frame: an ERROR, then a disconnect
        for s in (garbage, huge, unknown):
            frames = _read_until_eof(s)
            assert frames and frames[0][0] == K.ERROR, frames
        # a half frame left hanging: the handshake timeout closes it (bounded by the hub's 10 s)
        assert _read_until_eof(half, timeout=20) == []
        _k, (found,) = good.request(K.NEAREST, -12.2, -38.9, 3, None)
        assert found and found[0]["id"] == "CP-1"
        for s in (garbage, huge, half, unknown):
            s.close()
    assert hub.proc.poll() is None


def test_bad_fields_from_an_authenticated_vehicle_get_clear_errors(hub):
    token = hub.add_vehicle("V-1")
    hub.add_station("CP-1")  # a known station: the window itself is what is refused
    later = int(time.time()) + 3600
    with HubClient(hub.url, "vehicle", "V-1", token) as v:
        for fields, code, text in (
            ((K.NEAREST, 91.0, 0.0, 5, None), E_BAD_FIELD, "lat"),
            ((K.NEAREST, 0.0, 0.0, 500, None), E_BAD_FIELD, "k"),
            ((K.RESERVE, "CP-1", later, later - 50), E_BAD_FIELD, "end must be after start"),
        ):
            with pytest.raises(HubError) as exc:
                v.request(*fields)
            assert exc.value.code == code and text in str(exc.value), (fields, exc.value.code, str(exc.value))
        # still fine afterwards
        v.request(K.LIST_RESERVATIONS)


def test_a_station_cannot_close_another_stations_session(hub):
    k1, k2 = hub.add_station("CP-1"), hub.add_station("CP-2", lat=-12.3)
    with station_client(hub, "CP-1", k1) as s1, station_client(hub, "CP-2", k2) as s2:
        s1.request(K.SESSION_START, "S-ONE", 1, "V-1", None, 0, 1_800_000_000)
        with pytest.raises(HubError) as exc:
            s2.request(K.SESSION_END, "S-ONE", 1, "V-1", None, 999, 1_800_000_000, 1_800_000_100, "Complete")
        assert exc.value.code == E_FORBIDDEN
        s1.request(K.SESSION_END, "S-ONE", 1, "V-1", None, 500, 1_800_000_000, 1_800_000_100, "Complete")
    import sqlite3

    con = sqlite3.connect(hub.db)
    assert con.execute("SELECT station_id, energy_wh FROM sessions WHERE session_id = 'S-ONE'").fetchone() == (
        "CP-1",
        500,
    )
    con.close()


def test_a_boot_with_a_nan_power_limit_is_refused(hub):
    key = hub.add_station("CP-1")
    with HubClient(hub.url, "station", "CP-1", key) as c:
        with pytest.raises(HubError) as exc:
            c.request(K.BOOT, -12.2664, -38.9663, 1, float("nan"), "fw")
        assert exc.value.code == E_BAD_FIELD


def test_a_vehicle_may_start_charging_right_after_its_reservation_is_confirmed(hub):
    # The registry must hear of a reservation before the vehicle does.
    key = hub.add_station("CP-1")
    token = hub.add_vehicle("V-1")
    stations(hub, lambda listing: "CP-1" in listing)
    with station_client(hub, "CP-1", key) as st, HubClient(hub.url, "vehicle", "V-1", token) as v:
        start = int(time.time()) + 60
        for i in range(20):
            # Current windows (a start is honoured only in its window), cancelled each round (the cap is 3).
            _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-1", start, start + 600)
            assert ok
            seq = v.session.request(K.START_CHARGE, "CP-1", rid, None)
            v._flush()
            # The hub relays REMOTE_START to the station (not "reservation is not open"); refuse it.
            msg = st.wait_event((K.REMOTE_START,), timeout=5)
            assert msg is not None and msg.fields[2] == rid
            st.session.send(K.ERROR, msg.seq, 12, "test station says no")
            st._flush()
            with pytest.raises(HubError) as exc:
                v.wait_reply(seq)
            assert "refused by the station" in str(exc.value)
            v.request(K.CANCEL, rid)


def test_an_unauthenticated_link_may_not_send_large_frames(hub):
    s = _raw(hub)
    s.sendall(b"\x00\x00\x20\x00" + b"\x90" * 16)  # announces 8 KiB before any handshake
    frames = _read_until_eof(s)
    assert frames and frames[0][0] == K.ERROR and frames[0][2] == 11  # too_large
    s.close()


@pytest.mark.parametrize(
    "filters", [{"eta_min": "abc"}, {"min_kw": "x"}, {"available": 1}, {"colour": "red"}, {"eta_min": float("inf")}]
)
def test_bad_nearest_filters_get_a_bad_field_error_not_an_internal_one(hub, filters):
    token = hub.add_vehicle("V-1")
    with HubClient(hub.url, "vehicle", "V-1", token) as v:
        with pytest.raises(HubError) as exc:
            v.request(K.NEAREST, -12.2, -38.9, 3, filters)
        assert exc.value.code == E_BAD_FIELD
    assert "Traceback" not in hub.log()


def test_a_position_with_an_impossible_charge_is_refused(hub):
    token = hub.add_vehicle("V-1")
    with HubClient(hub.url, "vehicle", "V-1", token) as v:
        v.send(K.POSITION, -12.2, -38.9, int(time.time()), float("inf"))
        ev = v.wait_event((K.ERROR,), timeout=5)
        assert ev is not None and ev.fields[0] == E_BAD_FIELD and "soc" in ev.fields[1]


def test_a_client_given_several_hubs_passes_over_one_that_cannot_be_reached(hub):
    token = hub.add_vehicle("V-1")
    with HubClient("tcp://127.0.0.1:1, %s" % hub.url, "vehicle", "V-1", token) as v:
        assert v.url == hub.url
        assert v.request(K.NEAREST, -12.2664, -38.9663, 5, None)[0] == K.NEAREST_RESULT
    with pytest.raises(HubError, match="127.0.0.1:1: .*127.0.0.2:1: "):
        HubClient("tcp://127.0.0.1:1,tcp://127.0.0.2:1", "vehicle", "V-1", token, timeout=2).connect()

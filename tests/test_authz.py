"""Issue 13, hub-side authorisation and accounts, against the real hub process:
who may start charging where, whom a session is billed to, the per-vehicle reservation cap,
revocation of replaced keys, and `evhub stations|vehicles remove`."""

import json
import re
import sqlite3
import threading
import time
import urllib.request

import pytest

from firmware.runner import run_chargepoint
from hubproc import HubProcess, evhub
from test_bundle import wait_for
from tools.client.hubclient import HubClient, HubError
from transport import kinds as K
from transport.session import Reply
from transport.errors import E_AUTH_FAILED, E_FORBIDDEN, E_INVALID_STATE, E_OVERLOADED
from waiting import wait_for

QUICK_EV = {"max_kw": 50.0, "capacity_kwh": 0.05, "soc": 0.2, "target_soc": 0.9}  # 35 Wh, ~6 s at 22 kW


@pytest.fixture
def hub(tmp_path):
    with HubProcess(tmp_path) as h:
        yield h


def fake_station(hub, station_id, key, statuses=("Available",)):
    """A station that is only a client: it says what the test makes it say (a lying station)."""
    c = HubClient(hub.url, "station", station_id, key).connect()
    c.request(K.BOOT, -12.2664, -38.9663, len(statuses), 22.0, "test-fw")
    for n, status in enumerate(statuses, 1):
        c.request(K.STATUS, n, status, None)
    return c


def answer(station, kinds, timeout=5):
    """Wait for a hub request of one of `kinds` at a fake station and ACK it; returns it."""
    msg = station.wait_event(kinds, timeout=timeout)
    assert msg is not None, "the station got no %s" % [K.kind_name(k) for k in kinds]
    station.session.send(K.ACK, msg.seq)
    station._flush()
    return msg


def runner_station(hub, tmp_path, station_id, key, connectors):
    host, port = hub.url[len("tcp://") :].split(":")
    cfg = {
        "id": station_id,
        "key": key,
        "hub": {"host": host, "port": int(port)},
        "connectors": connectors,
        "meter_interval_s": 1,
        "finishing_s": 1,
    }
    stop = threading.Event()
    t = threading.Thread(
        target=run_chargepoint,
        args=(cfg,),
        kwargs={"stop_event": stop, "journal": str(tmp_path / ("%s.journal" % station_id))},
        daemon=True,
    )
    t.start()
    wait_for(lambda: "station %s: boot" % station_id in hub.log(), 10, "the station's BOOT")
    wait_for(lambda: hub.log().count("station %s: connector" % station_id) >= connectors, 10, "its statuses")
    return stop, t


def rows(hub, sql, *args):
    con = sqlite3.connect(hub.db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


# --- remote start -------------------------------------------------------------------------------


def test_a_vehicle_without_a_reservation_cannot_start_empty_connectors_of_real_stations(hub, tmp_path):
    keys = {sid: hub.add_station(sid, connectors=2) for sid in ("CP-1", "CP-2")}
    token = hub.add_vehicle("V-X")
    threads = [runner_station(hub, tmp_path, sid, key, 2) for sid, key in keys.items()]
    try:
        with HubClient(hub.url, "vehicle", "V-X", token) as v:
            for sid in keys:
                for _ in range(2):  # once per connector, as in the review
                    with pytest.raises(HubError) as exc:
                        v.request(K.START_CHARGE, sid, None, QUICK_EV)
                    assert exc.value.code == E_INVALID_STATE and "nothing plugged in at %s" % sid in str(exc.value)
    finally:
        for stop, t in threads:
            stop.set()
            t.join(timeout=10)
    assert hub.log().count("start at station") == 4 and "-> Charging" not in hub.log()
    assert rows(hub, "SELECT COUNT(*) FROM sessions") == [(0,)]


def test_only_the_reserving_vehicle_may_start_and_it_needs_no_reservation_id(hub, tmp_path):
    key = hub.add_station("CP-1", connectors=1)
    ta, tb = hub.add_vehicle("V-A"), hub.add_vehicle("V-B")
    stop, t = runner_station(hub, tmp_path, "CP-1", key, 1)
    try:
        with HubClient(hub.url, "vehicle", "V-A", ta) as va, HubClient(hub.url, "vehicle", "V-B", tb) as vb:
            start = int(time.time()) + 60
            _k, (ok, rid, _a, _r) = va.request(K.RESERVE, "CP-1", start, start + 1800)
            assert ok
            wait_for(lambda: "connector 1 Available -> Reserved" in hub.log(), 10, "the hold at the station")
            for asked in (None, rid):
                with pytest.raises(HubError) as exc:
                    vb.request(K.START_CHARGE, "CP-1", asked, QUICK_EV)
                assert exc.value.code == E_FORBIDDEN and "no reservation" in str(exc.value) and "CP-1" in str(exc.value)
            va.request(K.START_CHARGE, "CP-1", None, QUICK_EV)  # the hub finds V-A's window itself
            sid = va.wait_event((K.SESSION_STARTED,), timeout=10).fields[0]
            done = va.wait_event((K.COMPLETE,), timeout=30)
    finally:
        stop.set()
        t.join(timeout=10)
    assert done.fields[0] == sid and done.fields[2] == 35
    assert rows(hub, "SELECT vehicle_id, reservation_id FROM sessions") == [("V-A", rid)]
    assert rows(hub, "SELECT state FROM reservations WHERE id = ?", rid) == [("fulfilled",)]


def test_a_walk_in_vehicle_may_start_at_the_connector_where_a_car_is_plugged_in(hub):
    key = hub.add_station("CP-1", connectors=2)
    token = hub.add_vehicle("V-W")
    with (
        fake_station(hub, "CP-1", key, ("Available", "Preparing")) as st,
        HubClient(hub.url, "vehicle", "V-W", token) as v,
    ):
        seq = v.session.request(K.START_CHARGE, "CP-1", None, QUICK_EV)
        v._flush()
        start = answer(st, (K.REMOTE_START,))
        assert start.fields[0] == 2 and start.fields[1] == "V-W", "the start names the plugged connector"
        v.wait_reply(seq)
        now = int(time.time())
        st.request(K.SESSION_START, "S-W", 2, "V-W", None, 0, now)
        assert v.wait_event((K.SESSION_STARTED,), timeout=5).fields[0] == "S-W"
        st.request(K.SESSION_END, "S-W", 2, "V-W", None, 10, now, now + 60, "Local")
        assert v.wait_event((K.COMPLETE,), timeout=5).fields[2] == 10
    assert rows(hub, "SELECT vehicle_id, claimed_vehicle_id, implausible FROM sessions") == [("V-W", None, 0)]


# --- attribution and plausibility -------------------------------------------------------------


def test_a_station_cannot_bill_a_vehicle_that_never_asked_and_implausible_energy_is_flagged(tmp_path):
    with HubProcess(tmp_path, extra_args=["--http", "127.0.0.1:0"]) as hub:
        key = hub.add_station("CP-1")
        token = hub.add_vehicle("V-B")
        with fake_station(hub, "CP-1", key) as st, HubClient(hub.url, "vehicle", "V-B", token) as vb:
            now = int(time.time())
            st.request(K.SESSION_START, "S-FAKE", 1, "V-B", None, 0, now - 60)  # ACKed: nothing acknowledged is lost
            st.request(K.SESSION_END, "S-FAKE", 1, "V-B", None, 999_999_000, now - 60, now, "Local")
            st.request(K.SESSION_END, "S-ONLY-END", 1, "V-B", None, 5, now - 60, now, "Local")
            vb.request(K.LIST_RESERVATIONS)  # anything the hub sent V-B before is in before this reply
            assert not [e for e in vb.events if e.kind in (K.SESSION_STARTED, K.CHARGE_PROGRESS, K.COMPLETE)]
        log = hub.log()
        port = int(re.search(r"http api listening on http://[\d.]+:(\d+)", log).group(1))
        with urllib.request.urlopen("http://127.0.0.1:%d/api/stations/CP-1/sessions" % port, timeout=10) as r:
            api = {s["session_id"]: s for s in json.load(r)["sessions"]}
    got = rows(
        hub, "SELECT session_id, vehicle_id, claimed_vehicle_id, energy_wh, implausible FROM sessions ORDER BY 1"
    )
    assert got == [("S-FAKE", None, "V-B", 999_999_000, 1), ("S-ONLY-END", None, "V-B", 5, 0)]
    assert "session S-FAKE names vehicle 'V-B'" in log and "recorded as a local session" in log
    assert "WARNING" in log and "S-FAKE reports 999999000 Wh" in log and "flagged implausible" in log
    assert api["S-FAKE"]["implausible"] and api["S-FAKE"]["vehicle_id"] is None
    assert not api["S-ONLY-END"]["implausible"]


def test_a_reservation_fulfilled_at_the_station_bills_its_vehicle_once(hub):
    key = hub.add_station("CP-1", connectors=2)
    token = hub.add_vehicle("V-R")
    with (
        fake_station(hub, "CP-1", key, ("Available", "Available")) as st,
        HubClient(hub.url, "vehicle", "V-R", token) as v,
    ):
        now = int(time.time())
        _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-1", now, now + 1800)
        assert ok
        answer(st, (K.RESERVE_NOW,))
        st.request(K.SESSION_START, "S-1", 1, "V-R", rid, 0, now)  # plugged in: the station started it itself
        assert v.wait_event((K.SESSION_STARTED,), timeout=5).fields[0] == "S-1"
        st.request(K.SESSION_START, "S-2", 2, "V-R", rid, 0, now)  # the same reservation again: not billed
        v.request(K.LIST_RESERVATIONS)
        assert not [e for e in v.events if e.kind == K.SESSION_STARTED]
    assert rows(hub, "SELECT session_id, vehicle_id FROM sessions ORDER BY 1") == [("S-1", "V-R"), ("S-2", None)]


# --- reservation cap and fair share ---------------------------------------------------------------


def test_a_vehicle_may_hold_three_open_reservations_and_the_fourth_is_refused_naming_the_cap(hub):
    for i in range(4):
        hub.add_station("CP-%d" % i, connectors=1)
    token = hub.add_vehicle("V-1")
    start = int(time.time()) + 3600
    with HubClient(hub.url, "vehicle", "V-1", token) as v:
        rids = [v.request(K.RESERVE, "CP-%d" % i, start, start + 1800)[1][1] for i in range(3)]
        with pytest.raises(HubError) as exc:
            v.request(K.RESERVE, "CP-3", start, start + 1800)
        assert exc.value.code == E_FORBIDDEN and "the cap is 3" in str(exc.value)
        v.request(K.CANCEL, rids[0])
        assert v.request(K.RESERVE, "CP-3", start, start + 1800)[1][0]


def test_one_vehicle_cannot_fill_the_waiting_queue_and_another_still_gets_answers(hub):
    hub.add_station("CP-1", connectors=1)
    t1, t2 = hub.add_vehicle("V-GREEDY"), hub.add_vehicle("V-OTHER")
    start = int(time.time()) + 3600
    with HubClient(hub.url, "vehicle", "V-GREEDY", t1) as greedy, HubClient(hub.url, "vehicle", "V-OTHER", t2) as other:
        seqs = [greedy.session.request(K.RESERVE, "CP-1", start + 7200 * i, start + 7200 * i + 1800) for i in range(60)]
        greedy._flush()  # 60 requests in one write: the hub reads them in one go, before the book answers
        replies = {}  # seq -> Reply; HubClient.wait_reply waits for one at a time, these come pipelined
        deadline = time.monotonic() + 20
        while len(replies) < len(seqs):
            replies.update((e.seq, e) for e in greedy._read(deadline) if isinstance(e, Reply))
        answers = [r.fields[0] if r.kind == K.ERROR else r.fields[0] is True for r in (replies[q] for q in seqs)]
        texts = [r.fields[1] for r in replies.values() if r.kind == K.ERROR]
        _k, (ok, _rid, _a, _r) = other.request(K.RESERVE, "CP-1", start + 3600, start + 5400)
    assert answers.count(E_OVERLOADED) >= 60 - 10 - 10, answers  # the hub may read them in two go's, not more
    assert answers.count(True) == 3, "at most its cap is confirmed"
    assert ok, "the other vehicle is answered, not refused as overloaded"
    assert any("(the limit is 10)" in t for t in texts)


# --- revocation and removal ---------------------------------------------------------------------


def test_a_replaced_token_is_refused_at_once_and_the_link_open_on_it_is_closed_within_a_second(hub):
    hub.add_station("CP-1")
    old = hub.add_vehicle("V-1")
    v = HubClient(hub.url, "vehicle", "V-1", old).connect()
    try:
        new = evhub(
            "vehicles", "add", "--id", "V-1", "--replace", "--db", hub.db, cwd=hub.tmp, env=hub.env
        ).stdout.strip()
        t0 = time.monotonic()
        with pytest.raises(HubError) as exc:
            HubClient(hub.url, "vehicle", "V-1", old).connect()
        assert exc.value.code == E_AUTH_FAILED

        def closed():
            try:
                v.request(K.LIST_RESERVATIONS)
            except HubError:
                return True
            return False

        wait_for(closed, 3, "the old link to be closed")
        assert time.monotonic() - t0 < 1.5
        with pytest.raises(HubError):
            v.request(K.RESERVE, "CP-1", int(time.time()) + 600, int(time.time()) + 1200)
    finally:
        v.close()
    with HubClient(hub.url, "vehicle", "V-1", new) as fresh:
        fresh.request(K.LIST_RESERVATIONS)
    assert "vehicle V-1: token replaced, closing its link" in hub.log()


def test_removing_a_vehicle_closes_its_link_cancels_its_reservations_and_keeps_its_history(hub):
    key = hub.add_station("CP-1")
    token = hub.add_vehicle("V-1")
    start = int(time.time()) + 600
    with fake_station(hub, "CP-1", key) as st:
        v = HubClient(hub.url, "vehicle", "V-1", token).connect()
        try:
            _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-1", start, start + 1800)
            answer(st, (K.RESERVE_NOW,))
            res = evhub("vehicles", "remove", "V-1", "--db", hub.db, cwd=hub.tmp, env=hub.env)
            assert "vehicle V-1 removed; 1 open reservation cancelled #%d" % rid in res.stdout
            assert answer(st, (K.CANCEL_RESERVATION,)).fields[0] == rid  # the station lets the connector go
            with pytest.raises(HubError):
                v.wait_event((K.ACK,), timeout=3)  # the hub closes the link
        finally:
            v.close()
    with pytest.raises(HubError) as exc:
        HubClient(hub.url, "vehicle", "V-1", token).connect()
    assert exc.value.code == E_AUTH_FAILED
    assert rows(hub, "SELECT id, state FROM reservations") == [(rid, "cancelled")]
    listed = evhub("vehicles", "list", "--db", hub.db, cwd=hub.tmp, env=hub.env).stdout
    assert "V-1" in listed.splitlines()[1] and len(listed.splitlines()[1].split()) > 3  # removed: has a date
    again = evhub("vehicles", "remove", "V-1", "--db", hub.db, cwd=hub.tmp, env=hub.env, check=False)
    assert again.returncode == 3 and "already removed" in again.stderr


def test_removing_a_station_closes_its_link_tells_vehicles_of_cancelled_reservations_and_keeps_sessions(hub):
    key = hub.add_station("CP-1")
    hub.add_station("CP-2", lat=-12.30, lon=-38.97)
    token = hub.add_vehicle("V-1")
    start = int(time.time()) + 600
    st = fake_station(hub, "CP-1", key)
    try:
        now = int(time.time())
        st.request(K.SESSION_END, "S-OLD", 1, "V-LOCAL", None, 100, now - 600, now - 300, "Local")
        with HubClient(hub.url, "vehicle", "V-1", token) as v:
            _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-1", start, start + 1800)
            assert ok
            res = evhub("stations", "remove", "CP-1", "--db", hub.db, cwd=hub.tmp, env=hub.env)
            assert "station CP-1 removed; 1 open reservation cancelled #%d" % rid in res.stdout
            told = v.wait_event((K.RESERVATIONS,), timeout=5)
            assert told is not None and told.seq == 0
            assert [(r["reservation_id"], r["state"]) for r in told.fields[0]] == [(rid, "cancelled")]
            with pytest.raises(HubError):
                st.wait_event((K.ACK,), timeout=3)  # the hub closes the station's link

            # The removal reaches the locator through the actors: the map settles within moments.
            def nearest_ids():
                _k, (found,) = v.request(K.NEAREST, -12.2664, -38.9663, 5, None)
                return [s["id"] for s in found]

            wait_for(lambda: nearest_ids() == ["CP-2"], 5, "the removed station gone from NEAREST")
    finally:
        st.close()
    with pytest.raises(HubError) as exc:
        HubClient(hub.url, "station", "CP-1", key).connect()
    assert exc.value.code == E_AUTH_FAILED
    assert rows(hub, "SELECT session_id, energy_wh FROM sessions") == [("S-OLD", 100)]
    assert rows(hub, "SELECT state FROM reservations") == [("cancelled",)]


def test_removing_unknown_ids_is_a_clear_error(hub):
    for what in ("stations", "vehicles"):
        res = evhub(what, "remove", "NOPE-1", "--db", hub.db, cwd=hub.tmp, env=hub.env, check=False)
        assert res.returncode == 4 and res.stderr.strip() == "evhub %s remove: no %s NOPE-1" % (what, what[:-1])


# --- the decisions themselves, without a hub (hub/domain/authz.py) ----------------------------------------


def test_a_walk_in_is_refused_when_the_only_free_connectors_are_needed_by_current_reservations():
    from hub.domain.authz import Refusal, authorise_start

    now = 1_800_000_000
    windows = {7: ("V-A", now - 60, now + 1800)}
    # V-A's hold is not shown yet: the one plugged connector is the one V-A's reservation needs.
    with pytest.raises(Refusal) as exc:
        authorise_start("CP-1", windows, {1: "Preparing"}, "V-B", None, now)
    assert exc.value.code == E_FORBIDDEN and exc.value.text == "no reservation for you at CP-1"
    # Shown as Reserved on connector 1: connector 2, plugged, is free for a walk-in.
    assert authorise_start("CP-1", windows, {1: "Reserved", 2: "Preparing"}, "V-B", None, now) == (2, None)
    assert authorise_start("CP-1", windows, {1: "Reserved", 2: "Preparing"}, "V-A", None, now) == (0, 7)
    with pytest.raises(Refusal) as exc:
        authorise_start("CP-1", {}, {1: "Available", 2: "Charging"}, "V-B", None, now)
    assert exc.value.code == E_INVALID_STATE and "nothing plugged in at CP-1" in exc.value.text


def test_a_reservation_is_started_only_in_its_window():
    from hub.domain.authz import Refusal, authorise_start

    now = 1_800_000_000
    windows = {7: ("V-A", now + 7200, now + 9000)}
    with pytest.raises(Refusal) as exc:
        authorise_start("CP-1", windows, {1: "Available"}, "V-A", 7, now)
    assert exc.value.code == E_INVALID_STATE and "not current" in exc.value.text
    assert authorise_start("CP-1", windows, {1: "Available"}, "V-A", 7, now + 7200 - 1200) == (0, 7)  # 20 min early


def test_energy_beyond_max_kw_times_the_duration_is_implausible():
    from hub.domain.authz import implausible

    now = 1_800_000_000
    assert not implausible(22_000, 22.0, now - 3600, now, None, now)  # exactly one hour at 22 kW
    assert not implausible(24_000, 22.0, now - 3600, now, None, now)  # within 10 %
    assert implausible(25_000, 22.0, now - 3600, now, None, now)
    assert implausible(999_999_000, 22.0, 0, now, now - 600, now), "not before the station was provisioned"
    assert implausible(5_000, 22.0, now - 3600, now + 86400, now - 7200, now - 3600 + 60), (
        "not past the hub's clock (+5 min)"
    )


def test_a_replaced_station_key_is_refused_and_the_station_link_on_it_is_closed(hub):
    old = hub.add_station("CP-1")
    st = fake_station(hub, "CP-1", old)
    try:
        new = evhub(
            "stations",
            "add",
            "--id",
            "CP-1",
            "--lat",
            -12.2664,
            "--lon",
            -38.9663,
            "--replace",
            "--db",
            hub.db,
            cwd=hub.tmp,
            env=hub.env,
        ).stdout.strip()
        with pytest.raises(HubError) as exc:
            HubClient(hub.url, "station", "CP-1", old).connect()
        assert exc.value.code == E_AUTH_FAILED
        with pytest.raises(HubError):
            st.wait_event((K.ACK,), timeout=3)  # closed by the hub
    finally:
        st.close()
    with fake_station(hub, "CP-1", new):
        pass
    assert "station CP-1: key replaced, closing its link" in hub.log()


def test_a_store_made_before_these_columns_gains_them_and_keeps_its_rows(tmp_path):
    from hub.store import migrations
    from hub.store import store as store_mod
    from hub.store.backend import SQLITE

    path = str(tmp_path / "old.db")
    con = sqlite3.connect(path)
    migrations.apply(con, SQLITE, 0, target=1)  # the schema before accounts existed
    con.execute("PRAGMA user_version=1")
    con.execute("INSERT INTO vehicles (id, token, created) VALUES ('V-OLD', 'tok', 1)")
    con.commit()
    con.close()
    import os

    os.chmod(path, 0o600)  # the store refuses a world-readable file
    s = store_mod.Store(path)
    try:
        assert s.get_vehicle_token("V-OLD") == "tok"
        assert s.remove_vehicle("V-OLD") == [] and s.get_vehicle_token("V-OLD") is None
        assert [v["id"] for v in s.all_vehicles()] == ["V-OLD"] and s.last_revocation() == 1
    finally:
        s.close()

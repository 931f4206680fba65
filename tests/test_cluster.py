"""The cluster's primitives on a real PostgreSQL: homes fenced by epoch, liveness, shared views, hub requests, LISTEN."""

import itertools
import threading
import time

import psycopg
import pytest

from hub.cluster import membership, requests, schema, status
from hub.cluster.bus import Listener
from hub.domain.stations import StationView
from waiting import wait_for

_names = itertools.count()


@pytest.fixture
def dsn(pg_cluster):
    name = "cluster_%d_%d" % (int(time.time() * 1000) % 10**9, next(_names))
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute('CREATE DATABASE "%s"' % name)
    url = pg_cluster.dsn(name)
    with psycopg.connect(url, autocommit=True) as conn:
        schema.apply(conn)
    return url


@pytest.fixture
def conn(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


def view(sid, status_word="Available", online=True):
    return StationView(sid, 1.0, 2.0, status_word, None, None, 2, 22.0, online, 0.0, {1: "Available", 2: "Charging"})


def test_each_claim_of_a_station_bumps_its_epoch_and_only_the_current_home_can_release_it(conn):
    membership.beat(conn, "A")
    membership.beat(conn, "B")
    e1 = membership.claim(conn, "CP-1", "A")
    e2 = membership.claim(conn, "CP-1", "B")
    assert e2 == e1 + 1
    assert membership.home_of(conn, "CP-1") == membership.Home("B", e2, True)
    assert membership.release(conn, "CP-1", "A", e1) is False  # the stale home cannot drop B's claim
    assert membership.release(conn, "CP-1", "B", e1) is False  # nor can B with an old epoch
    assert membership.release(conn, "CP-1", "B", e2) is True
    assert membership.home_of(conn, "CP-1") is None


def test_a_hub_that_stops_beating_is_dead_and_its_stations_read_offline_everywhere(conn, monkeypatch):
    monkeypatch.setattr(membership, "BEAT_S", 0.1)
    monkeypatch.setattr(status, "BEAT_S", 0.1)
    membership.beat(conn, "A")
    membership.beat(conn, "B")
    epoch = membership.claim(conn, "CP-1", "A")
    assert status.publish(conn, "A", [(view("CP-1"), epoch)]) == 1
    assert status.read(conn)["CP-1"][0].status == "Available"
    assert membership.dead_homes(conn) == []
    # B keeps beating, A falls silent for more than DEAD_AFTER_BEATS beats
    deadline = time.monotonic() + 0.1 * membership.DEAD_AFTER_BEATS + 0.2
    while time.monotonic() < deadline:
        membership.beat(conn, "B")
        time.sleep(0.05)
    assert membership.dead_homes(conn) == [("CP-1", "A", epoch)]
    assert membership.live_hubs(conn) == ["B"]
    shown = status.read(conn)["CP-1"][0]
    assert (shown.status, shown.online, shown.free_in_min) == ("Offline", False, None)


def test_a_hub_that_lost_a_station_writes_nothing_for_it(conn):
    membership.beat(conn, "A")
    membership.beat(conn, "B")
    old = membership.claim(conn, "CP-1", "A")
    new = membership.claim(conn, "CP-1", "B")
    assert status.publish(conn, "A", [(view("CP-1", "Occupied"), old)]) == 0
    assert status.publish(conn, "B", [(view("CP-1", "Reserved"), new)]) == 1
    got, home = status.read(conn)["CP-1"]
    assert (got.status, home, got.connector_status) == ("Reserved", "B", {1: "Available", 2: "Charging"})


def test_a_request_reaches_only_the_stations_current_home_and_is_taken_once(conn):
    membership.beat(conn, "A")
    membership.beat(conn, "C")
    assert requests.send(conn, "CP-9", "reserve_now", {"x": 1}) is None  # no home: nobody to ask
    membership.claim(conn, "CP-1", "A")
    rid = requests.send(conn, "CP-1", "reserve_now", {"reservation_id": 7})
    assert rid is not None
    assert requests.take(conn, "C", rid) is None  # addressed to A
    got = requests.take(conn, "A", rid)
    assert got is not None and (got.station_id, got.kind, got.body) == ("CP-1", "reserve_now", {"reservation_id": 7})
    assert requests.take(conn, "A", rid) is None  # taken once


def test_a_request_for_a_station_that_moved_is_not_taken_by_its_old_home(conn):
    membership.beat(conn, "A")
    membership.claim(conn, "CP-1", "A")
    rid = requests.send(conn, "CP-1", "stop", {})
    membership.claim(conn, "CP-1", "B")  # the station reconnected to B before A took it
    assert requests.take(conn, "A", rid) is None
    assert requests.take_all(conn, "B") == []  # it was addressed to A at the old epoch: the sender times out


def test_a_hub_drains_the_requests_it_missed_in_order(conn):
    membership.claim(conn, "CP-1", "A")
    ids = [requests.send(conn, "CP-1", "k%d" % i, {}) for i in range(3)]
    assert [r.id for r in requests.take_all(conn, "A")] == ids
    assert requests.take_all(conn, "A") == []


def test_the_listener_resyncs_on_connect_and_hears_only_committed_notifications(dsn, conn):
    heard: "list[str]" = []
    resyncs = threading.Event()
    listener = Listener(dsn, {schema.CH_STATUS: heard.append}, resync=resyncs.set).start()
    try:
        wait_for(resyncs.is_set, 10, "the listener connected and resynced")
        with psycopg.connect(dsn) as tx:  # a transaction that rolls back notifies nobody
            tx.execute("SELECT pg_notify(%s, 'rolled-back')", (schema.CH_STATUS,))
            tx.rollback()
        membership.claim(conn, "CP-1", "A")
        status.publish(conn, "A", [(view("CP-1"), 1)])
        wait_for(lambda: heard == ["CP-1"], 10, "only the committed notification")
    finally:
        listener.stop()

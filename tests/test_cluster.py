"""The cluster's primitives on a real PostgreSQL: homes fenced by epoch, liveness, shared views, hub requests, LISTEN."""

import threading
import time

import psycopg
import pytest

from hub.cluster import membership, requests, schema, status
from hub.cluster.bus import Listener
from hub.domain.stations import StationView
from hub.messages import RemoteAnswer
from transport import kinds as K
from waiting import wait_for


@pytest.fixture
def dsn(pg_database):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        schema.apply(conn)
    return pg_database


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


class Inbox:
    """Stands in for an actor ref: what the node tells it, in order."""

    def __init__(self):
        self.got = []
        self.lock = threading.Lock()

    def tell(self, msg):
        with self.lock:
            self.got.append(msg)

    def of(self, kind):
        with self.lock:
            return [m for m in self.got if type(m).__name__ == kind]


class Outbox:
    """Stands in for the gateway's Outbox: which peers are linked here, and what was sent to them."""

    def __init__(self, peers):
        self.peers = peers
        self.sent = []

    def send_to_peer(self, role, peer_id, msg):
        self.sent.append((role, peer_id, msg))


def node(dsn, hub_id):
    from hub.cluster.node import ClusterNode

    n = ClusterNode(dsn, hub_id, beat_s=0.1)
    n.registry, n.book = Inbox(), Inbox()
    return n.start()


def test_two_nodes_share_views_requests_reservations_and_homes_and_a_dead_one_reads_offline(dsn, monkeypatch):
    monkeypatch.setattr(membership, "BEAT_S", 0.1)
    monkeypatch.setattr(status, "BEAT_S", 0.1)
    a, b = node(dsn, "A"), node(dsn, "B")
    try:
        wait_for(lambda: a._listener.connected.is_set() and b._listener.connected.is_set(), 10, "both listening")
        epoch = a.claim("CP-1")
        a.publish(view("CP-1", "Reserved"), epoch)

        def remote_status():
            views = [v for m in b.registry.of("RemoteViews") for v in m.views if v.id == "CP-1"]
            return views[-1].status if views else None

        wait_for(lambda: remote_status() == "Reserved", 10, "B sees A's station Reserved")
        assert a.registry.of("RemoteViews") == []  # a hub is never told its own stations' views

        rid = b.send("CP-1", "reserve_now", {"reservation_id": 5})
        wait_for(lambda: a.registry.of("RemoteRequest"), 10, "A is asked to relay B's request")
        req = a.registry.of("RemoteRequest")[0]
        assert (req.request_id, req.station_id, req.epoch, req.body) == (rid, "CP-1", epoch, {"reservation_id": 5})
        assert req.reply_hub == "B"
        a.answer(req, (K.ERROR, [8, "taken"]))
        wait_for(lambda: b.registry.of("RemoteAnswer"), 10, "B hears A's answer")
        assert b.registry.of("RemoteAnswer")[0] == RemoteAnswer(rid, (K.ERROR, [8, "taken"]))

        # a message for a vehicle linked to B, sent by A, is delivered by B only
        a.outbox, b.outbox = Outbox(set()), Outbox({("vehicle", "V-1")})
        a.to_vehicle("V-1", [K.COMPLETE, 0, "S-1", 1234])
        wait_for(lambda: b.outbox.sent, 10, "B delivers to its vehicle")
        assert b.outbox.sent == [("vehicle", "V-1", [K.COMPLETE, 0, "S-1", 1234])] and a.outbox.sent == []

        b.announce_reservation(5, "CP-1", "confirmed")
        wait_for(lambda: a.book.of("ReservationChanged"), 10, "A's book hears of B's reservation")
        assert a.book.of("ReservationChanged")[0].reservation_id == 5
        a.announce_reservation(6, "CP-1", "confirmed")  # A's own news: B's book hears it, A's does not
        wait_for(lambda: [m for m in b.book.of("ReservationChanged") if m.reservation_id == 6], 10, "B hears A's")
        b.announce_reservation(7, "CP-1", "cancelled")  # after A's own: had A heard its own, it would be here
        wait_for(lambda: len(a.book.of("ReservationChanged")) == 2, 10, "A's book hears B's cancel")
        assert [m.reservation_id for m in a.book.of("ReservationChanged")] == [5, 7]

        # A dies without leaving (its threads stop, no clean exit): B shows its station Offline
        a._stop.set()
        a._wake.set()
        a._listener.stop()
        a._sync.join(5)
        wait_for(lambda: remote_status() == "Offline", 10, "B shows a dead hub's station Offline")

        # the station reconnects to B: A is told its home moved
        epoch_b = b.claim("CP-1")
        assert epoch_b == epoch + 1
        wait_for(lambda: [m for m in b.registry.of("HomeMoved") if m.epoch == epoch_b], 10, "the move is announced")
    finally:
        b.stop()
        a._calls.close()


def test_an_answer_payload_is_parsed_or_refused_never_raised():
    assert requests.parse_answer('answer 7 [3, [8, "taken"]]') == (7, (3, [8, "taken"]))
    assert requests.parse_answer("answer 7 null") == (7, None)
    for bad in ("7", "answer x []", "answer 7 {", "answer 7 [1]", "answer 7 [1, 2]", "reply 7 null"):
        assert requests.parse_answer(bad) is None, bad


def test_reservation_news_is_packed_into_as_few_notifications_as_fit_in_order():
    lines = ["%d CP-%d confirmed" % (i, i) for i in range(2000)]
    payloads = schema.chunks(lines)
    assert all(len(p) <= schema.MAX_PAYLOAD for p in payloads)
    assert "\n".join(payloads).split("\n") == lines
    assert len(payloads) == -(-sum(len(x) + 1 for x in lines) // schema.MAX_PAYLOAD) or len(payloads) <= 5
    assert schema.chunks([]) == []

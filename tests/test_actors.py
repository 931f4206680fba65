"""The actors alone: start, tell, collect the replies from a fake outbox, stop."""

import queue

import pytest

from hub.actors import LocatorActor, ReservationBookActor
from hub.locator import PublishedIndex
from hub.store import Store
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_INVALID_STATE, E_NOT_FOUND

NOW = 1_800_000_000
H = 3600


class Collector:
    """Stands in for the gateway's outbox and for the registry actor: collects into a queue."""

    def __init__(self):
        self.q = queue.Queue()

    def send(self, link_id, msg):
        self.q.put((link_id, msg))

    def tell(self, msg):
        self.q.put(msg)

    def get(self):
        return self.q.get(timeout=5)

    def empty(self):
        return self.q.empty()


class Clock:
    def __init__(self):
        self.t = NOW

    def __call__(self):
        return self.t


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "hub.db")
    s = Store(path)
    s.add_station("CP-1", -12.2664, -38.9663, 1, 22)
    s.add_station("CP-2", -12.2700, -38.9600, 1, 22)
    s.close()
    return path


@pytest.fixture
def actors():
    started = []
    yield started
    for ref in started:
        ref.stop()


def start_book(actors, db, **kw):
    outbox, registry, clock = Collector(), Collector(), Clock()
    ref = ReservationBookActor.start(db, outbox, clock=clock, registry=registry, **kw)
    actors.append(ref)
    return ref, outbox, registry, clock


def test_a_reserve_is_answered_with_a_result_and_the_registry_is_told(actors, db):
    ref, outbox, registry, _ = start_book(actors, db)
    ref.tell(("reserve", "L1", 7, "EV-1", "CP-1", NOW + H, NOW + 2 * H))
    link, msg = outbox.get()
    assert link == "L1" and msg[:3] == [K.RESERVE_RESULT, 7, True] and msg[4] == [] and msg[5] is None
    rid = msg[3]
    assert registry.get() == ("reserved", rid, "CP-1", "EV-1", NOW + H, NOW + 2 * H, 1)  # connector 1, the one chosen


def test_list_and_cancel_through_the_actor(actors, db):
    ref, outbox, registry, _ = start_book(actors, db)
    ref.tell(("reserve", "L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H))
    rid = outbox.get()[1][3]
    ref.tell(("list", "L1", 2, "EV-1"))
    _, msg = outbox.get()
    assert msg[:2] == [K.RESERVATIONS, 2]
    assert msg[2] == [{"reservation_id": rid, "station_id": "CP-1", "connector": 1,
                       "start": NOW + H, "end": NOW + 2 * H, "state": "confirmed"}]
    ref.tell(("cancel", "L2", 3, "EV-2", rid))
    assert outbox.get() == ("L2", [K.ERROR, 3, E_FORBIDDEN, "reservation %d is not yours" % rid])
    ref.tell(("cancel", "L1", 4, "EV-1", rid))
    assert outbox.get() == ("L1", [K.ACK, 4])
    ref.tell(("cancel", "L1", 5, "EV-1", rid))
    assert outbox.get()[1][:3] == [K.ERROR, 5, E_INVALID_STATE]
    registry.get()
    assert registry.get() == ("reservation_ended", rid, "CP-1", "cancelled")


def test_bad_requests_get_errors_and_the_actor_keeps_serving(actors, db):
    ref, outbox, _, _ = start_book(actors, db)
    ref.tell(("reserve", "L1", 1, "EV-1", "NOPE", NOW + H, NOW + 2 * H))
    assert outbox.get()[1][:3] == [K.ERROR, 1, E_NOT_FOUND]
    ref.tell(("reserve", "L1", 2, "EV-1", "CP-1", NOW + 2 * H, NOW + H))
    assert outbox.get()[1][:3] == [K.ERROR, 2, E_BAD_FIELD]
    ref.tell(("no-such-op",))
    ref.tell("not even a tuple")
    ref.tell(("list", "L1", 3, "EV-1"))
    assert outbox.get() == ("L1", [K.RESERVATIONS, 3, []])


def test_a_batch_is_answered_in_order_with_one_winner_per_window(actors, db):
    ref, outbox, _, _ = start_book(actors, db)
    batch = [("L%d" % i, i + 1, "EV-%d" % i, "CP-1", NOW + H, NOW + 2 * H) for i in range(5)]
    ref.tell(("reserve_batch", batch, NOW))
    replies = [outbox.get() for _ in range(5)]
    assert [link for link, _ in replies] == ["L0", "L1", "L2", "L3", "L4"]
    assert [msg[2] for _, msg in replies] == [True, False, False, False, False]


def test_a_tick_expires_no_shows_and_the_registry_hears_of_it(actors, db):
    ref, outbox, registry, clock = start_book(actors, db, grace_s=600)
    ref.tell(("reserve", "L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H))
    rid = outbox.get()[1][3]
    registry.get()
    ref.tell(("tick", NOW + H + 600))
    assert registry.get() == ("reservation_ended", rid, "CP-1", "expired")


def test_sessions_told_by_the_registry_occupy_and_free_the_connector(actors, db):
    ref, outbox, registry, _ = start_book(actors, db)
    ref.tell(("session_started", "CP-1", 1, "EV-9", None, NOW - 60, NOW + 1800))
    assert ref.ask(("next_change", "CP-1", NOW)) == (NOW + 1800, None)
    ref.tell(("session_ended", "CP-1", 1, "S-1", "EV-9", None, NOW + 600))
    assert ref.ask(("next_change", "CP-1", NOW + 600)) == (None, None)


def test_after_a_restart_the_registry_is_told_every_open_reservation(actors, db):
    ref, outbox, registry, _ = start_book(actors, db)
    ref.tell(("reserve", "L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H))
    rid = outbox.get()[1][3]
    ref.stop()
    actors.remove(ref)
    ref2, _, registry2, _ = start_book(actors, db)
    assert registry2.get() == ("reserved", rid, "CP-1", "EV-1", NOW + H, NOW + 2 * H, 1)


def test_the_locator_publishes_snapshots_that_other_threads_read_without_asking(actors):
    published = PublishedIndex()
    ref = LocatorActor.start(published, stations=[("A", 0.0, 0.0)])
    actors.append(ref)
    assert ref.proxy().snapshot_source().get() is published
    ref.tell(("upsert", "B", 0.0, 0.01))
    ref.tell(("upsert", "BAD", 99.0, 0.0))  # refused with a log line, not a crash
    ref.tell(("upsert_many", [("C", 1.0, 1.0)]))
    ref.ask(("upsert_many", []))  # a barrier: everything before it is handled
    assert [sid for _, sid in published.nearest(0.0, 0.0, 5)] == ["A", "B", "C"]
    snap = published.current
    ref.tell(("remove", "A"))
    ref.ask(("upsert_many", []))
    assert [sid for _, sid in published.nearest(0.0, 0.0, 5)] == ["B", "C"]
    assert [sid for _, sid in snap.nearest(0.0, 0.0, 5)] == ["A", "B", "C"]  # old snapshots stay whole


def test_the_book_gets_nearby_stations_from_the_locator_by_tell(actors, db):
    locator = LocatorActor.start(stations=[("CP-1", -12.2664, -38.9663), ("CP-2", -12.2700, -38.9600)])
    actors.append(locator)
    ref, outbox, _, _ = start_book(actors, db, locator=locator)
    ref.ask(("next_change", "CP-1", NOW))  # on_start done: the subscription is sent
    locator.ask(("upsert_many", []))  # subscription answered before anything we send next
    ref.tell(("reserve", "L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H))
    ref.tell(("reserve", "L2", 2, "EV-2", "CP-1", NOW + H, NOW + 2 * H))
    outbox.get()
    _, msg = outbox.get()
    assert msg[2] is False
    assert [a["station_id"] for a in msg[4]] == ["CP-1", "CP-2"]
    assert 0 < msg[4][1]["distance_km"] < 2

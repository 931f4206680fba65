"""The actors alone: start, tell, collect the replies from a fake outbox, stop."""

import queue

import pytest

from hub.actors.book import ReservationBookActor
from hub.actors.locator import LocatorActor
from hub.domain.locator import PublishedIndex
from hub.messages import (
    BookCall,
    BookTick,
    Cancel,
    ListReservations,
    RemoveStation,
    ReservationEnded,
    Reserved,
    ReserveBatch,
    ReserveRequest,
    SessionEnded,
    SessionStarted,
    Upsert,
    UpsertMany,
)
from hub.store.store import Store
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_INTERNAL, E_INVALID_STATE, E_NOT_FOUND

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


def reserve(ref, link_id, seq, vehicle_id, station_id, start, end):
    """One RESERVE, as the router sends it: a batch of one."""
    ref.tell(ReserveBatch([ReserveRequest(link_id, seq, vehicle_id, station_id, start, end)], NOW))


def on_the_book(ref, fn):
    """fn(book) on the book's thread, as the HTTP API calls it; its result (or exception) returned."""
    answer = queue.Queue()
    ref.tell(BookCall(fn, lambda result, error: answer.put((result, error))))
    result, error = answer.get(timeout=5)
    if error is not None:
        raise error
    return result


def start_book(actors, db, **kw):
    outbox, registry, clock = Collector(), Collector(), Clock()
    ref = ReservationBookActor.start(db, outbox, clock=clock, registry=registry, **kw)
    actors.append(ref)
    return ref, outbox, registry, clock


def test_a_reserve_is_answered_with_a_result_and_the_registry_is_told(actors, db):
    ref, outbox, registry, _ = start_book(actors, db)
    reserve(ref, "L1", 7, "EV-1", "CP-1", NOW + H, NOW + 2 * H)
    link, msg = outbox.get()
    assert link == "L1" and msg[:3] == [K.RESERVE_RESULT, 7, True] and msg[4] == [] and msg[5] is None
    rid = msg[3]
    assert registry.get() == Reserved(rid, "CP-1", "EV-1", NOW + H, NOW + 2 * H, 1)  # connector 1, the one chosen


def test_list_and_cancel_through_the_actor(actors, db):
    ref, outbox, registry, _ = start_book(actors, db)
    reserve(ref, "L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H)
    rid = outbox.get()[1][3]
    ref.tell(ListReservations("L1", 2, "EV-1"))
    _, msg = outbox.get()
    assert msg[:2] == [K.RESERVATIONS, 2]
    assert msg[2] == [
        {
            "reservation_id": rid,
            "station_id": "CP-1",
            "connector": 1,
            "start": NOW + H,
            "end": NOW + 2 * H,
            "state": "confirmed",
        }
    ]
    ref.tell(Cancel("L2", 3, "EV-2", rid))
    assert outbox.get() == ("L2", [K.ERROR, 3, E_FORBIDDEN, "reservation %d is not yours" % rid])
    ref.tell(Cancel("L1", 4, "EV-1", rid))
    assert outbox.get() == ("L1", [K.ACK, 4])
    ref.tell(Cancel("L1", 5, "EV-1", rid))
    assert outbox.get()[1][:3] == [K.ERROR, 5, E_INVALID_STATE]
    registry.get()
    assert registry.get() == ReservationEnded(rid, "CP-1", "cancelled")


def test_bad_requests_get_errors_and_the_actor_keeps_serving(actors, db):
    ref, outbox, _, _ = start_book(actors, db)
    reserve(ref, "L1", 1, "EV-1", "NOPE", NOW + H, NOW + 2 * H)
    assert outbox.get()[1][:3] == [K.ERROR, 1, E_NOT_FOUND]
    reserve(ref, "L1", 2, "EV-1", "CP-1", NOW + 2 * H, NOW + H)
    assert outbox.get()[1][:3] == [K.ERROR, 2, E_BAD_FIELD]
    ref.tell(("list", "L1", 9, "EV-1"))  # an untyped tuple is no message: logged, not answered
    ref.tell("not even a tuple")
    ref.tell(ListReservations("L1", 3, "EV-1"))
    assert outbox.get() == ("L1", [K.RESERVATIONS, 3, []])


def test_a_batch_is_answered_in_order_with_one_winner_per_window(actors, db):
    ref, outbox, _, _ = start_book(actors, db)
    batch = [ReserveRequest("L%d" % i, i + 1, "EV-%d" % i, "CP-1", NOW + H, NOW + 2 * H) for i in range(5)]
    done = queue.Queue()
    ref.tell(ReserveBatch(batch, NOW, lambda: done.put(outbox.q.qsize())))
    assert done.get(timeout=5) == 5  # `done` comes once every request of the batch is answered
    replies = [outbox.get() for _ in range(5)]
    assert [link for link, _ in replies] == ["L0", "L1", "L2", "L3", "L4"]
    assert [msg[2] for _, msg in replies] == [True, False, False, False, False]


def test_a_batch_that_fails_answers_each_seq_exactly_once_and_still_says_done(actors, db, monkeypatch):
    from hub.domain.booking import ReservationBook

    def broken(self, requests, now):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ReservationBook, "reserve_many", broken)
    ref, outbox, _, _ = start_book(actors, db)
    done = queue.Queue()
    batch = [
        ReserveRequest("L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H),
        ReserveRequest("L2", 2, "EV-2", "CP-2", NOW + H, NOW + 2 * H),
    ]
    ref.tell(ReserveBatch(batch, NOW, lambda: done.put(True)))
    assert done.get(timeout=5)
    ref.tell(ListReservations("L3", 3, "EV-1"))  # handled after the batch: everything the batch sent is queued
    replies = [outbox.get() for _ in range(3)]
    assert replies[:2] == [
        ("L1", [K.ERROR, 1, E_INTERNAL, "internal error; try again"]),
        ("L2", [K.ERROR, 2, E_INTERNAL, "internal error; try again"]),
    ]
    assert replies[2] == ("L3", [K.RESERVATIONS, 3, []])  # no second answer to seq 1 or 2 came between
    assert outbox.empty()


def test_a_tick_expires_no_shows_and_the_registry_hears_of_it(actors, db):
    ref, outbox, registry, clock = start_book(actors, db, grace_s=600)
    reserve(ref, "L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H)
    rid = outbox.get()[1][3]
    registry.get()
    ref.tell(BookTick(NOW + H + 600))
    assert registry.get() == ReservationEnded(rid, "CP-1", "expired")


def test_sessions_told_by_the_registry_occupy_and_free_the_connector(actors, db):
    ref, outbox, registry, _ = start_book(actors, db)
    ref.tell(SessionStarted("CP-1", 1, "EV-9", None, NOW - 60, NOW + 1800, "S-1"))
    assert on_the_book(ref, lambda book: book.next_change("CP-1", NOW)) == (NOW + 1800, None)
    reserve(ref, "L1", 1, "EV-1", "CP-1", NOW + 10 * 60, NOW + H)  # the one connector is busy then
    assert outbox.get()[1][:3] == [K.RESERVE_RESULT, 1, False]
    ref.tell(SessionEnded("CP-1", 1, "S-1", "EV-9", None, NOW + 600))
    assert on_the_book(ref, lambda book: book.next_change("CP-1", NOW + 600)) == (None, None)
    reserve(ref, "L1", 2, "EV-1", "CP-1", NOW + 10 * 60, NOW + H)
    assert outbox.get()[1][:3] == [K.RESERVE_RESULT, 2, True]


def test_after_a_restart_the_registry_is_told_every_open_reservation(actors, db):
    ref, outbox, registry, _ = start_book(actors, db)
    reserve(ref, "L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H)
    rid = outbox.get()[1][3]
    ref.stop()
    actors.remove(ref)
    ref2, _, registry2, _ = start_book(actors, db)
    assert registry2.get() == Reserved(rid, "CP-1", "EV-1", NOW + H, NOW + 2 * H, 1)


def test_the_locator_publishes_snapshots_that_other_threads_read_without_asking(actors):
    published = PublishedIndex()
    ref = LocatorActor.start(published, stations=[("A", 0.0, 0.0)])
    actors.append(ref)
    assert ref.proxy().snapshot_source().get() is published
    ref.tell(Upsert("B", 0.0, 0.01))
    ref.tell(Upsert("BAD", 99.0, 0.0))  # refused with a log line, not a crash
    ref.tell(UpsertMany([("C", 1.0, 1.0)]))
    ref.ask(UpsertMany([]))  # a barrier: everything before it is handled
    assert [sid for _, sid in published.nearest(0.0, 0.0, 5)] == ["A", "B", "C"]
    snap = published.current
    ref.tell(RemoveStation("A"))
    ref.ask(UpsertMany([]))
    assert [sid for _, sid in published.nearest(0.0, 0.0, 5)] == ["B", "C"]
    assert [sid for _, sid in snap.nearest(0.0, 0.0, 5)] == ["A", "B", "C"]  # old snapshots stay whole


def test_the_book_gets_nearby_stations_from_the_locator_by_tell(actors, db):
    locator = LocatorActor.start(stations=[("CP-1", -12.2664, -38.9663), ("CP-2", -12.2700, -38.9600)])
    actors.append(locator)
    ref, outbox, _, _ = start_book(actors, db, locator=locator)
    on_the_book(ref, lambda book: None)  # on_start done: the subscription is sent
    locator.ask(UpsertMany([]))  # subscription answered before anything we send next
    reserve(ref, "L1", 1, "EV-1", "CP-1", NOW + H, NOW + 2 * H)
    reserve(ref, "L2", 2, "EV-2", "CP-1", NOW + H, NOW + 2 * H)
    outbox.get()
    _, msg = outbox.get()
    assert msg[2] is False
    assert [a["station_id"] for a in msg[4]] == ["CP-1", "CP-2"]
    assert 0 < msg[4][1]["distance_km"] < 2


class BrokenEvents:
    """An event bus that fails to publish a session's end (a bug in a subscriber's formatting, say)."""

    def publish(self, kind, data):
        if kind == "session_end":
            raise RuntimeError("publish failed")


def test_a_registry_failure_after_the_ack_does_not_answer_the_same_seq_again(actors, db):
    from hub.messages import Boot, SessionEnd
    from hub.actors.registry import StationRegistry

    outbox = Collector()
    outbox.send_to_peer = lambda role, peer_id, msg: None
    outbox.request = lambda *a: None
    ref = StationRegistry.start(lambda: Store(db), outbox, Clock(), {"session_estimate_min": 45}, events=BrokenEvents())
    actors.append(ref)
    ref.tell(Boot("CP-1", "L1", 1, -12.2664, -38.9663, 1, 22.0, "fw"))
    ref.tell(SessionEnd("CP-1", "L1", 2, "S-1", 1, None, None, 500, NOW - 600, NOW, "Complete"))
    ref.tell(Boot("CP-2", "L1", 3, -12.27, -38.96, 1, 22.0, "fw"))  # a later message still gets its own answer
    ref.ask(UpsertMany([]))  # unknown to the registry: logged; as an ask it waits for everything before it
    assert [outbox.get() for _ in range(3)] == [("L1", [K.ACK, 1]), ("L1", [K.ACK, 2]), ("L1", [K.ACK, 3])]
    assert outbox.empty()
    s = Store(db)
    assert s.get_session("S-1")["energy_wh"] == 500  # recorded before the ACK
    s.close()

"""The ReservationBook: conflicts, alternatives, cancel rules, no-shows, sessions, batches, restarts."""

import queue
import sqlite3
import threading

import pytest
from hypothesis import given, settings, strategies as st

from hub.actors.book import ReservationBookActor
from hub.domain.booking import BookingError, ReservationBook
from hub.domain.locator import SpatialIndex
from hub.messages import ReserveBatch, ReserveRequest
from hub.store.store import Store
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_INTERNAL, E_INVALID_STATE, E_NOT_FOUND

NOW = 1_800_000_000
H = 3600

STATIONS = [  # id, lat, lon, connectors
    ("ONE", -12.2664, -38.9663, 1),
    ("TWO", -12.2700, -38.9600, 2),
    ("NEAR", -12.2600, -38.9700, 1),
    ("FAR", -12.9714, -38.5014, 1),
]


def provision(store):
    index = SpatialIndex()
    for sid, lat, lon, conns in STATIONS:
        store.add_station(sid, lat, lon, conns, 22)
        index.upsert(sid, lat, lon)
    return index


@pytest.fixture
def book(store):
    index = provision(store)
    b = ReservationBook(store, nearby=lambda sid: index.around(sid, 10))
    b.load()
    return b


def test_a_second_reservation_for_the_same_window_at_a_one_connector_station_conflicts(book):
    first = book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW)
    assert first.ok and first.reservation.id > 0 and first.reservation.connector == 1
    second = book.reserve("v2", "ONE", NOW + H + 1800, NOW + 3 * H, NOW)
    assert not second.ok and second.reservation is None and "conflict" in second.reason


def test_a_two_connector_station_takes_two_overlapping_reservations_but_not_three(book):
    a = book.reserve("v1", "TWO", NOW + H, NOW + 3 * H, NOW)
    b = book.reserve("v2", "TWO", NOW + 2 * H, NOW + 4 * H, NOW)
    c = book.reserve("v3", "TWO", NOW + 2 * H + 60, NOW + 2 * H + 120, NOW)
    assert a.ok and b.ok and not c.ok
    assert {a.reservation.connector, b.reservation.connector} == {1, 2}
    # Outside the overlap there is room again.
    assert book.reserve("v3", "TWO", NOW + 3 * H, NOW + 5 * H, NOW).ok


def test_back_to_back_windows_do_not_conflict(book):
    assert book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW).ok
    assert book.reserve("v2", "ONE", NOW + 2 * H, NOW + 3 * H, NOW).ok
    assert book.reserve("v3", "ONE", NOW, NOW + H, NOW).ok
    assert not book.reserve("v4", "ONE", NOW + 2 * H - 1, NOW + 2 * H + 1, NOW).ok


def test_a_conflict_offers_the_next_free_window_here_and_free_stations_nearby(book):
    book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW)
    book.reserve("v2", "ONE", NOW + 2 * H, NOW + 3 * H, NOW)
    book.reserve("v3", "NEAR", NOW + H, NOW + 2 * H, NOW)
    result = book.reserve("v4", "ONE", NOW + H, NOW + 2 * H, NOW)
    assert not result.ok
    here, *nearby = result.alternatives
    assert here == {"station_id": "ONE", "start": NOW + 3 * H, "end": NOW + 4 * H, "distance_km": 0.0}
    assert [a["station_id"] for a in nearby] == ["TWO", "FAR"]  # NEAR is busy then; TWO is closer than FAR
    assert all(a["start"] == NOW + H and a["end"] == NOW + 2 * H for a in nearby)
    assert nearby[0]["distance_km"] < nearby[1]["distance_km"]
    for alt in result.alternatives:  # every alternative really is bookable
        assert book.reserve("v5", alt["station_id"], alt["start"], alt["end"], NOW).ok


def test_the_next_free_window_accounts_for_a_running_session(book):
    book.session_started("ONE", 1, "walk-in", None, NOW - 600, NOW + 1200)
    result = book.reserve("v1", "ONE", NOW, NOW + H, NOW)
    assert not result.ok
    assert result.alternatives[0]["start"] == NOW + 1200


def test_a_session_past_its_expected_end_keeps_its_connector_for_a_station_hold_period(book):
    from hub.domain.booking import OVERRUN_HOLD_S

    book.session_started("ONE", 1, "walk-in", None, NOW - 3600, NOW - 60)  # expected to end a minute ago
    soon = book.reserve("v1", "ONE", NOW + 300, NOW + H, NOW + 0.25)  # a station would refuse to hold it now
    assert not soon.ok and soon.alternatives[0]["start"] == NOW + OVERRUN_HOLD_S + 1
    assert type(soon.alternatives[0]["start"]) is int and type(soon.alternatives[0]["end"]) is int  # wire integers


def test_a_session_overrunning_into_its_connectors_next_window_still_leaves_the_other_connector_free(book):
    later = book.reserve("v2", "TWO", NOW + H, NOW + 2 * H, NOW)
    assert later.ok and later.reservation.connector == 1
    # a walk-in on connector 1 runs past the start of that window (its vehicle charges longer)
    book.session_started("TWO", 1, "walk-in", None, NOW - 600, NOW + H + 1800)
    # one connector busy twice at an instant is one connector: connector 2 is free for the window
    other = book.reserve("v3", "TWO", NOW + H, NOW + 2 * H, NOW)
    assert other.ok and other.reservation.connector == 2


def test_a_window_the_station_refuses_because_its_connector_is_still_busy_moves_to_the_free_one(book):
    r = book.reserve("v2", "TWO", NOW + H, NOW + 2 * H, NOW).reservation
    book.session_started("TWO", r.connector, "walk-in", None, NOW - 600, NOW + H + 1800)
    moved = book.move(r.id, r.connector, NOW + H)  # an OCPP charger answered ReserveNow: Occupied
    assert moved is not None and moved.connector != r.connector and moved.id == r.id


@pytest.mark.parametrize(
    "vehicle, station, start, end, code, fragment",
    [
        ("v1", "NOPE", NOW + H, NOW + 2 * H, E_NOT_FOUND, "not known"),
        ("v1", "ONE", NOW + H, NOW + H, E_BAD_FIELD, "after start"),
        ("v1", "ONE", NOW - 3600, NOW + H, E_BAD_FIELD, "in the past"),
        ("v1", "ONE", NOW + H, NOW + 26 * H, E_BAD_FIELD, "at most 24 h"),
        ("v1", "ONE", NOW + 31 * 24 * H, NOW + 31 * 24 * H + H, E_BAD_FIELD, "within 30 days"),
        ("v1", "ONE", "14:00", NOW + H, E_BAD_FIELD, "integer"),
        ("", "ONE", NOW + H, NOW + 2 * H, E_BAD_FIELD, "vehicle id"),
    ],
)
def test_bad_requests_are_refused_with_a_code_and_a_reason(book, vehicle, station, start, end, code, fragment):
    with pytest.raises(BookingError) as info:
        book.reserve(vehicle, station, start, end, NOW)
    assert info.value.code == code and fragment in info.value.text


def test_a_start_within_a_minute_of_now_is_accepted(book):
    assert book.reserve("v1", "ONE", NOW - 30, NOW + H, NOW).ok


def test_only_the_owner_can_cancel_and_a_cancelled_window_is_free_again(book):
    r = book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW).reservation
    with pytest.raises(BookingError) as info:
        book.cancel("v2", r.id)
    assert info.value.code == E_FORBIDDEN
    assert book.cancel("v1", r.id).state == "cancelled"
    assert book.list_for("v1") == []
    assert book.reserve("v2", "ONE", NOW + H, NOW + 2 * H, NOW).ok


def test_cancelling_an_unknown_or_ended_reservation_says_which(book):
    r = book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW).reservation
    book.cancel("v1", r.id)
    with pytest.raises(BookingError) as info:
        book.cancel("v1", r.id)
    assert info.value.code == E_INVALID_STATE and "cancelled" in info.value.text
    with pytest.raises(BookingError) as info:
        book.cancel("v2", r.id)
    assert info.value.code == E_FORBIDDEN  # someone else's: do not tell them its state
    with pytest.raises(BookingError) as info:
        book.cancel("v1", 424242)
    assert info.value.code == E_NOT_FOUND


def test_a_vehicle_lists_its_open_reservations_earliest_first(book):
    late = book.reserve("v1", "ONE", NOW + 5 * H, NOW + 6 * H, NOW).reservation
    early = book.reserve("v1", "TWO", NOW + H, NOW + 2 * H, NOW).reservation
    book.reserve("v2", "NEAR", NOW + H, NOW + 2 * H, NOW)
    assert [r.id for r in book.list_for("v1")] == [early.id, late.id]
    assert book.list_for("nobody") == []


def test_a_no_show_is_released_after_the_grace_period_and_reported_once(book, store):
    r = book.reserve("v1", "ONE", NOW + H, NOW + 3 * H, NOW).reservation
    book.take_events()
    assert book.expire_no_shows(NOW + H + 599, grace_s=600) == []
    expired = book.expire_no_shows(NOW + H + 600, grace_s=600)
    assert [(x.id, x.state) for x in expired] == [(r.id, "expired")]
    assert book.take_events() == [("ended", expired[0], "expired")]
    assert book.expire_no_shows(NOW + 5 * H) == []
    assert store.get_reservation(r.id)["state"] == "expired"
    assert book.reserve("v2", "ONE", NOW + H + 700, NOW + 2 * H, NOW + H + 650).ok


def test_a_window_shorter_than_the_grace_expires_at_its_end(book):
    book.reserve("v1", "ONE", NOW + H, NOW + H + 300, NOW)
    assert len(book.expire_no_shows(NOW + H + 300, grace_s=600)) == 1


def test_a_session_fulfils_the_reservation_and_holds_the_connector_until_it_ends(book, store):
    r = book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW).reservation
    fulfilled = book.session_started("ONE", 1, "v1", None, NOW + H - 300, None)  # a little early, no id given
    assert fulfilled.id == r.id and store.get_reservation(r.id)["state"] == "fulfilled"
    assert book.expire_no_shows(NOW + 3 * H) == []
    assert not book.is_free("ONE", NOW + 2 * H - 60, NOW + 2 * H + 60, NOW + H)
    assert book.next_change("ONE", NOW + H) == (NOW + 2 * H, None)
    book.session_ended("S1", "ONE", 1, "v1", r.id, NOW + H + 900)
    assert book.is_free("ONE", NOW + H + 900, NOW + 2 * H, NOW + H + 900)
    assert book.next_change("ONE", NOW + H + 900) == (None, None)


def test_a_session_end_with_a_still_open_reservation_closes_it_as_fulfilled(book, store):
    r = book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW).reservation
    closed = book.session_ended("S1", "ONE", 1, "v1", r.id, NOW + H + 900)
    assert closed.state == "fulfilled" and store.get_reservation(r.id)["state"] == "fulfilled"


def test_someone_elses_reservation_id_does_not_fulfil_it(book):
    r = book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW).reservation
    assert book.session_started("ONE", 1, "intruder", r.id, NOW + H, NOW + 2 * H) is None
    assert book.get(r.id).state == "confirmed"


def test_next_change_gives_free_in_and_the_next_reservation(book):
    assert book.next_change("ONE", NOW) == (None, None)
    book.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW)
    book.reserve("v2", "ONE", NOW + 2 * H, NOW + 3 * H, NOW)
    assert book.next_change("ONE", NOW) == (None, NOW + H)
    assert book.next_change("ONE", NOW + H + 60) == (NOW + 3 * H, NOW + 2 * H)
    assert book.next_change("NOPE", NOW) == (None, None)


def test_a_reservation_survives_reopening_the_store(db):
    s = Store(db)
    provision(s)
    b = ReservationBook(s)
    b.load()
    r = b.reserve("v1", "ONE", NOW + H, NOW + 2 * H, NOW).reservation
    s.close()
    s = Store(db)
    b = ReservationBook(s)
    b.load()
    assert b.list_for("v1") == [r]
    assert not b.reserve("v2", "ONE", NOW + H, NOW + 2 * H, NOW).ok
    s.close()


def test_a_station_provisioned_while_the_hub_runs_can_be_booked(book, db):
    other = Store(db)
    other.add_station("NEW", 0, 0, 1, 11)
    other.close()
    assert book.reserve("v1", "NEW", NOW + H, NOW + 2 * H, NOW).ok


def test_a_batch_is_decided_in_order_and_stored_in_one_transaction(book, store):
    calls = []
    real = store.insert_reservations
    store.insert_reservations = lambda rows: calls.append(list(rows)) or real(rows)
    results = book.reserve_many(
        [
            ("v1", "ONE", NOW + H, NOW + 2 * H),
            ("v2", "ONE", NOW + H, NOW + 2 * H),
            ("v3", "NOPE", NOW, NOW + H),
            ("v4", "TWO", NOW + H, NOW + 2 * H),
        ],
        NOW,
    )
    assert [getattr(r, "ok", None) for r in results] == [True, False, None, True]
    assert isinstance(results[2], BookingError)
    assert len(calls) == 1 and len(calls[0]) == 2
    assert [e[0] for e in book.take_events()] == ["reserved", "reserved"]


def test_a_failed_store_write_refuses_the_batch_and_forgets_it(book, store):
    def broken(rows):
        raise sqlite3.OperationalError("disk I/O error")

    store.insert_reservations = broken
    results = book.reserve_many([("v1", "ONE", NOW + H, NOW + 2 * H)], NOW)
    assert isinstance(results[0], BookingError) and results[0].code == E_INTERNAL
    assert book.is_free("ONE", NOW + H, NOW + 2 * H, NOW) and len(book) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["ONE", "TWO"]), st.integers(0, 24), st.integers(1, 8)),
        min_size=1,
        max_size=40,
    )
)
def test_a_batch_never_double_books_and_refuses_only_real_conflicts(requests):
    store = Store(":memory:")
    provision(store)
    book = ReservationBook(store)
    book.load()
    reqs = [("v%d" % i, sid, NOW + a * 900, NOW + (a + d) * 900) for i, (sid, a, d) in enumerate(requests)]
    results = book.reserve_many(reqs, NOW)
    conns = {sid: c for sid, _, _, c in STATIONS}
    held = {"ONE": [], "TWO": []}
    for req, res in zip(reqs, results):
        if res.ok:
            held[req[1]].append((req[2], req[3]))

    def peak(windows, s, e):
        return max(
            (sum(1 for a, b in windows if a <= t < b) for t in {s} | {a for a, _ in windows if s <= a < e}), default=0
        )

    for sid, windows in held.items():
        for s, e in windows:
            assert peak(windows, s, e) <= conns[sid]
    for req, res in zip(reqs, results):
        if not res.ok:  # refused: adding it would really have exceeded the connectors
            assert peak(held[req[1]] + [(req[2], req[3])], req[2], req[3]) > conns[req[1]]
    store.close()


# --- through the actor ---------------------------------------------------------------------------


class FakeOutbox:
    def __init__(self):
        self.q = queue.Queue()

    def send(self, link_id, msg):
        self.q.put((link_id, msg))


def test_200_vehicles_racing_for_one_window_get_exactly_one_confirmation(db):
    s = Store(db)
    index = provision(s)
    s.close()
    outbox = FakeOutbox()
    ref = ReservationBookActor.start(db, outbox, clock=lambda: NOW, nearby=lambda sid: index.around(sid, 10))
    try:

        def racer(t):
            for i in range(10):
                n = t * 10 + i
                ref.tell(
                    ReserveBatch([ReserveRequest("link-%d" % n, n + 1, "v%d" % n, "ONE", NOW + H, NOW + 2 * H)], NOW)
                )

        threads = [threading.Thread(target=racer, args=(t,)) for t in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        replies = [outbox.q.get(timeout=10) for _ in range(200)]
    finally:
        ref.stop()
    assert all(msg[0] == K.RESERVE_RESULT for _, msg in replies)
    assert len({link for link, _ in replies}) == 200
    winners = [msg for _, msg in replies if msg[2] is True]
    losers = [msg for _, msg in replies if msg[2] is False]
    assert len(winners) == 1 and len(losers) == 199
    for msg in losers:
        alternatives = msg[4]
        assert msg[3] is None and alternatives and "conflict" in msg[5]
        assert alternatives[0]["station_id"] == "ONE" and alternatives[0]["start"] == NOW + 2 * H
    s = Store(db)
    assert len(s.load_open_reservations()) == 1
    s.close()


def test_a_book_adopts_what_another_hub_confirmed_moved_or_ended_in_the_shared_store(tmp_path):
    from hub.domain.booking import ReservationBook
    from hub.store.store import Store

    path = str(tmp_path / "shared.db")
    setup = Store(path)
    setup.add_station("CP-1", 1.0, 2.0, 2, 22.0)
    setup.add_vehicle("V-1")
    here, there = ReservationBook(Store(path)), ReservationBook(Store(path))
    here.load()
    there.load()
    start = 10_000
    res = there.reserve_many([("V-1", "CP-1", start, start + 600, None)], now=start - 1000)[0]
    there.take_events()
    rid = res.reservation.id
    assert here.adopt(rid) == "reserved"
    ((kind, r),) = here.take_events()
    assert (kind, r.id, r.connector) == ("reserved", rid, res.reservation.connector)
    assert here.adopt(rid) is None  # already agreed: no news
    there.cancel("V-1", rid)
    assert here.adopt(rid) == "cancelled"
    assert [e[0] for e in here.take_events()] == ["ended"]


def test_a_book_resyncs_from_the_shared_store_what_no_notification_told_it(tmp_path):
    from hub.domain.booking import ReservationBook
    from hub.store.store import Store

    path = str(tmp_path / "shared.db")
    setup = Store(path)
    setup.add_station("CP-1", 1.0, 2.0, 1, 22.0)
    setup.add_station("CP-2", 1.0, 2.0, 1, 22.0)
    setup.add_vehicle("V-1")
    here, there = ReservationBook(Store(path)), ReservationBook(Store(path))
    here.load()
    there.load()
    start = 10_000
    made = [
        there.reserve_many([("V-1", sid, start, start + 600, None)], now=start - 1000)[0] for sid in ("CP-1", "CP-2")
    ]
    assert here.resync("CP-1") == 1  # only that station
    assert [e[1].station_id for e in here.take_events()] == ["CP-1"]
    there.cancel("V-1", made[0].reservation.id)
    assert here.resync() == 2  # CP-1's ended, CP-2's new
    assert sorted((e[0], e[1].station_id) for e in here.take_events()) == [("ended", "CP-1"), ("reserved", "CP-2")]
    assert here.resync() == 0


def test_a_window_learned_from_the_store_after_a_refusal_is_told_like_any_new_reservation(tmp_path):
    from hub.domain.booking import ReservationBook
    from hub.store.store import Store

    path = str(tmp_path / "shared.db")
    setup = Store(path)
    setup.add_station("CP-1", 1.0, 2.0, 1, 22.0)
    for v in ("V-1", "V-2"):
        setup.add_vehicle(v)
    here, there = ReservationBook(Store(path)), ReservationBook(Store(path))
    here.load()
    there.load()
    start = 10_000
    theirs = there.reserve_many([("V-1", "CP-1", start, start + 600, None)], now=start - 1000)[0]
    ours = here.reserve_many([("V-2", "CP-1", start, start + 600, None)], now=start - 1000)[0]
    assert theirs.ok and not ours.ok  # the store refused ours: the window was taken by the other book
    told = [(e[0], e[1].id) for e in here.take_events()]
    assert told == [("reserved", theirs.reservation.id)]  # so the registry here can send it to the station
    assert here.adopt(theirs.reservation.id) is None  # the later news finds memory agreeing


def test_a_session_another_hub_recorded_keeps_the_connector_busy_here_until_it_ends(tmp_path):
    from hub.domain.booking import ReservationBook
    from hub.store.store import Store

    store = Store(str(tmp_path / "shared.db"))
    store.add_station("CP-1", 1.0, 2.0, 1, 22.0)
    store.add_vehicle("V-1")
    book = ReservationBook(store)
    book.load()
    now = 10_000
    running = {"station_id": "CP-1", "connector": 1, "session_id": "S-1", "vehicle_id": "V-9", "reservation_id": None}
    book.follow_sessions("CP-1", [dict(running, started=now - 60)])
    assert not book.reserve_many([("V-1", "CP-1", now, now + 600, None)], now=now)[0].ok
    book.follow_sessions("CP-1", [])  # it ended there
    assert book.reserve_many([("V-1", "CP-1", now, now + 600, None)], now=now)[0].ok

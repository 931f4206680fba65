"""Issue 14 item 4, the rules: which reservations a station is sent (its table holds 16, the hub
books 30 days ahead), what the hub does with each RESERVE_NOW reply, and how the book moves or
cancels a reservation a station refused. Pure: no actor, no process (the real hub: test_reservation_sync.py)."""

import pytest

from hub.domain import station_sync as S
from hub.domain.booking import ReservationBook
from hub.store.store import Store
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_CONFLICT, E_INTERNAL, E_INVALID_STATE, E_NOT_FOUND, E_OVERLOADED

NOW = 1_900_000_000
H = 3600
ACK = (K.ACK, [])


def windows(n, first=NOW + H):
    """n back-to-back one-hour windows, ids 1..n, latest id last."""
    return {rid: ("V-%d" % rid, first + (rid - 1) * H, first + rid * H) for rid in range(1, n + 1)}


def error(code):
    return (K.ERROR, [code, "because"])


def test_a_station_is_sent_only_its_next_16_windows_and_the_17th_when_one_ends():
    sync, w = S.StationSync(), windows(20)
    assert K.MAX_RESERVATIONS == 16 and sync.limit == 16
    cancel, send = sync.plan(w)
    assert cancel == [] and [rid for rid, _t in send] == list(range(1, 17))
    assert sync.plan(w) == ([], [])  # nothing twice
    for rid, token in send:
        assert sync.on_reply(rid, token, ACK) == S.HELD
    del w[3]
    assert sync.forget(3) is True  # cancelled at the hub while on the station
    cancel, send = sync.plan(w)
    assert cancel == [3] and [rid for rid, _t in send] == [17]  # its row freed first, then the 17th
    for rid in (1, 2, 4):
        del w[rid]
        sync.forget(rid, cancel=False)  # used by sessions: the station removed them itself
    assert sync.plan(w) == ([], [(18, 18), (19, 19), (20, 20)])


def test_an_earlier_booking_pushes_the_last_sent_window_out_and_it_is_cancelled_on_the_station_first():
    sync, w = S.StationSync(), windows(16, first=NOW + 2 * H)
    sync.plan(w)
    w[99] = ("V-99", NOW, NOW + H)  # earlier than all of them
    cancel, send = sync.plan(w)
    assert cancel == [16] and [rid for rid, _t in send] == [99]


def test_what_ended_or_was_displaced_while_the_station_was_offline_is_cancelled_when_it_is_back():
    sync, w = S.StationSync(), windows(17, first=NOW + 2 * H)
    sync.plan(w)  # 1..16 sent
    sync.reset()  # the link went down
    del w[5]
    assert sync.forget(5) is True  # cancelled by its vehicle meanwhile
    del w[6]
    assert sync.forget(6, cancel=False) is True  # used by a session: the station removed it itself
    w[99] = ("V-99", NOW, NOW + H)  # booked meanwhile, earlier than all
    sync.reset()  # back up
    cancel, send = sync.plan(w)
    assert cancel == [5]  # 16 is still inside the horizon (5 and 6 freed two rows)
    assert sorted(r for r, _t in send) == sorted([99] + [r for r in range(1, 18) if r not in (5, 6)][:15])
    w[98] = ("V-98", NOW - H, NOW)
    cancel, _send = sync.plan(w)
    assert cancel == [17]  # displaced by an earlier one


def test_a_window_booked_on_another_connector_is_sent_again():
    sync, w = S.StationSync(), windows(1)
    sync.changed(1, 2)
    ((rid, token),) = sync.plan(w)[1]
    assert sync.on_reply(rid, token, ACK) == S.HELD and sync.held(1)
    sync.changed(1, 2)
    assert sync.plan(w) == ([], [])  # the same connector again: nothing to send
    sync.changed(1, 1)
    assert not sync.held(1) and [r for r, _t in sync.plan(w)[1]] == [1]


@pytest.mark.parametrize(
    "connector, reply, action",
    [
        (1, ACK, S.HELD),
        (1, None, S.RETRY),  # no answer (a lost frame): sent again
        (1, error(E_OVERLOADED), S.RETRY),  # table full: the station frees rows as time passes
        (1, error(E_INTERNAL), S.RETRY),
        (1, error(E_INVALID_STATE), S.MOVE),  # that connector is busy or faulted: another one
        (1, error(E_CONFLICT), S.MOVE),
        (0, error(E_INVALID_STATE), S.CANCEL),  # "any" refused: no other connector to try
        (1, error(E_BAD_FIELD), S.CANCEL),  # no such connector, window over
        (1, error(E_NOT_FOUND), S.CANCEL),
    ],
)
def test_every_reserve_now_reply_is_decided(connector, reply, action):
    sync, w = S.StationSync(), windows(1)
    sync.changed(1, connector)
    ((rid, token),) = sync.plan(w)[1]
    assert sync.on_reply(rid, token, reply) == action
    assert sync.retry_due == (action == S.RETRY)  # the registry's tick plans again only then
    resent = [r for r, _t in sync.plan(w)[1]]
    assert resent == ([1] if action == S.RETRY else [])


def test_a_window_that_never_gets_an_answer_is_given_up_after_max_tries_but_a_full_table_never_is():
    sync, w = S.StationSync(), windows(2)
    actions = {1: [], 2: []}
    for _ in range(S.MAX_TRIES + 3):
        for rid, token in sync.plan(w)[1]:
            actions[rid].append(sync.on_reply(rid, token, None if rid == 1 else error(E_OVERLOADED)))
    assert actions[1] == [S.RETRY] * (S.MAX_TRIES - 1) + [S.CANCEL]
    assert set(actions[2]) == {S.RETRY} and len(actions[2]) == S.MAX_TRIES + 3


def test_a_reply_to_a_send_superseded_since_is_ignored():
    sync, w = S.StationSync(), windows(1)
    ((rid, old),) = sync.plan(w)[1]
    sync.reset()  # the link went down and up: sent again
    ((_rid, new),) = sync.plan(w)[1]
    assert sync.on_reply(rid, old, error(E_BAD_FIELD)) == S.STALE
    assert sync.on_reply(rid, new, ACK) == S.HELD


# --- the book acts on MOVE and CANCEL ----------------------------------------------------------------


@pytest.fixture
def book(tmp_path):
    store = Store(str(tmp_path / "b.db"))
    store.add_station("CP-2", -12.0, -38.0, 2, 22.0)
    b = ReservationBook(store)
    b.load()
    yield b
    store.close()


def test_the_book_moves_a_refused_reservation_to_the_other_free_connector_and_stores_it(book):
    r = book.reserve("V-1", "CP-2", NOW + H, NOW + 2 * H, NOW).reservation
    assert r.connector == 1
    book.take_events()
    moved = book.move(r.id, 1, NOW)
    assert moved.connector == 2 and book.get(r.id).connector == 2
    assert book._store.get_reservation(r.id)["connector"] == 2
    assert book.take_events() == [("reserved", moved)]  # the registry sends it again


def test_a_refused_reservation_with_no_other_connector_is_not_moved_and_can_be_cancelled(book):
    a = book.reserve("V-1", "CP-2", NOW + H, NOW + 2 * H, NOW).reservation
    b = book.reserve("V-2", "CP-2", NOW + H, NOW + 2 * H, NOW).reservation
    book.take_events()
    assert book.move(b.id, b.connector, NOW) is None
    assert book.get(b.id) == b and book.get(a.id) == a  # nothing changed
    gone = book.cancel_refused(b.id, "connector 2 is Faulted")
    assert gone.state == "cancelled" and book.get(b.id) is None
    assert book._store.get_reservation(b.id)["state"] == "cancelled"
    assert book.take_events() == [("ended", gone, "cancelled")]
    # the room it held is free again
    assert book.reserve("V-3", "CP-2", NOW + H, NOW + 2 * H, NOW).ok


def test_a_repeated_request_id_is_answered_with_the_first_reservation_in_a_batch_and_after_it(book):
    first, again, other = book.reserve_many(
        [
            ("V-1", "CP-2", NOW + H, NOW + 2 * H, "k1"),
            ("V-1", "CP-2", NOW + H, NOW + 2 * H, "k1"),
            ("V-2", "CP-2", NOW + H, NOW + 2 * H, "k1"),
        ],
        NOW,
    )
    assert first.ok and again.reservation.id == first.reservation.id
    assert other.ok and other.reservation.id != first.reservation.id  # keys are per vehicle
    later = book.reserve_many([("V-1", "CP-2", NOW + 5 * H, NOW + 6 * H, "k1")], NOW)[0]
    assert later.ok and later.reservation.id == first.reservation.id and later.reservation.start == NOW + H
    assert len(book.list_for("V-1")) == 1


def test_a_reservation_the_station_drops_later_is_moved_when_it_named_a_connector_else_cancelled():
    from hub.domain import station_sync
    from transport.errors import E_INVALID_STATE

    sync = station_sync.StationSync()
    windows = {1: ("V-1", 100, 200), 2: ("V-2", 300, 400)}
    sync.connectors.update({1: 1, 2: 0})
    _cancel, send = sync.plan(windows)
    for rid, token in send:
        assert sync.on_reply(rid, token, (8, [])) == station_sync.HELD
    assert sync.dropped(1, E_INVALID_STATE) == station_sync.MOVE
    assert sync.dropped(2, E_INVALID_STATE) == station_sync.CANCEL
    assert sync.dropped(3, E_INVALID_STATE) == station_sync.STALE  # never sent
    assert not sync.held(1) and not sync.held(2)

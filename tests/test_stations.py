"""The registry's rules (hub/domain/stations.py) alone: no actor, no thread, no store, no process."""

import pytest

from hub import messages
from hub.domain.authz import Refusal
from hub.domain.stations import (
    MAX_CONNECTORS,
    MAX_ID_LEN,
    MAX_RESERVATION_ID,
    StationRequests,
    StationView,
    Stations,
    display_status,
    relay_outcome,
)
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_NOT_FOUND, E_TIMEOUT

NOW = 1_800_000_000
ESTIMATE_S = 45 * 60


class Clock:
    def __init__(self) -> None:
        self.t = float(NOW)

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stations(clock: Clock) -> Stations:
    return Stations(clock, ESTIMATE_S)


def online_station(stations: Stations, connectors: int = 2, station_id: str = "CP-1"):
    st = stations.learn(station_id, -12.0, -38.0, connectors, 22.0, "Praça")
    stations.set_online(st, True)
    for n in range(1, connectors + 1):
        stations.set_status(st, n, "Available")
    return st


# --- display status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "online, statuses, word",
    [
        (False, {1: "Available"}, "Offline"),
        (True, {}, "Available"),
        (True, {1: "Charging", 2: "Available"}, "Available"),
        (True, {1: "Faulted", 2: "Faulted"}, "Faulted"),
        (True, {1: "Faulted", 2: "Unavailable"}, "Unavailable"),
        (True, {1: "Charging", 2: "Reserved"}, "Reserved"),
        (True, {1: "Charging", 2: "Finishing"}, "Occupied"),
        (True, {1: "SuspendedEVSE"}, "Occupied"),  # an OCPP charger pausing the power: still in use
    ],
)
def test_the_display_word_follows_the_connectors(online, statuses, word):
    assert display_status(online, statuses) == word


def test_a_new_station_is_offline_with_every_connector_unavailable_until_it_reports(stations):
    st = stations.learn("CP-1", -12.0, -38.0, 2, 22.0)
    view, old = stations.refresh(st)
    assert old is None and view.status == "Offline" and view.connector_status == {1: "Unavailable", 2: "Unavailable"}
    assert stations.view["CP-1"] is view


def test_an_available_station_is_free_in_zero_minutes(stations):
    view, _ = stations.refresh(online_station(stations))
    assert view.status == "Available" and view.free_in_min == 0 and view.name == "Praça"


def test_an_occupied_station_is_free_when_its_first_session_is_expected_to_end(stations, clock):
    st = online_station(stations)
    stations.set_status(st, 1, "Charging")
    stations.set_status(st, 2, "Charging")
    stations.session_started(st, "S-1", 1, "EV-1", None, NOW - 600)  # expected to end at the estimate
    stations.session_started(st, "S-2", 2, "EV-2", None, NOW - 60)
    view, _ = stations.refresh(st)
    assert view.status == "Occupied" and view.free_at == NOW - 600 + ESTIMATE_S
    assert view.free_in_min == (ESTIMATE_S - 600) // 60
    clock.t += 5 * 60
    assert stations.refresh(st)[0].free_in_min == (ESTIMATE_S - 600) // 60 - 5  # counts down with the clock


def test_an_occupied_station_with_no_known_session_shows_the_estimate(stations):
    st = online_station(stations, connectors=1)
    stations.set_status(st, 1, "Charging")
    view, _ = stations.refresh(st)
    assert view.free_at == NOW + ESTIMATE_S and view.free_in_min == ESTIMATE_S // 60


def test_a_reserved_station_is_free_when_its_current_window_ends_and_later_windows_do_not_count(stations):
    st = online_station(stations, connectors=1)
    stations.set_status(st, 1, "Reserved")
    stations.reserved(st, 7, "EV-1", NOW + 2 * 3600, NOW + 3 * 3600)  # starts in 2 h: not current
    assert stations.refresh(st)[0].free_in_min is None
    stations.reserved(st, 8, "EV-2", NOW + 600, NOW + 1800)
    view, _ = stations.refresh(st)
    assert view.status == "Reserved" and view.free_at == NOW + 1800 and view.free_in_min == 30


def test_only_driver_visible_changes_are_news(stations, clock):
    st = online_station(stations)
    first, old = stations.refresh(st)
    assert Stations.news(first, old)
    clock.t += 1
    again, old = stations.refresh(st)
    assert old is first and not Stations.news(again, old)
    stations.set_status(st, 1, "Charging")
    changed, old = stations.refresh(st)
    assert Stations.news(changed, old)


def test_a_boot_with_fewer_connectors_keeps_the_statuses_of_those_left(stations):
    st = online_station(stations, connectors=3)
    stations.set_status(st, 2, "Charging")
    stations.learn("CP-1", -12.0, -38.0, 2, 22.0)
    assert st.connector_status == {1: "Available", 2: "Charging"}


def test_a_removed_station_leaves_the_view(stations):
    st = online_station(stations)
    stations.refresh(st)
    assert stations.remove("CP-1") and "CP-1" not in stations.view and stations.get("CP-1") is None
    assert not stations.remove("CP-1")


# --- what a station reports ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lat, lon, connectors, max_kw",
    [
        (91.0, 0.0, 1, 22.0),
        (0.0, 181.0, 1, 22.0),
        (float("nan"), 0.0, 1, 22.0),
        (0.0, 0.0, 0, 22.0),
        (0.0, 0.0, MAX_CONNECTORS + 1, 22.0),
        (0.0, 0.0, 1, 0.0),
        (0.0, 0.0, 1, float("nan")),
        (0.0, 0.0, 1, 1001.0),
    ],
)
def test_a_boot_out_of_range_is_refused_as_a_bad_field(lat, lon, connectors, max_kw):
    with pytest.raises(Refusal) as exc:
        Stations.check_boot(lat, lon, connectors, max_kw)
    assert exc.value.code == E_BAD_FIELD


def test_a_boot_in_range_passes():
    Stations.check_boot(-12.0, -38.0, MAX_CONNECTORS, 1000.0)


def test_a_status_for_a_connector_that_does_not_exist_or_an_unknown_word_is_refused(stations):
    st = online_station(stations)
    with pytest.raises(Refusal, match="does not exist"):
        stations.set_status(st, 3, "Available")
    with pytest.raises(Refusal, match="is not one of"):
        stations.set_status(st, 1, "Sleeping")
    assert st.connector_status == {1: "Available", 2: "Available"}  # nothing changed


def test_a_status_marks_the_station_online_and_returns_the_previous_status(stations, clock):
    st = stations.learn("CP-1", 0.0, 0.0, 1, 22.0)
    clock.t += 5
    assert stations.set_status(st, 1, "Preparing") == "Unavailable"
    assert st.online and st.last_seen == NOW + 5


def test_a_session_start_takes_its_reservation_window_and_ends_with_it(stations):
    st = online_station(stations)
    stations.reserved(st, 7, "EV-1", NOW, NOW + 3600)
    s = stations.session_started(st, "S-1", 1, "EV-1", 7, NOW + 60)
    assert s is not None and s.expected_end == NOW + 3600 and s.vehicle_id == "EV-1"
    assert 7 not in st.windows  # fulfilled: no longer upcoming


def test_a_replayed_session_start_opens_nothing_new(stations):
    st = online_station(stations)
    assert stations.session_started(st, "S-1", 1, None, None, NOW) is not None
    assert stations.session_started(st, "S-1", 1, None, None, NOW) is None
    assert list(st.sessions) == ["S-1"]


def test_meter_values_update_the_live_session_and_an_unknown_session_is_ignored(stations):
    st = online_station(stations)
    stations.session_started(st, "S-1", 1, "EV-1", None, NOW)
    assert stations.metered(st, "S-1", 1500, 7000).energy_wh == 1500
    assert st.sessions["S-1"].power_w == 7000
    assert stations.metered(st, "S-9", 1, 1) is None and stations.metered(st, None, 1, 1) is None


@pytest.mark.parametrize(
    "session_id, connector, reservation_id, meter, started",
    [
        ("", 1, None, 0, NOW),
        ("x" * (MAX_ID_LEN + 1), 1, None, 0, NOW),
        ("S", 3, None, 0, NOW),
        ("S", 0, None, 0, NOW),
        ("S", 1, 0, 0, NOW),
        ("S", 1, MAX_RESERVATION_ID, 0, NOW),
        ("S", 1, None, -1, NOW),
        ("S", 1, None, 10**9, NOW),
        ("S", 1, None, 0, -1),
        ("S", 1, None, 0, 2**40),
    ],
)
def test_a_session_start_out_of_range_is_refused(stations, session_id, connector, reservation_id, meter, started):
    st = online_station(stations)
    with pytest.raises(Refusal) as exc:
        Stations.check_session_start(st, session_id, connector, reservation_id, meter, started)
    assert exc.value.code == E_BAD_FIELD


@pytest.mark.parametrize(
    "session_id, connector, energy, started, ended",
    [
        ("", 1, 0, NOW, NOW),
        ("S", 3, 0, NOW, NOW),
        ("S", 1, -1, NOW, NOW),
        ("S", 1, 10**9, NOW, NOW),
        ("S", 1, 0, NOW, NOW - 1),
        ("S", 1, 0, NOW, 2**40),
    ],
)
def test_a_session_end_out_of_range_is_refused(stations, session_id, connector, energy, started, ended):
    st = online_station(stations)
    with pytest.raises(Refusal) as exc:
        Stations.check_session_end(st, session_id, connector, None, energy, started, ended)
    assert exc.value.code == E_BAD_FIELD


def test_a_session_in_range_passes_both_checks(stations):
    st = online_station(stations)
    Stations.check_session_start(st, "S" * MAX_ID_LEN, 2, MAX_RESERVATION_ID - 1, 0, NOW)
    Stations.check_session_end(st, "S" * MAX_ID_LEN, 2, None, 10**9 - 1, NOW, NOW)


def test_a_station_may_not_report_for_a_session_recorded_for_another():
    Stations.check_owner("CP-1", "S-1", None)
    Stations.check_owner("CP-1", "S-1", "CP-1")
    with pytest.raises(Refusal) as exc:
        Stations.check_owner("CP-1", "S-1", "CP-2")
    assert exc.value.code == E_FORBIDDEN


# --- reservations and vehicles -----------------------------------------------------------------------


def test_a_window_the_book_ends_is_forgotten_once(stations):
    st = online_station(stations)
    stations.reserved(st, 7, "EV-1", NOW, NOW + 3600)
    assert stations.reservation_ended(st, 7, "cancelled") and not stations.reservation_ended(st, 7, "cancelled")


def test_a_station_online_is_sent_its_windows_with_the_books_connector_and_a_cancelled_one_is_cancelled_there(stations):
    st = online_station(stations)
    stations.reserved(st, 7, "EV-1", NOW + 600, NOW + 3600, connector=2)
    stations.reserved(st, 8, "EV-2", NOW + 900, NOW + 3600, connector=1)
    cancel, send = st.sync.plan(st.windows)
    assert cancel == [] and [rid for rid, _ in send] == [7, 8] and st.sync.connectors == {7: 2, 8: 1}
    assert stations.reservation_ended(st, 8, "cancelled")
    assert st.sync.plan(st.windows) == ([8], [])  # the station may hold it: it is cancelled there


def test_a_window_used_by_a_session_is_not_cancelled_on_the_station(stations):
    st = online_station(stations)
    stations.reserved(st, 7, "EV-1", NOW, NOW + 3600, connector=1)
    st.sync.plan(st.windows)
    stations.session_started(st, "S-1", 1, "EV-1", 7, NOW + 60)
    assert 7 not in st.windows and st.sync.plan(st.windows) == ([], [])


def test_a_vehicle_stops_only_its_own_running_session(stations):
    online_station(stations, station_id="CP-1")
    st2 = online_station(stations, station_id="CP-2")
    stations.session_started(st2, "S-1", 1, "EV-1", None, NOW)
    assert stations.session_to_stop("EV-1", "S-1") is st2
    with pytest.raises(Refusal) as exc:
        stations.session_to_stop("EV-2", "S-1")
    assert exc.value.code == E_FORBIDDEN
    stations.session_ended(st2, "S-1")
    with pytest.raises(Refusal) as exc:
        stations.session_to_stop("EV-1", "S-1")
    assert exc.value.code == E_NOT_FOUND


def test_only_stations_with_sessions_or_windows_count_down(stations):
    idle = online_station(stations, station_id="CP-1")
    busy = online_station(stations, station_id="CP-2")
    stations.reserved(busy, 7, "EV-1", NOW, NOW + 3600)
    assert list(stations.counting_down()) == [busy] and idle not in stations.counting_down()


# --- hub -> station requests ---------------------------------------------------------------------------


def test_each_answer_runs_its_requests_callback_once_and_unknown_tags_are_ignored():
    requests = StationRequests()
    got = []
    tag = requests.new(got.append)
    fire_and_forget = requests.new(None)
    assert tag != fire_and_forget and len(requests) == 1
    assert requests.answered(tag, (K.ACK, [])) and got == [(K.ACK, [])]
    assert not requests.answered(tag, (K.ACK, []))  # a second answer for the same tag changes nothing
    assert not requests.answered(fire_and_forget, None) and got == [(K.ACK, [])] and len(requests) == 0


def test_the_vehicle_hears_ack_the_stations_refusal_or_a_timeout():
    assert relay_outcome((K.ACK, []), "start") is None
    assert relay_outcome((K.ERROR, [E_FORBIDDEN, "held"]), "start") == (
        E_FORBIDDEN,
        "start refused by the station: held",
    )
    assert relay_outcome(None, "stop") == (E_TIMEOUT, "stop: the station did not answer")


# --- the messages themselves ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, message",
    [
        (K.BOOT, messages.Boot),
        (K.STATUS, messages.Status),
        (K.METER, messages.Meter),
        (K.SESSION_START, messages.SessionStart),
        (K.SESSION_END, messages.SessionEnd),
        (K.RESERVATION_REFUSED, messages.ReservationRefused),
    ],
)
def test_a_station_frame_message_names_the_wire_fields_of_its_kind(kind, message):
    assert message._fields[: messages.STATION_FRAME_FIELDS] == ("station_id", "link_id", "seq")
    assert message._fields[messages.STATION_FRAME_FIELDS :] == K.spec(kind)[3]


def test_the_router_sends_each_station_kind_as_its_typed_message():
    from hub.router import STATION_MESSAGES

    assert STATION_MESSAGES == {
        K.BOOT: messages.Boot,
        K.STATUS: messages.Status,
        K.METER: messages.Meter,
        K.SESSION_START: messages.SessionStart,
        K.SESSION_END: messages.SessionEnd,
        K.RESERVATION_REFUSED: messages.ReservationRefused,
    }


def test_a_station_online_on_another_hub_is_shown_as_that_hub_describes_it_and_counts_down_here():
    clock = [1000.0]
    s = Stations(lambda: clock[0], 3600)
    st = s.learn("CP-1", 1.0, 2.0, 2, 22.0)
    remote = StationView(
        "CP-1", 1.0, 2.0, "Occupied", 30, 1000.0 + 1800, 2, 22.0, True, 990.0, {1: "Charging", 2: "Charging"}
    )
    view, old = s.set_remote(remote)
    assert (view.status, view.free_in_min, view.online) == ("Occupied", 30, True)
    clock[0] += 600
    view, _ = s.refresh(st)
    assert view.free_in_min == 20  # counted on this hub's clock
    # its home hub died: the remote view now says Offline, and so does this hub
    view, _ = s.set_remote(remote._replace(online=False, status="Offline", free_in_min=None))
    assert (view.status, view.online) == ("Offline", False)


def test_a_station_that_connects_here_is_described_by_its_own_reports_not_a_stale_remote_view():
    s = Stations(lambda: 1000.0, 3600)
    st = s.learn("CP-1", 1.0, 2.0, 1, 22.0)
    s.set_remote(StationView("CP-1", 1.0, 2.0, "Occupied", 5, 1300.0, 1, 22.0, True, 990.0, {1: "Charging"}))
    s.set_online(st, True)
    st.connector_status = {1: "Available"}
    view, _ = s.refresh(st)
    assert view.status == "Available" and s.remote == {}
    assert s.set_remote(StationView("CP-9", 0, 0, "Available", 0, None, 1, 1.0, True, 0, {})) is None

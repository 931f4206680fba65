"""The vehicle agent's decisions, sans-I/O: told the time and the hub's answers, it says what to send."""

import pytest

from tools.sim.world import Place, StationSpec, VehicleSpec, charge_seconds, target_within
from tools.sim.vehicle import (
    CHARGING,
    DONE,
    DRIVING,
    RESERVING,
    SEARCHING,
    STARTING,
    TO_STATION,
    WAITING,
    Params,
    Stats,
    Vehicle,
)
from transport import kinds as K
from transport.errors import E_INVALID_STATE, E_NOT_FOUND

T0 = 1_800_000_000
NEAR = StationSpec("CP-NEAR", "Feira de Santana", -12.2664, -38.9663, 1, 50.0)
OTHER = StationSpec("CP-OTHER", "Feira de Santana", -12.2800, -38.9500, 2, 150.0)
PLACES = [Place("Feira de Santana", -12.2664, -38.9663), Place("Serrinha", -11.6642, -39.0075)]


def listed(st, status="Available", free_in_min=0, distance_km=3.0):
    return {
        "id": st.id,
        "lat": st.lat,
        "lon": st.lon,
        "distance_km": distance_km,
        "status": status,
        "free_in_min": free_in_min,
        "connectors": st.connectors,
        "max_kw": st.max_kw,
    }


class Harness:
    def __init__(self, soc=0.2):
        spec = VehicleSpec("EV-1", -12.25, -38.95, 60.0, 0.17, "gentle", 100.0, soc, 0.3, 0.8, 42)
        self.out = []
        self.stats = Stats()
        self.now = T0
        self.v = Vehicle(spec, Params(), PLACES, {NEAR.id: NEAR, OTHER.id: OTHER}, self.out, self.stats, T0)
        self.v.on_net("up", None, None, None, T0)

    def tick(self, seconds=15):
        self.now += seconds
        self.v.tick(self.now)

    def sent(self, kind):
        """The last request of `kind` queued, removed from the queue: (tag, fields)."""
        for i in range(len(self.out) - 1, -1, -1):
            op = self.out[i]
            if op[0] == "req" and op[2] == kind:
                del self.out[i]
                return op[4], op[3]
        raise AssertionError("no %s queued in %r" % (K.kind_name(kind), self.out))

    def reply(self, tag, kind, *fields):
        self.v.on_net("reply", tag, kind, list(fields), self.now)

    def event(self, kind, *fields):
        self.v.on_net("event", None, kind, list(fields), self.now)

    def booked(self, station=NEAR, rid=7):
        self.tick()
        tag, _ = self.sent(K.NEAREST)
        self.reply(tag, K.NEAREST_RESULT, [listed(station)])
        tag, fields = self.sent(K.RESERVE)
        self.reply(tag, K.RESERVE_RESULT, True, rid, [], None)
        return fields[:3]  # station, start, end (the request_id is the vehicle's own)

    def drive_until(self, state, limit=400):
        for _ in range(limit):
            if self.v.state == state:
                return
            self.tick()
        raise AssertionError("still %s" % self.v.state)


def test_a_vehicle_with_charge_to_spare_just_drives_and_reports_its_position():
    h = Harness(soc=0.9)
    for _ in range(8):
        h.tick()
    assert h.v.state == DRIVING
    positions = [op for op in h.out if op[0] == "send" and op[2] == K.POSITION]
    assert len(positions) == 2  # every 60 simulated seconds
    assert h.v.soc < 0.9


def test_below_its_threshold_a_vehicle_asks_for_the_nearest_stations_and_books_at_its_eta():
    h = Harness(soc=0.2)
    h.tick()
    assert h.v.state == SEARCHING
    tag, fields = h.sent(K.NEAREST)
    assert fields[2] == Params().k
    h.reply(tag, K.NEAREST_RESULT, [listed(NEAR, distance_km=2.0)])
    assert h.v.state == RESERVING
    _tag, (station, start, end, _request_id) = h.sent(K.RESERVE)
    assert station == NEAR.id
    assert h.now <= start <= h.now + 2.0 / 35 * 3600 + 60  # its ETA, rounded to the minute
    assert end - start >= charge_seconds(50, 100, 60, 0.15, 0.8)


def test_the_choice_weighs_travel_time_plus_waiting_time():
    h = Harness(soc=0.2)
    h.tick()
    tag, _ = h.sent(K.NEAREST)
    busy_near = listed(NEAR, status="Occupied", free_in_min=90, distance_km=1.0)
    free_further = listed(OTHER, status="Available", free_in_min=0, distance_km=8.0)
    offline = listed(StationSpec("CP-OFF", "x", -12.26, -38.96, 1, 50.0), status="Offline", distance_km=0.5)
    h.reply(tag, K.NEAREST_RESULT, [offline, busy_near, free_further])
    assert h.sent(K.RESERVE)[1][0] == OTHER.id


def test_on_a_conflict_the_vehicle_takes_an_offered_alternative():
    h = Harness(soc=0.2)
    h.tick()
    tag, _ = h.sent(K.NEAREST)
    h.reply(tag, K.NEAREST_RESULT, [listed(NEAR)])
    tag, (_s, start, end, first_key) = h.sent(K.RESERVE)
    later = {"station_id": NEAR.id, "start": start + 3600, "end": end + 3600, "distance_km": 0.0}
    h.reply(tag, K.RESERVE_RESULT, False, None, [later], "conflict")
    assert h.stats["reservations_conflicted"] == 1
    tag, fields = h.sent(K.RESERVE)
    assert fields[:3] == [NEAR.id, start + 3600, end + 3600]
    assert fields[3] != first_key  # another window wanted: another request_id
    h.reply(tag, K.RESERVE_RESULT, True, 11, [], None)
    assert h.v.state == TO_STATION and h.v.plan["rid"] == 11
    assert h.stats["alternatives_taken"] == 1


def test_the_vehicle_drives_there_waits_for_its_window_and_charges_to_complete():
    h = Harness(soc=0.2)
    _station, start, end = h.booked()
    h.drive_until(WAITING)
    h.drive_until(STARTING)
    assert h.now >= start
    tag, (station, rid, ev) = h.sent(K.START_CHARGE)
    assert (station, rid) == (NEAR.id, 7)
    assert ev["capacity_kwh"] == 60.0 and ev["max_kw"] == 100.0 and ev["soc"] == pytest.approx(h.v.soc, abs=1e-3)
    h.reply(tag, K.ACK)
    h.event(K.SESSION_STARTED, "S-1", NEAR.id, 1)
    assert h.v.state == CHARGING
    h.event(K.CHARGE_PROGRESS, "S-1", NEAR.id, 5000, 50000)
    soc_before = h.v.soc
    h.event(K.COMPLETE, "S-1", NEAR.id, 24000, 1800, "Complete")
    assert h.v.state == DRIVING and h.v.plan is None
    assert h.v.soc == pytest.approx(soc_before + 24.0 / 60.0)
    assert h.stats["sessions_completed"] == 1 and h.stats["energy_wh"] == 24000


def test_a_connector_still_finishing_is_asked_again_shortly_after():
    h = Harness(soc=0.2)
    h.booked()
    h.drive_until(STARTING)
    tag, _ = h.sent(K.START_CHARGE)
    h.reply(tag, K.ERROR, E_INVALID_STATE, "no free connector")
    assert h.v.state == WAITING and h.stats["start_retries"] == 1
    h.drive_until(STARTING)
    h.sent(K.START_CHARGE)
    assert h.stats.get("errors", 0) == 0


def dropped_notice(station=NEAR, rid=7):
    return [
        {"reservation_id": rid, "station_id": station.id, "connector": 1, "start": 0, "end": 1, "state": "cancelled"}
    ]


def test_a_reservation_the_station_refused_sends_the_vehicle_searching_again_without_an_error():
    h = Harness(soc=0.2)
    h.booked()
    h.drive_until(WAITING)
    h.event(K.RESERVATIONS, dropped_notice())  # an OCPP charger still Occupied when the window opened
    assert h.v.state == DRIVING and h.v.plan is None and h.stats["reservations_dropped"] == 1
    h.tick()
    h.sent(K.NEAREST)  # low on charge: it looks for another charger at once
    assert h.stats.get("errors", 0) == 0


def test_a_start_already_sent_for_a_dropped_reservation_is_refused_without_an_error():
    h = Harness(soc=0.2)
    h.booked()
    h.drive_until(STARTING)
    tag, _ = h.sent(K.START_CHARGE)
    h.event(K.RESERVATIONS, dropped_notice())
    h.reply(tag, K.ERROR, E_NOT_FOUND, "reservation 7 is not open at CP-NEAR")
    assert h.v.state == DRIVING and h.stats.get("errors", 0) == 0
    other = Harness(soc=0.2)  # without the hub's notice the same refusal is an error
    other.booked()
    other.drive_until(STARTING)
    tag, _ = other.sent(K.START_CHARGE)
    other.reply(tag, K.ERROR, E_NOT_FOUND, "reservation 7 is not open at CP-NEAR")
    assert other.stats["errors"] == 1


def test_a_late_start_asks_only_for_what_fits_in_the_window():
    assert target_within(50, 100, 60, 0.2, 0.8, 10**6) == 0.8
    fits = target_within(50, 100, 60, 0.2, 0.8, 1200)
    assert 0.2 < fits < 0.8
    assert charge_seconds(50, 100, 60, 0.2, fits) <= 1200


def test_winding_down_cancels_an_unused_reservation():
    h = Harness(soc=0.2)
    h.booked(rid=21)
    h.v.wind_down()
    tag, fields = h.sent(K.CANCEL)
    assert fields == [21]
    h.reply(tag, K.ACK)
    assert h.v.state == DONE and h.v.settled
    assert h.stats["cancelled_at_end"] == 1


def test_winding_down_stops_a_running_charge_and_waits_for_complete():
    h = Harness(soc=0.2)
    h.booked()
    h.drive_until(STARTING)
    tag, _ = h.sent(K.START_CHARGE)
    h.reply(tag, K.ACK)
    h.event(K.SESSION_STARTED, "S-9", NEAR.id, 1)
    h.v.wind_down()
    tag, fields = h.sent(K.STOP_CHARGE)
    assert fields == ["S-9"]
    h.reply(tag, K.ACK)
    assert not h.v.settled
    h.event(K.COMPLETE, "S-9", NEAR.id, 3000, 600, "Remote")
    assert h.v.state == DONE and h.v.settled and h.stats["sessions_stopped"] == 1


def test_a_cancel_that_races_an_expiry_is_not_an_error():
    h = Harness(soc=0.2)
    h.booked()
    h.v.wind_down()
    tag, _ = h.sent(K.CANCEL)
    h.reply(tag, K.ERROR, E_INVALID_STATE, "reservation 7 has already ended (expired)")
    assert h.v.settled and h.stats.get("errors", 0) == 0 and h.stats["cancel_raced"] == 1


def test_an_unexpected_error_reply_is_counted():
    h = Harness(soc=0.2)
    h.tick()
    tag, _ = h.sent(K.NEAREST)
    h.reply(tag, K.NEAREST_RESULT, [listed(NEAR)])
    tag, _ = h.sent(K.RESERVE)
    h.reply(tag, K.ERROR, E_NOT_FOUND, "station CP-NEAR is not known")
    assert h.stats["errors"] == 1 and h.v.state == DRIVING
    assert "CP-NEAR is not known" in h.stats["error_texts"][0]


def test_a_request_that_times_out_is_counted():
    h = Harness(soc=0.2)
    h.tick()
    tag, _ = h.sent(K.NEAREST)
    h.v.on_net("timeout", tag, None, None, h.now)
    assert h.stats["errors"] == 1 and h.v.state == DRIVING


class FakeNet:
    def __init__(self):
        self.ops = []

    def submit(self, ops):
        self.ops.extend(ops)


def _specs(n, soc=0.9):
    return [VehicleSpec("EV-%d" % i, -12.25, -38.95, 60.0, 0.17, "gentle", 100.0, soc, 0.3, 0.8, i) for i in range(n)]


def test_an_agent_actor_drives_its_vehicles_from_its_inbox():
    from tools.sim.agent import VehicleAgent

    net = FakeNet()
    ref = VehicleAgent.start(_specs(3), Params(), PLACES, {NEAR.id: NEAR}, net, lambda: T0)
    try:
        ref.tell(("net", [("EV-%d" % i, "up", None, None, None) for i in range(3)]))
        for k in range(1, 6):
            ref.tell(("tick", T0 + 15 * k))
        snap = ref.ask(("snapshot",), timeout=5)
    finally:
        ref.stop()
    assert snap["states"] == {DRIVING: 3} and snap["settled"] == 0 and len(snap["positions"]) == 3
    assert {op[1] for op in net.ops if op[0] == "send" and op[2] == K.POSITION} == {"EV-0", "EV-1", "EV-2"}


def test_one_vehicle_crashing_does_not_stop_its_agent_or_the_others():
    from tools.sim.agent import VehicleAgent

    net = FakeNet()
    ref = VehicleAgent.start(_specs(2, soc=0.2), Params(), PLACES, {NEAR.id: NEAR}, net, lambda: T0)
    try:
        ref.tell(("net", [("EV-0", "up", None, None, None), ("EV-1", "up", None, None, None)]))
        ref.tell(("tick", T0 + 15))
        ref.ask(("snapshot",), timeout=5)
        tags = {op[1]: op[4] for op in net.ops if op[0] == "req" and op[2] == K.NEAREST}
        # A malformed answer for EV-0 (a list of strings, not station maps) makes its decision code raise.
        ref.tell(
            (
                "net",
                [
                    ("EV-0", "reply", tags["EV-0"], K.NEAREST_RESULT, [["garbage"]]),
                    ("EV-1", "reply", tags["EV-1"], K.NEAREST_RESULT, [[listed(NEAR)]]),
                ],
            )
        )
        snap = ref.ask(("snapshot",), timeout=5)
    finally:
        ref.stop()
    assert snap["stats"]["errors"] == 1 and "EV-0: crashed" in snap["stats"]["error_texts"][0]
    assert snap["states"] == {DONE: 1, RESERVING: 1}


def test_a_reserve_without_an_answer_is_asked_once_more_with_the_same_request_id():
    h = Harness(soc=0.2)
    h.tick()
    tag, _ = h.sent(K.NEAREST)
    h.reply(tag, K.NEAREST_RESULT, [listed(NEAR)])
    tag, first = h.sent(K.RESERVE)
    h.v.on_net("timeout", tag, None, None, h.now)
    assert h.v.state == RESERVING and h.stats["reserve_retried"] == 1
    tag, again = h.sent(K.RESERVE)
    assert again == first and len(first[3]) == 16  # same window, same key: the hub answers the first booking
    h.reply(tag, K.RESERVE_RESULT, True, 5, [], None)
    assert h.v.state == TO_STATION and h.v.plan["rid"] == 5

"""The charge-point core under CPython: connectors, reservations, charging, journal, link, offline policy,
and full sessions against a transport.session.ServerSession wired back to back on a fake clock."""

import os

import pytest

from firmware import connector as CN
from firmware.chargepoint import ChargePoint
from firmware.charging import Charge, ev_params
from firmware.config import normalize
from firmware.connector import Connector, Refused
from firmware.journal import Journal
from firmware.link import BACKOFF_CAP_S, CONNECT, GIVE_UP, Link, backoff_delay
from fw_hub import EPOCH, KEY, FakeClock, FakeHub, Wire
from transport import codec
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_INVALID_STATE, E_NOT_FOUND, E_OVERLOADED

EV = {"max_kw": 11.0, "capacity_kwh": 40.0, "soc": 0.5, "target_soc": 0.9}


def station(connectors=1, journal=None, relay=None, **cfg):
    clock = FakeClock()
    wall = lambda: EPOCH + int(clock.t)  # noqa: E731
    config = {"id": "CP-1", "key": KEY, "connectors": connectors, "max_kw": 22.0}
    config.update(cfg)
    cp = ChargePoint(config, clock, wall, journal=journal, relay=relay, rand=lambda: 32768)
    hub = FakeHub(clock, wall)
    wire = Wire(cp, hub, clock, codec)
    return cp, hub, wire, clock


def online(connectors=1, **kw):
    cp, hub, wire, clock = station(connectors, **kw)
    wire.start()
    assert cp.usable and hub.boots == 1
    return cp, hub, wire, clock


def ask(hub, wire, kind, *fields):
    """The hub sends a request; returns the station's reply (ACK or ERROR)."""
    seq = hub.request(kind, *fields)
    wire.pump()
    return hub.reply(seq)


def err_code(reply):
    assert reply is not None and reply.kind == K.ERROR, reply
    return reply.fields[0]


# --- connector ---------------------------------------------------------------------------


def test_a_connector_refuses_an_illegal_transition_with_invalid_state():
    c = Connector(1)
    with pytest.raises(Refused) as exc:
        c.go(CN.CHARGING)
    assert exc.value.code == E_INVALID_STATE and "Available -> Charging" in exc.value.text
    c.go(CN.PREPARING)
    c.go(CN.CHARGING)
    c.go(CN.SUSPENDED_EV)
    c.go(CN.FINISHING)
    with pytest.raises(Refused):
        c.go(CN.CHARGING)


def test_every_status_in_the_table_is_a_wire_status():
    # Every wire status but SuspendedEVSE, which only OCPP chargers send (the charger, not the car,
    # paused the energy: our boards never pause by themselves).
    assert set(CN.TRANSITIONS) == set(K.CONNECTOR_STATUSES) - {"SuspendedEVSE"}
    for targets in CN.TRANSITIONS.values():
        assert set(targets) <= set(K.CONNECTOR_STATUSES)


# --- sessions ----------------------------------------------------------------------------


def test_remote_start_acks_then_reports_preparing_charging_and_session_start():
    cp, hub, wire, clock = online()
    reply = ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    assert reply.kind == K.ACK
    assert [s[1] for s in hub.statuses[-2:]] == ["Preparing", "Charging"]
    ((sid, start),) = hub.starts.items()
    assert start[1:5] == [1, "V-1", None, 0] and start[5] == int(EPOCH + clock.t)
    assert sid.startswith("CP-1-1-")
    assert cp.status(1) == "Charging"


def test_session_ids_are_unique_across_reboots_on_the_same_journal(tmp_path):
    path = str(tmp_path / "j.log")
    seen = set()
    for _ in range(3):
        cp, hub, wire, clock = online(journal=Journal(path))
        ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
        ask(hub, wire, K.REMOTE_STOP, cp.connectors[0].session_id)
        seen.update(hub.starts)
    assert len(seen) == 3
    assert sorted(int(s.split("-")[2]) for s in seen) == [1, 2, 3]


def test_a_session_meters_on_its_interval_and_completes_at_the_target_soc():
    cp, hub, wire, clock = online(meter_interval_s=60)
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    assert wire.run_until(lambda: hub.ends, limit_s=6 * 3600, dt=10)
    ((sid, end),) = hub.ends.items()
    assert end[7] == "Complete"
    assert end[4] == 16000  # 40 kWh from 50% to 90%
    duration = end[6] - end[5]
    # 30% at 11 kW (~65 min) then the taper above 80%: longer than at full power, far from "3 s".
    assert 16000 / 11000 * 3600 < duration < 2.2 * 3600
    times = [m[4] for m in hub.meters if m[1] == sid]
    gaps = {b - a for a, b in zip(times, times[1:-1])}
    assert gaps == {60}
    energies = [m[2] for m in hub.meters if m[1] == sid]
    assert energies == sorted(energies) and energies[-1] == 16000
    assert cp.status(1) == "Finishing"
    wire.run(40, dt=10)  # the simulated vehicle drives off after finishing_s
    assert cp.status(1) == "Available" and hub.status(1) == "Available"


def test_the_relay_is_closed_only_while_charging():
    calls = []
    cp, hub, wire, clock = online(relay=lambda c, on: calls.append((c, on)))
    assert calls == [(1, False)]
    ask(hub, wire, K.REMOTE_START, 1, "V-1", None, EV)
    assert calls[-1] == (1, True)
    ask(hub, wire, K.REMOTE_STOP, cp.connectors[0].session_id)
    assert calls[-1] == (1, False)
    assert list(hub.ends.values())[0][7] == "Remote"


def test_remote_start_on_a_busy_connector_is_refused_with_invalid_state():
    cp, hub, wire, clock = online()
    ask(hub, wire, K.REMOTE_START, 1, "V-1", None, EV)
    assert err_code(ask(hub, wire, K.REMOTE_START, 1, "V-2", None, EV)) == E_INVALID_STATE
    assert err_code(ask(hub, wire, K.REMOTE_START, 0, "V-2", None, EV)) == E_INVALID_STATE
    assert err_code(ask(hub, wire, K.REMOTE_START, 5, "V-2", None, EV)) == E_BAD_FIELD


def test_a_bad_ev_map_is_refused_with_bad_field():
    cp, hub, wire, clock = online()
    assert err_code(ask(hub, wire, K.REMOTE_START, 0, "V-1", None, {"soc": 1.5})) == E_BAD_FIELD
    assert err_code(ask(hub, wire, K.REMOTE_START, 0, "V-1", None, {"max_kw": "fast"})) == E_BAD_FIELD
    assert cp.status(1) == "Available"


def test_remote_stop_of_an_unknown_session_is_not_found():
    cp, hub, wire, clock = online()
    assert err_code(ask(hub, wire, K.REMOTE_STOP, "CP-1-99-x")) == E_NOT_FOUND


def test_unplugging_mid_charge_ends_the_session_with_ev_disconnected():
    cp, hub, wire, clock = online()
    assert cp.plug(1, "V-1") is None
    assert cp.status(1) == "Preparing"
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    assert cp.status(1) == "Charging"
    wire.run(600, dt=60)
    cp.unplug(1)
    wire.pump()
    end = list(hub.ends.values())[0]
    assert end[7] == "EVDisconnected" and end[4] > 0
    assert cp.status(1) == "Available"


def test_a_locally_plugged_vehicle_stays_finishing_until_unplugged():
    cp, hub, wire, clock = online()
    cp.plug(1, "V-1", EV)
    ask(hub, wire, K.REMOTE_START, 1, "V-1", None, EV)
    assert wire.run_until(lambda: hub.ends, limit_s=6 * 3600, dt=30)
    wire.run(3600, dt=60)
    assert cp.status(1) == "Finishing"
    cp.unplug(1)
    assert cp.status(1) == "Available"


def test_ev_suspend_pauses_the_energy_and_shows_suspended_ev():
    cp, hub, wire, clock = online()
    ask(hub, wire, K.REMOTE_START, 1, "V-1", None, EV)
    wire.run(60)
    cp.ev_suspend(1, True)
    e = cp.connectors[0].charge.energy_wh
    wire.run(600, dt=60)
    assert cp.connectors[0].charge.energy_wh == e and hub.status(1) == "SuspendedEV"
    cp.ev_suspend(1, False)
    wire.run(60)
    assert cp.connectors[0].charge.energy_wh > e and hub.status(1) == "Charging"


def test_a_fault_ends_the_session_and_clearing_it_frees_the_connector():
    cp, hub, wire, clock = online()
    ask(hub, wire, K.REMOTE_START, 1, "V-1", None, EV)
    cp.fault(1, "ground fault")
    wire.pump()
    assert list(hub.ends.values())[0][7] == "Fault"
    assert hub.statuses[-1] == (1, "Faulted", "ground fault")
    assert err_code(ask(hub, wire, K.REMOTE_START, 1, "V-2", None, EV)) == E_INVALID_STATE
    cp.clear_fault(1)
    wire.pump()
    assert hub.status(1) == "Available"


# --- reservations ------------------------------------------------------------------------


def test_a_reservation_shows_reserved_only_from_hold_before_its_start():
    cp, hub, wire, clock = online(hold_before_s=600)
    now = int(EPOCH + clock.t)
    assert ask(hub, wire, K.RESERVE_NOW, 7, 0, "V-1", now + 3600, now + 5400).kind == K.ACK
    wire.run(2900, dt=100)
    assert cp.status(1) == "Available"
    wire.run(200, dt=100)
    assert cp.status(1) == "Reserved" and hub.status(1) == "Reserved"


def test_only_the_reserving_vehicle_may_start_while_reserved():
    cp, hub, wire, clock = online()
    now = int(EPOCH + clock.t)
    ask(hub, wire, K.RESERVE_NOW, 7, 1, "V-1", now + 60, now + 1800)
    assert cp.status(1) == "Reserved"
    assert err_code(ask(hub, wire, K.REMOTE_START, 0, "V-2", None, EV)) == E_INVALID_STATE  # no free connector
    assert err_code(ask(hub, wire, K.REMOTE_START, 1, "V-2", None, EV)) == E_FORBIDDEN
    with pytest.raises(Refused) as exc:
        cp.plug(1, "V-2")
    assert exc.value.code == E_FORBIDDEN
    assert ask(hub, wire, K.REMOTE_START, 0, "V-1", 7, EV).kind == K.ACK
    start = list(hub.starts.values())[0]
    assert start[2:4] == ["V-1", 7]
    assert len(cp.reservations) == 0


def test_the_reserving_vehicle_plugging_in_starts_its_session():
    cp, hub, wire, clock = online(connectors=2)
    now = int(EPOCH + clock.t)
    ask(hub, wire, K.RESERVE_NOW, 9, 0, "V-1", now + 60, now + 1800)
    held = [c.number for c in cp.connectors if c.status == "Reserved"]
    assert held == [1] and cp.status(2) == "Available"
    sid = cp.plug(1, "V-1")
    wire.pump()
    assert sid in hub.starts and hub.starts[sid][3] == 9


def test_an_unused_reservation_expires_after_the_grace_period_and_frees_the_connector():
    cp, hub, wire, clock = online(grace_s=600)
    now = int(EPOCH + clock.t)
    ask(hub, wire, K.RESERVE_NOW, 7, 0, "V-1", now + 60, now + 3600)
    assert cp.status(1) == "Reserved"
    wire.run(600, dt=10)
    assert cp.status(1) == "Reserved"
    wire.run(100, dt=10)
    assert cp.status(1) == "Available" and hub.status(1) == "Available"
    assert len(cp.reservations) == 0
    assert ask(hub, wire, K.REMOTE_START, 0, "V-2", None, EV).kind == K.ACK


def test_cancelling_a_reservation_frees_its_connector():
    cp, hub, wire, clock = online()
    now = int(EPOCH + clock.t)
    ask(hub, wire, K.RESERVE_NOW, 7, 0, "V-1", now, now + 3600)
    assert cp.status(1) == "Reserved"
    assert ask(hub, wire, K.CANCEL_RESERVATION, 7).kind == K.ACK
    assert cp.status(1) == "Available"
    assert err_code(ask(hub, wire, K.CANCEL_RESERVATION, 7)) == E_NOT_FOUND


def test_the_hub_repeating_a_reservation_after_a_reconnect_changes_nothing():
    cp, hub, wire, clock = online()
    now = int(EPOCH + clock.t)
    ask(hub, wire, K.RESERVE_NOW, 7, 0, "V-1", now, now + 3600)
    n = len(hub.statuses)
    assert ask(hub, wire, K.RESERVE_NOW, 7, 0, "V-1", now, now + 3600).kind == K.ACK
    assert len(hub.statuses) == n and cp.status(1) == "Reserved"


def test_reservations_that_cannot_be_honoured_are_refused():
    cp, hub, wire, clock = online()
    now = int(EPOCH + clock.t)
    assert err_code(ask(hub, wire, K.RESERVE_NOW, 1, 0, "V-1", now + 100, now + 50)) == E_BAD_FIELD
    assert err_code(ask(hub, wire, K.RESERVE_NOW, 2, 3, "V-1", now, now + 50)) == E_BAD_FIELD
    assert err_code(ask(hub, wire, K.RESERVE_NOW, 3, 0, "V-1", now - 7200, now - 3600)) == E_BAD_FIELD
    ask(hub, wire, K.CHANGE_AVAILABILITY, 1, False)
    assert err_code(ask(hub, wire, K.RESERVE_NOW, 4, 1, "V-1", now, now + 50)) == E_INVALID_STATE


def test_a_reservation_waits_for_a_busy_connector_then_holds_it():
    cp, hub, wire, clock = online(finishing_s=0)
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    now = int(EPOCH + clock.t)
    ask(hub, wire, K.RESERVE_NOW, 7, 0, "V-2", now + 60, now + 7200)
    assert cp.status(1) == "Charging"
    ask(hub, wire, K.REMOTE_STOP, cp.connectors[0].session_id)
    wire.step()
    assert cp.status(1) == "Reserved" and cp.connectors[0].hold.vehicle == "V-2"


def test_a_reservation_is_held_on_the_connector_the_hub_named_not_the_first_free_one():
    cp, hub, wire, clock = online(connectors=2)
    now = int(EPOCH + clock.t)
    assert ask(hub, wire, K.RESERVE_NOW, 7, 2, "V-1", now, now + 1800).kind == K.ACK
    wire.step()
    assert cp.status(1) == "Available" and cp.status(2) == "Reserved" and cp.connectors[1].hold.id == 7


def test_a_named_connector_busy_when_the_hold_begins_is_refused_so_the_hub_can_move_it():
    cp, hub, wire, clock = online(connectors=2)
    ask(hub, wire, K.REMOTE_START, 1, "V-1", None, EV)
    now = int(EPOCH + clock.t)
    assert err_code(ask(hub, wire, K.RESERVE_NOW, 7, 1, "V-2", now, now + 1800)) == E_INVALID_STATE
    # a window far enough ahead is taken: the session has time to end
    assert ask(hub, wire, K.RESERVE_NOW, 8, 1, "V-2", now + 7200, now + 9000).kind == K.ACK
    assert ask(hub, wire, K.RESERVE_NOW, 9, 2, "V-2", now, now + 1800).kind == K.ACK


def test_a_full_table_refuses_the_17th_reservation_with_overloaded():
    cp, hub, wire, clock = online()
    now = int(EPOCH + clock.t) + 3600
    for rid in range(1, 17):
        assert ask(hub, wire, K.RESERVE_NOW, rid, 0, "V-1", now + rid * 600, now + rid * 600 + 600).kind == K.ACK
    assert err_code(ask(hub, wire, K.RESERVE_NOW, 17, 0, "V-1", now + 17 * 600, now + 18 * 600)) == E_OVERLOADED


def test_a_repeated_remote_start_for_the_vehicle_already_charging_is_acked_and_starts_nothing():
    cp, hub, wire, clock = online(connectors=2)
    assert ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV).kind == K.ACK
    assert ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV).kind == K.ACK  # the hub resent it: its ACK was lost
    assert len(hub.starts) == 1 and cp.status(2) == "Available"


# --- charge simulation --------------------------------------------------------------------


def test_power_is_the_smaller_of_station_and_vehicle_limits():
    assert Charge(22000, 11000, 60000, 200000, 800000).power_w() == 11000
    assert Charge(7400, 150000, 60000, 200000, 800000).power_w() == 7400


def test_power_tapers_linearly_above_80_percent_to_a_tenth_at_full():
    ch = Charge(150000, 100000, 60000, 800000, 1000000)
    assert ch.power_w() == 100000
    assert ch.accepted_w(54000 * 1000) == 55000  # 90%
    assert ch.accepted_w(60000 * 1000) == 10000  # 100%
    # A weak station limit binds until the EV accepts less than it.
    ch = Charge(22000, 100000, 60000, 900000, 1000000)
    assert ch.power_w() == 22000
    ch = Charge(22000, 100000, 60000, 980000, 1000000)
    assert ch.power_w() == 19000


def test_charge_integration_does_not_depend_on_the_tick_size():
    coarse = Charge(50000, 50000, 60000, 200000, 950000)
    coarse.advance(3 * 3600 * 1000)
    fine = Charge(50000, 50000, 60000, 200000, 950000)
    for _ in range(3 * 3600 * 10):
        fine.advance(100)
    odd = Charge(50000, 50000, 60000, 200000, 950000)
    for _ in range(3 * 3600 * 1000 // 777):
        odd.advance(777)
    odd.advance(3 * 3600 * 1000 % 777)
    assert coarse.energy_mwh == fine.energy_mwh == odd.energy_mwh and coarse.soc_ppm == fine.soc_ppm


def test_every_charge_quantity_is_an_int():
    ch = Charge(22000, 11000, 40000, 500000, 900000)
    ch.advance(1234)
    values = (ch.power_w(), ch.energy_wh, ch.energy_mwh, ch.soc_ppm, ch.advance(999))
    assert all(type(v) is int for v in values), values


def test_a_charge_reaches_its_target_and_stops():
    ch = Charge(22000, 11000, 40000, 500000, 900000)
    t = ch.seconds_to_target()
    ch.advance((t - 60) * 1000)
    assert not ch.done
    ch.advance(120 * 1000)
    assert ch.done and ch.soc_ppm == 900000 and ch.power_w() == 0
    assert ch.energy_wh == 16000
    assert ch.advance(3600 * 1000) == 0


def test_ev_params_default_and_reject():
    assert ev_params(None) == (50000, 60000, 200000, 800000)
    assert ev_params({"max_kw": 3.7, "soc": 0.25}) == (3700, 60000, 250000, 800000)
    with pytest.raises(ValueError):
        ev_params({"capacity_kwh": 0})


# --- journal -------------------------------------------------------------------------------


def test_the_journal_replays_pending_records_exactly_once_across_a_reboot(tmp_path):
    path = str(tmp_path / "journal.log")
    cp, hub, wire, clock = online(journal=Journal(path))
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    sid = cp.connectors[0].session_id
    hub.ack_ends = False  # the hub dies before SESSION_END is durable
    assert wire.run_until(lambda: (K.SESSION_END, sid) in hub.records, limit_s=6 * 3600, dt=30)
    assert hub.ends == {}
    assert [r[0] for r in Journal(path).pending()] == [K.SESSION_END]

    # Reboot: a new ChargePoint on the same journal file, a new hub process.
    clock2 = FakeClock(clock.t + 100)
    wall2 = lambda: EPOCH + int(clock2.t)  # noqa: E731
    cp2 = ChargePoint({"id": "CP-1", "key": KEY}, clock2, wall2, journal=Journal(path), rand=lambda: 32768)
    hub2 = FakeHub(clock2, wall2)
    wire2 = Wire(cp2, hub2, clock2, codec)
    wire2.start()
    assert hub2.records == [(K.SESSION_END, sid)]
    assert hub2.ends[sid][7] == "Complete" and hub2.ends[sid][4] == 16000
    assert cp2.journal.pending() == []
    # Another reconnect does not send it again.
    wire2.drop()
    wire2.run(5)
    assert hub2.links == 2 and hub2.records == [(K.SESSION_END, sid)]
    assert Journal(path).pending() == []


def journal_add(j, kind, fields):
    """Keep any record until it is acked: the journal's own write path, without a running session.

    Test-only, so it lives here and not on the board (the board writes records only through
    session_started / session_ended).
    """
    fields = list(fields)
    if j._find(kind, fields[0]) < 0:
        j._pending.append([kind, fields])
        j._append([kind, fields])


def test_the_journal_keeps_unacked_records_and_drops_acked_ones(tmp_path):
    path = str(tmp_path / "j.log")
    j = Journal(path, connectors=2)
    n = j.next_number()
    journal_add(j, K.SESSION_START, ["s1", 1, "V", None, 0, 10])
    journal_add(j, K.SESSION_START, ["s2", 2, "V", 5, 0, 10])
    j.meters[1] = 1234
    j.session_ended(["s1", 1, "V", None, 500, 10, 20, "Complete"])
    assert j.ack(K.SESSION_START, "s1") and not j.ack(K.SESSION_START, "s1")
    j2 = Journal(path, connectors=2)
    assert j2.counter == n and j2.meters == [0, 1234]
    assert [(k, f[0]) for k, f in j2.pending()] == [(K.SESSION_START, "s2"), (K.SESSION_END, "s1")]


def test_a_session_cut_by_a_power_loss_is_ended_at_its_last_checkpoint(tmp_path):
    path = str(tmp_path / "j.log")
    cp, hub, wire, clock = online(journal=Journal(path), checkpoint_s=300)
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    sid = cp.connectors[0].session_id
    t0 = int(EPOCH + clock.t)
    wire.run(700, dt=10)  # checkpoints at +300 and +600 s
    energy = int(cp.connectors[0].charge.energy_wh)
    # Power cut: no SESSION_END was written. The next boot closes the session as PowerLoss.
    clock2 = FakeClock(clock.t + 3600)
    wall2 = lambda: EPOCH + int(clock2.t)  # noqa: E731
    cp2 = ChargePoint({"id": "CP-1", "key": KEY}, clock2, wall2, journal=Journal(path), rand=lambda: 32768)
    hub2 = FakeHub(clock2, wall2)
    Wire(cp2, hub2, clock2, codec).start()
    end = hub2.ends[sid]
    assert end[7] == "PowerLoss" and end[5] == t0 and end[6] == t0 + 600
    assert 0 < end[4] <= energy and end[4] == pytest.approx(energy * 600 / 700, rel=0.02)
    assert cp2.status(1) == "Available" and cp2.journal.running == {}
    assert cp2.journal.meters[0] == end[4]


def test_a_torn_last_line_is_skipped_and_the_file_compacted(tmp_path):
    path = str(tmp_path / "j.log")
    j = Journal(path)
    j.next_number()
    journal_add(j, K.SESSION_START, ["s1", 1, "V", None, 0, 10])
    with open(path, "a") as f:
        f.write('[24, ["s1", 1, "V", nu')  # power cut mid-append
    j2 = Journal(path)
    assert j2.skipped == 1 and [f[0] for _, f in j2.pending()] == ["s1"]
    with open(path) as f:
        assert len(f.read().splitlines()) == 2


def test_the_journal_file_stays_small(tmp_path):
    path = str(tmp_path / "j.log")
    j = Journal(path)
    for i in range(200):
        j.next_number()
        journal_add(j, K.SESSION_START, ["s%d" % i, 1, "V", None, 0, 10])
        j.ack(K.SESSION_START, "s%d" % i)
    assert os.path.getsize(path) < 200
    assert Journal(path).counter == 200


def test_the_journal_appends_through_one_open_file_until_it_compacts(tmp_path, monkeypatch):
    """An open() per record would allocate a file object and a copy of the path mid-session on a board."""
    from firmware import journal as journal_module

    opened = []

    def counting_open(path, mode="r", *args, **kwargs):
        if mode != "r":  # the writes (a reboot's reading journal below opens it to read)
            opened.append((os.path.basename(path), mode))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(journal_module, "open", counting_open, raising=False)
    path = str(tmp_path / "j.log")
    j = Journal(path)
    j.next_number()
    j.session_started(["s1", 1, "V", None, 0, 10])
    j.checkpoint("s1", 5, 20)
    assert opened == [("j.log", "a")]
    assert list(Journal(path).running) == ["s1"]  # each record flushed: a reboot now finds it
    j.meters[0] += 5
    j.session_ended(["s1", 1, "V", None, 5, 10, 30, "Complete"])
    assert j.ack(K.SESSION_START, "s1") and j.ack(K.SESSION_END, "s1")  # empty: compacted
    j.next_number()
    assert opened[1:] == [("j.log.tmp", "w"), ("j.log", "a")]  # closed for the compaction, reopened after
    j.close()
    assert Journal(path).counter == 2 and Journal(path).pending() == []


def test_a_left_over_tmp_file_is_used_when_the_journal_is_missing(tmp_path):
    path = str(tmp_path / "j.log")
    j = Journal(path)
    j.next_number()
    journal_add(j, K.SESSION_START, ["s1", 1, "V", None, 0, 10])
    j.compact()
    os.rename(path, path + ".tmp")  # a crash between remove and rename on FAT
    assert [f[0] for _, f in Journal(path).pending()] == ["s1"]


# --- link ---------------------------------------------------------------------------------


def test_backoff_grows_by_1_8_and_caps_at_60_seconds_with_jitter():
    no_jitter = [backoff_delay(n, lambda: 0) for n in range(12)]
    assert no_jitter[:4] == [1000, 1800, 3240, 5832]  # ms
    assert max(no_jitter) == BACKOFF_CAP_S * 1000 and no_jitter[-1] == 60000
    jittered = [backoff_delay(n, lambda: 65535) for n in range(12)]
    assert all(0.75 * d <= j <= d and type(j) is int for d, j in zip(no_jitter, jittered))
    assert backoff_delay(1000, lambda: 32768) <= 60000


def test_the_link_retries_on_its_schedule_and_resets_after_a_welcome():
    clock = FakeClock(0.0)
    link = Link(clock, rand=lambda: 0)
    assert link.poll() == CONNECT
    delays = []
    for _ in range(10):
        link.connecting()
        delays.append(link.lost())
        assert link.poll() is None
        clock.t = link.next_attempt / 1000
        assert link.poll() == CONNECT
    assert delays[:3] == [1000, 1800, 3240] and delays[-1] == 60000
    link.connecting()
    link.connected()
    link.welcomed()
    assert link.lost() == 1000


def test_the_link_gives_up_on_a_handshake_that_never_finishes():
    clock = FakeClock(0.0)
    link = Link(clock, connect_timeout_s=20)
    link.connecting()
    link.connected()
    clock.t = 19
    assert link.poll() is None
    clock.t = 21
    assert link.poll() == GIVE_UP


def test_an_unreachable_hub_is_retried_with_backoff():
    cp, hub, wire, clock = station()
    hub.down()
    attempts = []
    orig = cp.on_connecting

    def counting():
        attempts.append(clock.t)
        orig()

    cp.on_connecting = counting
    wire.run(300, dt=0.25)
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert len(attempts) >= 8 and max(gaps) <= 60.25 and gaps == sorted(gaps)
    hub.up()
    wire.run(61, dt=0.25)
    assert cp.usable


# --- offline policy -------------------------------------------------------------------------


def _silence_the_hub(hub, wire, clock, seconds):
    """The hub process hangs: nothing the station sends is answered."""
    hub.down()
    wire.run(seconds, dt=5)


def test_offline_policy_reduce_finishes_the_session_at_reduced_power():
    cp, hub, wire, clock = online(offline_policy="reduce", offline_power_kw=3.7)
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    assert cp.connectors[0].charge.power_w() == 11000
    _silence_the_hub(hub, wire, clock, 100)
    assert cp.offline and cp.status(1) == "Charging"
    assert cp.connectors[0].charge.power_w() == 3700
    assert wire.run_until(lambda: cp.status(1) != "Charging", limit_s=8 * 3600, dt=60)
    assert cp.journal.pending()[-1][1][7] == "Complete"


def test_offline_policy_stop_ends_the_session_with_hub_lost():
    cp, hub, wire, clock = online(offline_policy="stop")
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    _silence_the_hub(hub, wire, clock, 100)
    assert cp.offline and cp.status(1) == "Finishing"
    kind, fields = cp.journal.pending()[-1]
    assert kind == K.SESSION_END and fields[7] == "HubLost"


def test_no_unreserved_session_starts_while_offline_but_a_reserved_one_does():
    cp, hub, wire, clock = online(connectors=2)
    now = int(EPOCH + clock.t)
    ask(hub, wire, K.RESERVE_NOW, 7, 0, "V-R", now + 600, now + 4000)
    _silence_the_hub(hub, wire, clock, 100)
    assert cp.offline
    with pytest.raises(Refused) as exc:
        cp.plug(2, "V-X")
    assert exc.value.code == E_FORBIDDEN
    sid = cp.plug(1, "V-R")
    assert sid and cp.status(1) == "Charging"
    assert cp.connectors[0].charge.limit_w == 3700


def test_the_station_recovers_when_the_hub_returns():
    cp, hub, wire, clock = online(connectors=2)
    ask(hub, wire, K.REMOTE_START, 1, "V-1", None, EV)
    sid = cp.connectors[0].session_id
    _silence_the_hub(hub, wire, clock, 100)
    assert cp.offline
    assert wire.run_until(lambda: cp.status(1) == "Available", limit_s=8 * 3600, dt=60)
    hub2 = FakeHub(clock, hub.wall)  # the hub restarted
    wire.hub = hub2
    assert wire.run_until(lambda: cp.usable, limit_s=120, dt=1)
    wire.step()
    assert not cp.offline and hub2.boots == 1
    assert sorted((c, s) for c, s, _ in hub2.statuses) == [(1, "Available"), (2, "Available")]
    assert sid in hub2.ends and cp.journal.pending() == []
    assert cp.connectors[0].charge is None
    assert ask(hub2, wire, K.REMOTE_START, 0, "V-2", None, EV).kind == K.ACK


def test_a_lost_boot_is_sent_again_before_the_link_is_given_up():
    cp, hub, wire, clock = station(request_timeout_s=10)
    real = hub._on_message
    hub.boots_dropped = 0

    def drop_two(m, real=real):
        if m.kind == K.BOOT and hub.boots_dropped < 2:
            hub.boots_dropped += 1
            return
        real(m)

    hub._on_message = drop_two
    wire.start()
    assert not cp.usable
    wire.run(25, dt=1)
    assert cp.usable and hub.links == 1 and hub.boots == 1


def test_a_silent_hub_drops_the_link_and_the_station_reconnects():
    cp, hub, wire, clock = online()
    hub.server = None  # the TCP link stays up but the hub process hangs: nothing is answered
    wire.run(89, dt=1)
    assert wire.connected and not cp.offline
    wire.run(2, dt=1)  # 3 heartbeats of silence: PeerSilent
    assert cp.offline and hub.links == 1
    assert wire.run_until(lambda: cp.usable, limit_s=10, dt=0.5)
    assert hub.links == 2 and not cp.offline


# --- configuration, triggers, availability ----------------------------------------------------


def test_configure_accepts_known_keys_and_refuses_unknown_ones():
    saved = []
    cp, hub, wire, clock = online()
    cp.on_config = lambda k, v: saved.append((k, v))
    assert ask(hub, wire, K.CONFIGURE, "meter_interval_s", 15).kind == K.ACK
    assert cp.config["meter_interval_s"] == 15 and saved == [("meter_interval_s", 15)]
    assert err_code(ask(hub, wire, K.CONFIGURE, "colour", "red")) == E_BAD_FIELD
    assert err_code(ask(hub, wire, K.CONFIGURE, "offline_policy", "explode")) == E_BAD_FIELD
    assert ask(hub, wire, K.CONFIGURE, "max_kw", 7.4).kind == K.ACK


def test_a_max_kw_change_applies_to_the_running_charge():
    cp, hub, wire, clock = online()
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, {"max_kw": 50.0, "soc": 0.1})
    assert cp.connectors[0].charge.power_w() == 22000
    ask(hub, wire, K.CONFIGURE, "max_kw", 7.4)
    assert cp.connectors[0].charge.power_w() == 7400


def test_trigger_acks_then_sends_what_was_asked():
    cp, hub, wire, clock = online(connectors=2)
    n = len(hub.statuses)
    assert ask(hub, wire, K.TRIGGER, "status").kind == K.ACK
    assert len(hub.statuses) == n + 2
    assert ask(hub, wire, K.TRIGGER, "meter").kind == K.ACK
    assert [m[0] for m in hub.meters[-2:]] == [1, 2]
    assert ask(hub, wire, K.TRIGGER, "boot").kind == K.ACK
    assert hub.boots == 2
    assert err_code(ask(hub, wire, K.TRIGGER, "firmware")) == E_BAD_FIELD


def test_change_availability_is_immediate_when_idle_and_after_the_session_otherwise():
    cp, hub, wire, clock = online(connectors=2, finishing_s=0)
    ask(hub, wire, K.REMOTE_START, 1, "V-1", None, EV)
    assert ask(hub, wire, K.CHANGE_AVAILABILITY, 0, False).kind == K.ACK
    assert cp.status(2) == "Unavailable" and cp.status(1) == "Charging"
    ask(hub, wire, K.REMOTE_STOP, cp.connectors[0].session_id)
    wire.step()
    assert cp.status(1) == "Unavailable"
    ask(hub, wire, K.CHANGE_AVAILABILITY, 2, True)
    assert cp.status(2) == "Available" and cp.status(1) == "Unavailable"


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, key",
    [
        ({}, "id"),
        ({"id": "CP-1"}, "key"),
        ({"id": "", "key": "k"}, "id"),
        ({"id": "CP-1", "key": "k", "connectors": 0}, "connectors"),
        ({"id": "CP-1", "key": "k", "connectors": True}, "connectors"),
        ({"id": "CP-1", "key": "k", "lat": 91}, "lat"),
        ({"id": "CP-1", "key": "k", "offline_policy": "panic"}, "offline_policy"),
        ({"id": "CP-1", "key": "k", "hub": {"host": "h"}}, "hub"),
        ({"id": "CP-1", "key": "k", "hub": []}, "hub"),
        ({"id": "CP-1", "key": "k", "hub": [{"host": "h", "port": 1}, {"host": "h"}]}, "hub"),
        ({"id": "CP-1", "key": "k", "hub": [{"host": "h", "port": 1}] * 5}, "hub"),
        ({"id": "CP-1", "key": "k", "hub": [{"host": "h", "port": 1, "tls": True}]}, "hub"),
        ({"id": "CP-1", "key": "k", "connectors": 2, "relay_pins": [4]}, "relay_pins"),
    ],
)
def test_a_bad_config_is_refused_naming_the_key(bad, key):
    with pytest.raises(ValueError) as exc:
        normalize(bad)
    assert str(exc.value).split()[0] == key, str(exc.value)


def test_a_session_never_ends_before_it_started_when_the_hub_clock_steps_back():
    cp, hub, wire, clock = online(sync_time=True)
    ask(hub, wire, K.REMOTE_START, 0, "V-1", None, EV)
    sid = cp.connectors[0].session_id
    hub.wall = lambda: EPOCH + int(clock.t) - 600  # the hub's clock is 10 minutes behind ours
    hub.server.wall = hub.wall
    wire.run(31)  # a PING/PONG: the station adopts the hub's time
    assert cp.time_offset == -600
    ask(hub, wire, K.REMOTE_STOP, sid)
    end = hub.ends[sid]
    assert end[6] >= end[5]


def test_a_station_may_list_several_hubs():
    hubs = [{"host": "a", "port": 7878}, {"host": "b", "port": 7878}]
    assert normalize({"id": "CP-1", "key": "k", "hub": hubs})["hub"] == hubs


def test_defaults_fill_a_minimal_config():
    cfg = normalize({"id": "CP-1", "key": "k"})
    assert cfg["hold_before_s"] == 600 and cfg["grace_s"] == 600 and cfg["offline_policy"] == "reduce"


# --- the whole thing ----------------------------------------------------------------------------


def test_a_full_reserved_session_with_a_reconnect_is_recorded_exactly_once():
    cp, hub, wire, clock = online(connectors=2, meter_interval_s=30)
    now = int(EPOCH + clock.t)
    ask(hub, wire, K.RESERVE_NOW, 11, 0, "V-9", now + 1200, now + 4800)
    wire.run(700, dt=10)
    assert hub.status(1) == "Reserved"
    assert ask(hub, wire, K.REMOTE_START, 0, "V-9", 11, EV).kind == K.ACK
    sid = cp.connectors[0].session_id
    wire.run(900, dt=10)
    wire.drop("connection reset")  # the link drops mid-session
    wire.run(30, dt=1)
    assert cp.usable and hub.links == 2 and not cp.offline
    assert wire.run_until(lambda: sid in hub.ends, limit_s=6 * 3600, dt=10)
    wire.run(100, dt=10)
    assert hub.records.count((K.SESSION_START, sid)) == 1
    assert hub.records.count((K.SESSION_END, sid)) == 1
    end = hub.ends[sid]
    assert end[2:5] == ["V-9", 11, 16000] and end[7] == "Complete"
    assert cp.journal.pending() == [] and hub.status(1) == "Available"

"""`evhub sim` end to end: the real hub process, CPython charge points and vehicle agents over loopback.

A small, fast simulation (5 stations, 10 vehicles, 20 s at x300: 100 simulated minutes)
must finish with zero errors and books that balance against the hub's own store.
"""

import json

import pytest

from hubproc import evhub
from tools.sim.world import CENTRE, load_rows, make_vehicles, place_stations
from hub.domain.geo import haversine_km


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim")
    res = evhub(
        "sim",
        "--stations",
        5,
        "--vehicles",
        10,
        "--duration",
        20,
        "--speedup",
        300,
        "--seed",
        3,
        "--vehicles-per-agent",
        4,
        "--json",
        cwd=str(tmp),
        timeout=100,
        check=False,
        env={"EVHUB_CONFIG_DIR": str(tmp / "config")},
    )
    assert "Traceback" not in res.stderr, res.stderr
    return res


def test_a_small_simulation_ends_with_zero_errors(small_run):
    out = json.loads(small_run.stdout)
    assert out["errors"] == 0, out["error_details"]
    assert small_run.returncode == 0
    assert out["stations"] == 5 and out["vehicles"] == 10 and not out["interrupted"]


def test_every_confirmed_reservation_ends_fulfilled_cancelled_or_expired(small_run):
    out = json.loads(small_run.stdout)
    assert out["reservations_confirmed"] > 0
    assert out["reservations_open"] == 0
    assert out["reservations_confirmed"] == (
        out["reservations_fulfilled"] + out["reservations_cancelled"] + out["reservations_expired"]
    )
    assert out["books_balanced"] is True


def test_the_energy_in_the_summary_is_what_the_hub_stored_for_the_sessions(small_run):
    out = json.loads(small_run.stdout)
    assert out["sessions_total"] > 0 and out["sessions_completed"] > 0
    assert out["energy_kwh"] > 0
    assert out["energy_kwh"] == out["energy_kwh_store"]  # what the vehicles were told == the hub's store


def test_the_summary_has_the_documented_fields(small_run):
    out = json.loads(small_run.stdout)
    for key in (
        "errors",
        "reservations_confirmed",
        "reservations_conflicted",
        "sessions_completed",
        "energy_kwh",
        "reservations_fulfilled",
        "reservations_cancelled",
        "reservations_expired",
        "reservations_open",
        "hub_cpu_s",
        "hub_rss_peak_mb",
        "positions_sent",
    ):
        assert key in out, key
    assert out["positions_sent"] > 0 and out["nearest_queries"] > 0


def test_a_mixed_fleet_of_our_boards_and_ocpp_chargers_balances_its_books(tmp_path):
    """--ocpp-share: some stations are OCPP 1.6J chargers (the `ocpp` library's charge-point side over real
    WebSockets to `evhub serve --ocpp`); the books must balance across both kinds, and OCPP sessions happen."""
    import sqlite3

    res = evhub(
        "sim",
        "--stations",
        4,
        "--vehicles",
        16,
        "--duration",
        20,
        "--speedup",
        300,
        "--seed",
        3,
        "--ocpp-share",
        0.5,
        "--vehicles-per-agent",
        8,
        "--json",
        "--workdir",
        str(tmp_path / "work"),
        cwd=str(tmp_path),
        timeout=100,
        check=False,
        env={"EVHUB_CONFIG_DIR": str(tmp_path / "config")},
    )
    assert "Traceback" not in res.stderr, res.stderr
    out = json.loads(res.stdout)
    assert out["errors"] == 0, out["error_details"]
    assert out["ocpp_stations"] == 2 and out["books_balanced"] is True
    assert out["energy_kwh"] == out["energy_kwh_store"] > 0
    con = sqlite3.connect(str(tmp_path / "work" / "hub.db"))
    try:
        by_protocol = dict(
            con.execute(
                "SELECT s.protocol, COUNT(*) FROM sessions se JOIN stations s ON s.id = se.station_id"
                " GROUP BY s.protocol"
            ).fetchall()
        )
    finally:
        con.close()
    assert by_protocol.get("ocpp1.6", 0) > 0 and by_protocol.get("evhub", 0) > 0, by_protocol


def test_bad_options_are_refused_with_a_message(tmp_path):
    res = evhub("sim", "--stations", 0, cwd=str(tmp_path), check=False, timeout=30)
    assert res.returncode == 2 and "--stations must be 1..2000" in res.stderr and "Traceback" not in res.stderr


def test_the_same_seed_places_the_same_stations_and_vehicles():
    assert place_stations(50, 7) == place_stations(50, 7)
    assert make_vehicles(20, 7, place_stations(50, 7)) == make_vehicles(20, 7, place_stations(50, 7))
    assert place_stations(50, 7) != place_stations(50, 8)


def test_stations_stand_within_a_couple_of_km_of_real_cities_around_feira_de_santana():
    rows = {r.id: r for r in load_rows()}
    stations = place_stations(50, 7)
    assert len({s.id for s in stations}) == 50
    assert stations[0].city == "Feira de Santana"
    for s in stations:
        row = rows[s.id]
        assert haversine_km(s.lat, s.lon, row.lat, row.lon) <= 1.6
        assert haversine_km(CENTRE[0], CENTRE[1], s.lat, s.lon) < 120


def test_more_stations_than_the_data_set_reuses_cities_with_new_ids():
    stations = place_stations(200, 1)
    assert len({s.id for s in stations}) == 200


def _fake_sim(tmp_path):
    from types import SimpleNamespace

    return SimpleNamespace(
        net_errors=[],
        errors=SimpleNamespace(texts=[]),
        fleet=None,
        hub_proc=None,
        hub_log=str(tmp_path / "hub.log"),
        stations=[1],
        vehicle_specs=[1],
        opts=SimpleNamespace(seed=1, speedup=60.0),
        interrupted=False,
        hub_watch=None,
        hub_peak_rss_kb=None,
    )


def _books(**states):
    return {
        "reservation_states": states,
        "reservations": sum(states.values()),
        "sessions_ended": 1,
        "energy_wh": 5000,
        "end_reasons": {"Complete": 1},
        "sessions_open": 0,
        "sessions_with_reservation": 1,
    }


@pytest.mark.parametrize(
    "books, stats, hub_stats, expect",
    [
        (_books(fulfilled=1, cancelled=1), {}, {}, None),
        (_books(fulfilled=1, confirmed=1), {}, {}, "still open"),
        (_books(fulfilled=1), {}, {}, "the store holds 1 reservations, the vehicles were confirmed 2"),
        (_books(fulfilled=1, cancelled=1), {"energy_wh": 4999}, {}, "energy: vehicles were told 4999 Wh"),
        (_books(fulfilled=1, cancelled=1), {}, {"bad_messages": 2}, "link trouble"),
        (
            _books(fulfilled=1, cancelled=1),
            {"errors": 1, "error_texts": ["EV-1: no answer to reserve"]},
            {},
            "EV-1: no answer to reserve",
        ),
    ],
)
def test_the_books_check_catches_what_does_not_add_up(tmp_path, books, stats, hub_stats, expect):
    from tools.sim.books import summarize

    seen = dict({"reservations_confirmed": 2, "energy_wh": 5000, "sessions_completed": 1}, **stats)
    final = {"stats": seen}
    wind = {"seconds": 0.1, "unsettled": 0, "records_pending": 0}
    out = summarize(_fake_sim(tmp_path), final, books, wind, hub_stats, 0.1, 10.0, 1.0, 10.0)
    if expect is None:
        assert out["errors"] == 0 and out["books_balanced"], out["error_details"]
    else:
        assert out["errors"] >= 1 and any(expect in d for d in out["error_details"]), out["error_details"]

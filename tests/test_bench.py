"""`evhub bench` smoke runs: every scenario, tiny numbers, against the real hub process.

Only the shape of the JSON and the absence of errors are checked. Speed is never asserted
here (machines are shared and noisy): the figures live in the README's Performance section.
"""

import json

import pytest

from hubproc import evhub

TINY = ["--connections", "2", "--duration", "1", "--warmup", "0.2", "--stations", "50", "--json"]
KEYS = (
    "scenario",
    "connections",
    "ops_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "hub_rss_mb",
    "hub_cpu_pct",
    "errors",
    "refused",
    "dropped",
)


def bench(*args, timeout=120):
    res = evhub("bench", *args, timeout=timeout)
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scenario", ["nearest", "positions", "reserve", "mixed"])
def test_a_tiny_closed_loop_run_of_each_scenario_reports_figures_and_no_errors(scenario):
    r = bench("--scenario", scenario, *TINY)
    for key in KEYS:
        assert key in r, key
    assert r["scenario"] == scenario and r["connections"] == 2
    assert r["errors"] == 0 and r["refused"] == 0 and r["dropped"] == 0, r
    assert r["ops_per_s"] > 0 and r["hub_rss_mb"] > 0
    if scenario == "reserve":
        assert r["double_bookings"] == 0
        assert r["confirmed_in_store"] == r["reserved_ok_all_runs"], "every acknowledged reservation is in the store"
    if scenario == "positions":
        assert r["hub_positions_counted"] == r["positions_sent"], "the hub's counter agrees with the client"


def test_a_tiny_ocpp_run_connects_every_charger_and_reports_calls_and_memory_with_no_errors():
    r = bench("--scenario", "ocpp", "--connections", "3", "--duration", "1", "--warmup", "0.2", "--json")
    assert r["scenario"] == "ocpp" and r["chargers"] == 3 and r["errors"] == 0, r
    assert r["calls_per_s"] > 0 and r["p99_ms"] is not None and r["hub_rss_connected_mb"] > 0
    assert r["hub_rss_per_charger_kb"] is not None


def test_the_baseline_runs_the_same_load_against_the_echo_server_and_gives_a_ratio(tmp_path):
    out = tmp_path / "figures.json"
    r = bench("--scenario", "nearest", "--baseline", "--repeat", "2", "--out", str(out), *TINY)
    assert len(r["runs"]) == 2
    assert r["baseline_ops_per_s"] > 0 and r["baseline"]["errors"] == 0
    assert r["ratio"] == pytest.approx(r["ops_per_s"] / r["baseline_ops_per_s"], rel=0.01)
    assert json.loads(out.read_text())["ratio"] == r["ratio"]


def test_an_open_loop_mixed_run_sends_positions_and_requests_at_the_rate():
    r = bench("--scenario", "mixed", "--rate", "50", "--position-interval", "0.5", *TINY)
    assert r["errors"] == 0 and r["mode"].startswith("open-loop")
    assert r["positions_sent"] > 0 and r["hub_positions_counted"] == r["positions_sent"]
    assert r["ops_per_s"] > 0


def test_the_micro_benchmarks_report_locator_conflict_and_wire_figures():
    r = bench("--scenario", "micro", "--quick", "--json", timeout=600)
    assert r["scenario"] == "micro"
    locator = r["locator_median_us (k=5, stations over 10x10 deg)"]
    assert set(locator) == {"1000", "10000"}
    assert r["conflict_check_us"]["10000"] > 0
    assert r["hub loop per NEAREST, 10k stations (us)"]["hub_us_per_nearest"] > 0
    assert r["firmware heap (board import set and full session, code in romfs)"]["import_set_kb"] > 0


def test_the_micro_report_prints_each_plain_section_with_its_own_value():
    from tools.bench.report import render

    text = render({"scenario": "micro", "python": "3.x", "note": "x", "first": {"a": 1.5}, "last": 2.25})
    lines = text.splitlines()
    assert [ln.split() for ln in lines if ln.split()[0] in ("note", "last")] == [["note", "x"], ["last", "2.250"]]
    # A plain section before any dict one printed the previous value or raised UnboundLocalError.
    assert "note" in render({"scenario": "micro", "note": "x"})

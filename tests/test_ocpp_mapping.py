"""OCPP 1.6J <-> evhub translation rules (hub/ocpp): meter values as chargers really send them,
statuses, stop reasons, times, ids, and when a future window becomes a ReserveNow."""

import pytest
from hypothesis import given, strategies as st

from hub.ocpp import mapping as M
from hub.ocpp.meter import latest, read_entry
from transport import kinds as K


def sv(value, **kw):
    return dict(value=value, **kw)


def test_a_sample_without_measurand_is_the_energy_register_in_wh():
    assert read_entry({"timestamp": "2026-12-04T10:00:00Z", "sampledValue": [sv("1234")]}).energy_wh == 1234


def test_kwh_and_kw_are_scaled_and_decimal_strings_are_rounded_half_up():
    r = read_entry({"sampledValue": [sv("12.3455", unit="kWh"), sv("7.2", unit="kW", measurand="Power.Active.Import")]})
    assert r.energy_wh == 12346 and r.power_w == 7200


def test_per_phase_rows_are_summed_unless_a_total_row_is_there():
    phases = [sv("100", phase="L1"), sv("110", phase="L2"), sv("120", phase="L3"), sv("5", phase="N")]
    assert read_entry({"sampledValue": phases}).energy_wh == 330
    assert read_entry({"sampledValue": phases + [sv("331")]}).energy_wh == 331
    power = [sv("2.3", unit="kW", measurand="Power.Active.Import", phase=p) for p in ("L1-N", "L2-N", "L3-N")]
    assert read_entry({"sampledValue": power}).power_w == 6900


@pytest.mark.parametrize(
    "sample",
    [
        sv("not a number"),
        sv("-5"),
        sv("NaN"),
        sv("Infinity"),
        sv("3a7f", format="SignedData"),
        sv("12", unit="varh"),
        sv("1", location="Body"),
        {"unit": "Wh"},
    ],
)
def test_what_is_not_a_usable_energy_reading_is_ignored_not_guessed(sample):
    assert read_entry({"sampledValue": [sample]}).energy_wh is None


def test_voltage_current_and_soc_are_not_taken_for_energy_or_power():
    r = read_entry(
        {
            "sampledValue": [
                sv("230", measurand="Voltage", unit="V"),
                sv("16", measurand="Current.Import", unit="A"),
                sv("55", measurand="SoC", unit="Percent"),
            ]
        }
    )
    assert r == (None, None, None)


def test_the_latest_entry_with_figures_wins_and_its_time_is_kept():
    r = latest(
        [
            {"timestamp": "T1", "sampledValue": [sv("100")]},
            {"timestamp": "T2", "sampledValue": [sv("250"), sv("3000", measurand="Power.Active.Import")]},
            {"timestamp": "T3", "sampledValue": [sv("x")]},
            "junk",
        ]
    )
    assert r == (250, 3000, "T2")


@given(st.integers(min_value=0, max_value=10**12))
def test_an_energy_register_in_kwh_reads_as_the_same_wh(wh):
    text = "%d.%03d" % divmod(wh, 1000)
    assert read_entry({"sampledValue": [sv(text, unit="kWh")]}).energy_wh == wh


def test_every_ocpp_status_maps_to_an_evhub_connector_status():
    for ocpp, ours in M.STATUS_FROM_OCPP.items():
        assert ours in K.CONNECTOR_STATUSES, ocpp
    assert len(M.STATUS_FROM_OCPP) == 9  # every 1.6 ChargePointStatus


def test_status_info_keeps_the_error_code_and_drops_noerror():
    assert M.status_info("GroundFailure", "relay 2") == "GroundFailure: relay 2"
    assert M.status_info("NoError", None) is None and M.status_info("NoError", "ok") == "ok"


@pytest.mark.parametrize(
    "ocpp, ours",
    [
        (None, "Local"),
        ("Local", "Local"),
        ("Remote", "Remote"),
        ("EmergencyStop", "Fault"),
        ("HardReset", "PowerLoss"),
        ("DeAuthorized", "Remote"),
        ("Other", "Local"),
        ("Nonsense", "Local"),
    ],
)
def test_stop_reasons_map_to_evhub_end_reasons(ocpp, ours):
    assert M.end_reason(ocpp) == ours and ours in K.END_REASONS


def test_ocpp_times_read_as_utc_epoch_seconds_and_back():
    assert M.epoch_s("2026-12-04T20:15:00Z") == 1796415300
    assert M.epoch_s("2026-12-04T21:15:00.250+01:00") == 1796415300
    assert M.epoch_s("2026-12-04T20:15:00") == 1796415300  # no zone: UTC
    assert M.iso(1796415300) == "2026-12-04T20:15:00Z"
    for bad in ("", "yesterday", None, 5):
        with pytest.raises(ValueError):
            M.epoch_s(bad)


def test_a_session_id_carries_its_transaction_id_and_only_its_own_station_reads_it_back():
    sid = M.session_id("CP-7", 42)
    assert M.transaction_id("CP-7", sid) == 42
    assert M.transaction_id("CP-8", sid) is None
    assert M.transaction_id("CP-7", "CP-7:0") is None and M.transaction_id("CP-7", "CP-7:%d" % 2**31) is None
    assert M.transaction_id("CP-7", "CP-7:-3") is None and M.transaction_id("CP-7", "S-12") is None


def test_id_tags_compare_case_insensitively_and_app_tags_fit_twenty_characters():
    assert M.normal_id_tag("abc123") == "ABC123"
    for bad in ("", "x" * 21, "tab\there", None):
        with pytest.raises(ValueError):
            M.normal_id_tag(bad)
    tag = M.app_id_tag("V-1")
    assert len(tag) == 20 and tag == tag.upper() and tag.startswith("EV") and tag == M.app_id_tag("V-1")
    assert M.app_id_tag("V-2") != tag and M.normal_id_tag(tag) == tag


def test_reserve_now_goes_out_lead_seconds_before_the_window_and_expires_after_the_grace():
    assert M.reserve_now_plan(10_000, 13_600, grace_s=600, lead_s=1800) == (8200, 10_600)
    assert M.reserve_now_plan(10_000, 10_300, grace_s=600, lead_s=0) == (10_000, 10_300)  # short window: its end
    with pytest.raises(ValueError):
        M.reserve_now_plan(10_000, 10_000, 600, 0)


@pytest.mark.parametrize(
    "ocpp, done, ours",
    [
        ("EVDisconnected", True, "Complete"),
        ("Local", True, "Complete"),
        (None, True, "Complete"),
        ("Remote", True, "Remote"),
        ("EVDisconnected", False, "EVDisconnected"),
        ("PowerLoss", True, "PowerLoss"),
    ],
)
def test_a_car_that_had_stopped_drawing_before_the_stop_completed_its_charge(ocpp, done, ours):
    assert M.end_reason(ocpp, ev_was_done=done) == ours

"""Closing the books of a simulation: what the hub's store says, checked against what the vehicles saw.

Read after the hub has stopped, from its store (SQLite file or PostgreSQL). The checks:

- every reservation the hub confirmed to a vehicle is a row in the store, and every row
  ended fulfilled, cancelled or expired (none left "confirmed" after the wind-down);
- every session in the store has ended, and the energy the vehicles were told in
  COMPLETE adds up to the energy the store recorded, to the watt-hour;
- nothing went wrong on the way: vehicles' protocol errors, timeouts and refusals,
  lost links, ERROR log records here, charge-point errors, ERROR lines in the hub log.
"""

import re
import resource

MAX_DETAILS = 20
_HUB_ERROR = re.compile(r" (ERROR|CRITICAL) |^Traceback", re.M)


def read(db):
    from hub.store.store import Store

    store = Store(db)
    try:
        return store.totals()
    finally:
        store.close()


def _hub_log_errors(path):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    return [line[:200] for line in text.splitlines() if _HUB_ERROR.search(line)]


# Hub counters (HUB_STATS) that mean something went wrong on a link.
HUB_TROUBLE = (
    "bad_messages",
    "auth_failures",
    "handshake_errors",
    "handshake_timeouts",
    "logins_throttled",
    "unauth_evicted",
    "refused_links",
    "slow_readers_cut",
)


def summarize(sim, final, books, wind, hub_stats, hub_cpu_s, run_s, setup_s, sim_minutes):
    stats = final["stats"]
    details = []

    def fail(count, text):
        if count:
            details.append(text)
        return count

    errors = 0
    errors += fail(
        stats.get("errors", 0), "%d vehicle errors (protocol errors, timeouts, refusals)" % stats.get("errors", 0)
    )
    details.extend(t for t in stats.get("error_texts", [])[:MAX_DETAILS])
    net_errors = getattr(sim, "net_errors", [])
    errors += fail(
        len(net_errors), "%d link errors: %s" % (len(net_errors), "; ".join("%s %s" % e for e in net_errors[:5]))
    )
    local = sim.errors.texts
    errors += fail(
        len(local), "%d ERROR log records in the simulator: %s" % (len(local), "; ".join(t for t in local[:5] if t))
    )
    cp_errors = sum(d.cp.internal_errors + d.cp.dropped_records for d in sim.fleet.devices) if sim.fleet else 0
    errors += fail(cp_errors, "%d charge-point errors (internal errors, records the hub rejected)" % cp_errors)
    ocpp = getattr(sim, "ocpp_fleet", None)
    ocpp_failures = ocpp.failures if ocpp is not None else []
    errors += fail(
        len(ocpp_failures), "%d OCPP charger failures: %s" % (len(ocpp_failures), "; ".join(ocpp_failures[:3]))
    )
    errors += fail(
        wind["records_pending"], "%d session records never acknowledged by the hub" % wind["records_pending"]
    )
    errors += fail(wind["unsettled"], "%d vehicles still busy after the wind-down" % wind["unsettled"])
    hub_rc = sim.hub_proc.returncode if sim.hub_proc is not None else None
    errors += fail(int(hub_rc not in (0, None)), "the hub exited with %s" % hub_rc)
    trouble = {k: hub_stats[k] for k in HUB_TROUBLE if hub_stats.get(k)}
    errors += fail(sum(trouble.values()), "the hub counted link trouble: %s" % trouble)
    hub_errs = _hub_log_errors(sim.hub_log)
    errors += fail(len(hub_errs), "%d ERROR lines in the hub log: %s" % (len(hub_errs), "; ".join(hub_errs[:3])))

    st = books["reservation_states"]
    confirmed = stats.get("reservations_confirmed", 0)
    fulfilled, cancelled, expired, still_open = (
        st.get(k, 0) for k in ("fulfilled", "cancelled", "expired", "confirmed")
    )
    errors += fail(
        int(books["reservations"] != confirmed),
        "the store holds %d reservations, the vehicles were confirmed %d" % (books["reservations"], confirmed),
    )
    errors += fail(still_open, "%d reservations still open after the wind-down" % still_open)
    balanced = books["reservations"] == confirmed == fulfilled + cancelled + expired and still_open == 0
    energy_wh = stats.get("energy_wh", 0)
    errors += fail(
        int(energy_wh != books["energy_wh"]),
        "energy: vehicles were told %d Wh, the store recorded %d Wh" % (energy_wh, books["energy_wh"]),
    )
    errors += fail(books["sessions_open"], "%d sessions never ended in the store" % books["sessions_open"])
    told = stats.get("sessions_completed", 0) + stats.get("sessions_stopped", 0)
    errors += fail(
        int(told != books["sessions_ended"]),
        "%d sessions in the store, vehicles got %d COMPLETE" % (books["sessions_ended"], told),
    )

    reasons = books["end_reasons"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hub_peak = sim.hub_peak_rss_kb or 0
    return {
        "errors": errors,
        "error_details": details[:MAX_DETAILS],
        "stations": len(sim.stations),
        "ocpp_stations": len(getattr(sim, "ocpp_ids", ())),
        "vehicles": len(sim.vehicle_specs),
        "seed": sim.opts.seed,
        "speedup": sim.opts.speedup,
        "duration_s": round(run_s, 1),
        "simulated_min": round(sim_minutes, 1),
        "interrupted": sim.interrupted,
        "reservations_confirmed": confirmed,
        "reservations_conflicted": stats.get("reservations_conflicted", 0),
        "alternatives_taken": stats.get("alternatives_taken", 0),
        "reservations_fulfilled": fulfilled,
        "reservations_cancelled": cancelled,
        "reservations_cancelled_at_end": stats.get("cancelled_at_end", 0),
        "reservations_dropped": stats.get("reservations_dropped", 0),
        "reservations_expired": expired,
        "reservations_open": still_open,
        "books_balanced": balanced,
        "sessions_completed": reasons.get("Complete", 0),
        "sessions_stopped_at_end": sum(n for r, n in reasons.items() if r != "Complete"),
        "sessions_total": books["sessions_ended"] + books["sessions_open"],
        "sessions_with_reservation": books["sessions_with_reservation"],
        "energy_kwh": round(energy_wh / 1000.0, 3),
        "energy_kwh_store": round(books["energy_wh"] / 1000.0, 3),
        "positions_sent": stats.get("positions_sent", 0),
        "hub_messages_in": hub_stats.get("messages_in"),
        "nearest_queries": stats.get("nearest_queries", 0),
        "start_retries": stats.get("start_retries", 0),
        "searches_failed": stats.get("searches_failed", 0),
        "stranded": stats.get("stranded", 0),
        "setup_s": round(setup_s, 1),
        "wind_down_s": wind["seconds"],
        "hub_cpu_s": round(hub_cpu_s, 2),
        "hub_cpu_pct": round(100.0 * hub_cpu_s / run_s, 1) if run_s > 0 else None,
        "hub_rss_peak_mb": round(hub_peak / 1024.0, 1) if hub_peak else None,
        "sim_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "sim_rss_peak_mb": round(usage.ru_maxrss / 1024.0, 1),
    }

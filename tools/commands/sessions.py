"""`evhub sessions export`: the billing record of ended charging sessions, from the store.

Reads the SQLite store directly (read-only), so it works whether the hub runs or not. Times are
taken and shown in local time; the CSV and JSON also carry UTC epoch seconds for scripts.

    evhub sessions export --since 2026-12-01 --until 2026-12-08 --format csv > week49.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import sys
from typing import Any

from tools.client.timetext import parse_day_or_time
from tools.common.exitcodes import EXIT_ERROR, EXIT_OK, EXIT_USAGE

COLUMNS = (
    "session_id",
    "station_id",
    "connector",
    "vehicle_id",
    "reservation_id",
    "started",
    "ended",
    "duration_s",
    "energy_wh",
    "energy_kwh",
    "reason",
    "started_utc",
    "ended_utc",
)


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = sub.add_parser("export", help="ended sessions for billing: energy, duration and who (CSV or JSON)")
    e.add_argument(
        "--since", help='sessions that ended at or after this local time ("YYYY-MM-DD" or "YYYY-MM-DD HH:MM")'
    )
    e.add_argument("--until", help="... and before this one (same forms)")
    e.add_argument("--station", help="only this station")
    e.add_argument("--vehicle", help="only this vehicle")
    e.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (default csv)")
    e.add_argument(
        "--db", default=os.environ.get("EVHUB_DB", "evhub.db"), help="the store (default $EVHUB_DB or ./evhub.db)"
    )


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else datetime.datetime.fromtimestamp(epoch).astimezone().isoformat()


def billing_row(s: dict[str, Any]) -> dict[str, Any]:
    started, ended, wh = s["started"], s["ended"], s["energy_wh"]
    return {
        "session_id": s["session_id"],
        "station_id": s["station_id"],
        "connector": s["connector"],
        "vehicle_id": s["vehicle_id"],
        "reservation_id": s["reservation_id"],
        "started": _iso(started),
        "ended": _iso(ended),
        "duration_s": None if started is None or ended is None else ended - started,
        "energy_wh": wh,
        "energy_kwh": None if wh is None else round(wh / 1000.0, 3),
        "reason": s["reason"],
        "started_utc": started,
        "ended_utc": ended,
    }


def run(args: argparse.Namespace) -> int:
    from hub.store.backend import DB_ERRORS, mask
    from hub.store.reads import Reads, open_read_only

    try:
        since = parse_day_or_time(args.since) if args.since else None
        until = parse_day_or_time(args.until) if args.until else None
    except ValueError as exc:
        print("evhub sessions export: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    if since is not None and until is not None and until <= since:
        print("evhub sessions export: --until must be after --since", file=sys.stderr)
        return EXIT_USAGE
    try:
        db = open_read_only(args.db)
    except (FileNotFoundError, ValueError) as exc:  # ValueError: a store others can read (hub/secretfile.py)
        print("evhub sessions export: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    rows: list[dict[str, Any]] = []
    try:
        page = 5000
        while True:  # paged, so a year of sessions never sits in one result set
            batch = Reads.session_history(db, args.station, args.vehicle, since, until, page, len(rows))
            rows.extend(billing_row(s) for s in batch)
            if len(batch) < page:
                break
    except DB_ERRORS as exc:
        print("evhub sessions export: cannot read %s: %s" % (mask(args.db), exc), file=sys.stderr)
        return EXIT_ERROR
    finally:
        db.close()
    if args.format == "json":
        json.dump(
            {"sessions": rows, "count": len(rows), "energy_wh": sum(r["energy_wh"] or 0 for r in rows)},
            sys.stdout,
            indent=1,
        )
        sys.stdout.write("\n")
    else:
        out = csv.DictWriter(sys.stdout, COLUMNS, lineterminator="\n")
        out.writeheader()
        out.writerows(rows)
    print("%d sessions, %.3f kWh" % (len(rows), sum(r["energy_wh"] or 0 for r in rows) / 1000.0), file=sys.stderr)
    return EXIT_OK

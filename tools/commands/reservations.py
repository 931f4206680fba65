"""`evhub reservations list|cancel`: the operator's view of the reservation book.

`list` reads the store (read-only), so it works whether the hub runs or not. `cancel` goes through
the running hub's HTTP API (`DELETE /api/reservations/ID` with the HTTP token), because the hub's
reservation book owns open reservations: the station and the vehicle are told, and nothing writes
behind the book's back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from tools.client.timetext import iso_local, parse_day_or_time, parse_reservation_id, show_window
from tools.common.exitcodes import (
    EXIT_CONFLICT,
    EXIT_DENIED,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)

STATES = ("confirmed", "fulfilled", "cancelled", "expired", "all")


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="reservations from the store (works while the hub is down)")
    ls.add_argument("--station", help="only this station")
    ls.add_argument("--vehicle", help="only this vehicle")
    ls.add_argument("--state", choices=STATES, default="all", help="only this state (default all)")
    ls.add_argument("--since", help='only windows ending at or after this local time ("YYYY-MM-DD [HH:MM]")')
    ls.add_argument("--limit", type=int, default=1000, help="at most this many (1..100000, default 1000)")
    ls.add_argument("--json", action="store_true", help="one JSON object, times also as UTC epoch seconds")
    ls.add_argument(
        "--db", default=os.environ.get("EVHUB_DB", "evhub.db"), help="the store (default $EVHUB_DB or ./evhub.db)"
    )
    c = sub.add_parser("cancel", help="cancel a reservation as the operator (through the running hub's HTTP API)")
    c.add_argument("reservation_id", help="the id, as the list prints it (42 or #42)")
    c.add_argument(
        "--http",
        default=os.environ.get("EVHUB_HTTP", "127.0.0.1:8080"),
        help="the hub's HTTP API HOST:PORT (default $EVHUB_HTTP or 127.0.0.1:8080)",
    )
    c.add_argument("--http-token-file", help="file holding the HTTP token (default $EVHUB_HTTP_TOKEN)")


def run(args: argparse.Namespace) -> int:
    return _list(args) if args.action == "list" else _cancel(args)


def _list(args: argparse.Namespace) -> int:
    from hub.store.backend import DB_ERRORS, mask
    from hub.store.reads import Reads, open_read_only

    if not 1 <= args.limit <= 100000:
        print("evhub reservations list: --limit must be 1..100000", file=sys.stderr)
        return EXIT_USAGE
    try:
        since = parse_day_or_time(args.since) if args.since else None
        db = open_read_only(args.db)
    except (ValueError, FileNotFoundError) as exc:
        print("evhub reservations list: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        rows = Reads.reservations_since(db, args.station, args.vehicle, args.state, since, args.limit)
    except DB_ERRORS as exc:
        print("evhub reservations list: cannot read %s: %s" % (mask(args.db), exc), file=sys.stderr)
        return EXIT_ERROR
    finally:
        db.close()
    if args.json:
        out = [
            dict(r, start=iso_local(r["start"]), end=iso_local(r["end"]), start_utc=r["start"], end_utc=r["end"])
            for r in rows
        ]
        print(json.dumps({"reservations": out}, indent=1))
        return EXIT_OK
    if not rows:
        print("no reservations")
        return EXIT_OK
    print("%-8s %-24s %-16s %-4s %-28s %s" % ("ID", "STATION", "VEHICLE", "CONN", "WINDOW (local)", "STATE"))
    for r in rows:
        print(
            "%-8s %-24s %-16s %-4s %-28s %s"
            % (
                "#%d" % r["id"],
                r["station_id"],
                r["vehicle_id"],
                r["connector"],
                show_window(r["start"], r["end"]),
                r["state"],
            )
        )
    return EXIT_OK


def _http_token(args: argparse.Namespace) -> str:
    if args.http_token_file:
        with open(args.http_token_file) as f:
            return f.read().strip()
    return os.environ.get("EVHUB_HTTP_TOKEN", "")


def _cancel(args: argparse.Namespace) -> int:
    try:
        rid = parse_reservation_id(args.reservation_id)
        token = _http_token(args)
    except ValueError as exc:
        print("evhub reservations cancel: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print("evhub reservations cancel: cannot read the token file: %s" % (exc.strerror or exc), file=sys.stderr)
        return EXIT_USAGE
    if not token:
        print(
            "evhub reservations cancel: the hub's HTTP token is needed (--http-token-file or $EVHUB_HTTP_TOKEN)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    req = urllib.request.Request(
        "http://%s/api/reservations/%d" % (args.http, rid),
        method="DELETE",
        headers={"Authorization": "Bearer " + token, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body: dict[str, Any] = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            text = json.loads(exc.read() or b"{}").get("error", exc.reason)
        except ValueError:
            text = exc.reason
        print("evhub reservations cancel: #%d: %s" % (rid, text), file=sys.stderr)
        return {404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT, 401: EXIT_DENIED, 403: EXIT_DENIED}.get(exc.code, EXIT_ERROR)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print("evhub reservations cancel: hub HTTP API at %s unreachable: %s" % (args.http, reason), file=sys.stderr)
        return EXIT_UNREACHABLE
    r = body.get("reservation", {})
    print("cancelled #%d at %s for %s" % (rid, r.get("station_id", "?"), r.get("vehicle_id", "?")))
    return EXIT_OK

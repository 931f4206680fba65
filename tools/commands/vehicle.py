"""`evhub vehicle --id V-1 ...`: the manual vehicle client (the seed had none).

Times are read and shown in local time and sent as UTC epoch seconds. --at takes
"YYYY-MM-DD HH:MM" (local time) or an ISO 8601 time with an offset; --json prints
times as ISO 8601 with the local offset ("start") and as UTC epoch seconds
("start_utc"), so a script can feed either back.
The token comes from --token, $EVHUB_TOKEN, or what `evhub vehicles add` remembered.
"""

import json
import sys
import time

from tools.client import credentials, secret_args, vehicle_charge
from tools.client.hubclient import HubClient, HubError, hub_url
from tools.client.timetext import iso_local, parse_local_time, show_local, show_window
from transport import kinds as K


def configure(p):
    p.add_argument("--id", required=True, help="vehicle id")
    p.add_argument("--hub", help="tcp://HOST:PORT (default $EVHUB_HUB or tcp://127.0.0.1:7878)")
    secret_args.add(
        p, "--token", "EVHUB_TOKEN", "vehicle token", extra_help=" (default: the one `evhub vehicles add` saved)"
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pos = sub.add_parser("position", help="report where the vehicle is")
    pos.add_argument("--lat", type=float, required=True, help="latitude in degrees, -90..90")
    pos.add_argument("--lon", type=float, required=True, help="longitude in degrees, -180..180")
    pos.add_argument("--soc", type=float, help="state of charge 0..1")
    near = sub.add_parser("nearest", help="the nearest stations with status and Free in X min")
    near.add_argument("--lat", type=float, required=True, help="latitude in degrees, -90..90")
    near.add_argument("--lon", type=float, required=True, help="longitude in degrees, -180..180")
    near.add_argument("--k", type=int, default=5, help="how many stations, 1..50 (default 5)")
    near.add_argument("--available", action="store_true", help="only stations available now")
    near.add_argument("--json", action="store_true", help="print JSON instead of a table")
    res = sub.add_parser("reserve", help='reserve a station: --at "2026-11-24 18:30" (local time)')
    res.add_argument("--station", required=True, help="station id (from `nearest`)")
    res.add_argument("--at", required=True, help="local start time, YYYY-MM-DD HH:MM")
    res.add_argument("--minutes", type=int, default=40, help="length of the reservation, 1..1440 minutes (default 40)")
    res.add_argument("--json", action="store_true", help="print JSON instead of a table")
    can = sub.add_parser("cancel", help="cancel one of your reservations")
    can.add_argument("reservation_id", help="the id as `reservations` prints it: 42 or '#42'")
    lst = sub.add_parser("reservations", help="your open reservations (--all: past and cancelled ones too)")
    lst.add_argument("--all", action="store_true", help="every state, newest first (at most 50)")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    vehicle_charge.configure(sub)  # start, stop, sessions


def _json_times(row):
    """A wire map with start/end in UTC epoch -> local ISO 8601 start/end plus start_utc/end_utc."""
    out = dict(row)
    for key in ("start", "end"):
        if isinstance(row.get(key), int):
            out[key] = iso_local(row[key])
            out[key + "_utc"] = row[key]
    return out


def _check_position(lat, lon):
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("--lat must be -90..90 and --lon -180..180")


def run(args):
    try:
        return _run(args)
    except ValueError as exc:
        print("evhub vehicle %s: %s" % (args.action, exc), file=sys.stderr)
        return 2
    except HubError as exc:
        print("evhub vehicle %s: %s" % (args.action, exc), file=sys.stderr)
        return exc.exit_code


def _run(args):
    # Validate everything local before touching the network.
    if args.action in ("position", "nearest"):
        _check_position(args.lat, args.lon)
    if args.action == "position" and args.soc is not None and not 0 <= args.soc <= 1:
        raise ValueError("--soc must be 0..1")
    if args.action == "nearest" and not 1 <= args.k <= 50:
        raise ValueError("--k must be 1..50")
    if args.action == "reserve":
        start = parse_local_time(args.at)
        if not 1 <= args.minutes <= 24 * 60:
            raise ValueError("--minutes must be 1..1440")
        if start < time.time() - 60:
            raise ValueError("%s is in the past (it is %s now)" % (show_local(start), show_local(time.time())))
    vehicle_charge.check(args)
    token = credentials.lookup("vehicle", args.id, secret_args.resolve(args, "--token", "EVHUB_TOKEN"))
    if not token:
        raise ValueError(
            "no token for vehicle %s: run `evhub vehicles add --id %s` or pass --token" % (args.id, args.id)
        )
    rid = None
    if args.action == "cancel":
        from tools.client.timetext import parse_reservation_id

        rid = parse_reservation_id(args.reservation_id)  # ValueError: exit 2 before touching the network
    with HubClient(hub_url(args.hub), "vehicle", args.id, token) as hub:
        if args.action in ("start", "stop", "sessions"):
            return vehicle_charge.run(hub, args)
        if args.action == "position":
            hub.send(K.POSITION, args.lat, args.lon, int(time.time()), args.soc)
            # A position has no reply; a round trip proves the hub took it (and surfaces its error if any).
            hub.request(K.LIST_RESERVATIONS)
            for ev in hub.events:
                if ev.kind == K.ERROR:
                    raise HubError("the hub refused the position: %s" % ev.fields[1], ev.fields[0])
            print("position sent: %.5f, %.5f" % (args.lat, args.lon))
            return 0
        if args.action == "nearest":
            filters = {"available": True} if args.available else None
            _k, fields = hub.request(K.NEAREST, args.lat, args.lon, args.k, filters)
            stations = fields[0]
            if args.json:
                print(json.dumps(stations, indent=1))
                return 0
            if not stations:
                print("no stations found")
            for s in stations:
                status = s["status"]
                if status != "Available" and s["free_in_min"]:
                    status = "%s (Free in %d min)" % (status, s["free_in_min"])
                print("%-12s %7.2f km  %s" % (s["id"], s["distance_km"], status))
            return 0
        if args.action == "reserve":
            _k, fields = hub.reserve(args.station, start, start + args.minutes * 60)  # retried with one request_id
            ok, rid, alternatives, reason = fields[0], fields[1], fields[2], fields[3]
            if args.json:
                out = {"ok": ok}
                if ok:
                    out["reservation_id"] = rid
                    out.update(
                        _json_times({"station_id": args.station, "start": start, "end": start + args.minutes * 60})
                    )
                else:
                    out["alternatives"] = [_json_times(a) for a in alternatives]
                    out["reason"] = reason
                print(json.dumps(out, indent=1))
                return 0 if ok else 3
            if ok:
                print(
                    "reserved: #%d at %s, %s (%d min)"
                    % (rid, args.station, show_window(start, start + args.minutes * 60), args.minutes)
                )
                return 0
            print("not reserved: %s" % (reason or "conflict"))
            for alt in alternatives:
                print(
                    "  alternative: %-12s %s%s"
                    % (
                        alt["station_id"],
                        show_window(alt["start"], alt["end"]),
                        "  (%.1f km away)" % alt["distance_km"] if alt.get("distance_km") else "",
                    )
                )
            return 3
        if args.action == "cancel":
            hub.request(K.CANCEL, rid)
            print("cancelled #%d" % rid)
            return 0
        _k, fields = hub.request(K.RESERVATION_HISTORY if args.all else K.LIST_RESERVATIONS)
        rows = fields[0]
        if args.json:
            print(json.dumps([_json_times(r) for r in rows], indent=1))
            return 0
        if not rows:
            print("no reservations")
        for r in rows:
            print(
                "#%-6d %-12s %s  %s"
                % (r["reservation_id"], r["station_id"], show_window(r["start"], r["end"]), r["state"])
            )
        return 0

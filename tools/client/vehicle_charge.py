"""`evhub vehicle start | stop | sessions`: charging from the terminal.

    evhub vehicle --id V-1 start --station CP-1 [--reservation N] [--connector N] [--follow]
    evhub vehicle --id V-1 stop [SESSION]
    evhub vehicle --id V-1 sessions [--json]

``start`` sends START_CHARGE (with the vehicle's reservation open at that station now, unless
--reservation names one), waits for the station's answer and then for SESSION_STARTED, and with
--follow prints each CHARGE_PROGRESS until COMPLETE. ``stop`` stops a session of this vehicle
(without SESSION: its one running session). ``sessions`` lists this vehicle's sessions from the
hub's store, newest first.

Whatever the hub or the station refuses comes back as an ERROR (code, text); it is printed as one
line and the exit status says which kind of no it was (README "Exit codes"): 3 the station cannot
start now (nothing plugged in, connector busy, station offline), 4 unknown station, reservation
or session, 5 not allowed (no reservation for this vehicle, another vehicle's reservation or
session), 6 hub unreachable or silent, 1 the start was accepted but no session began in time.
"""

from __future__ import annotations

import json
import sys
import time

from tools.common.exitcodes import EXIT_CONFLICT, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK
from tools.client.hubclient import HubClient, HubError
from transport import errors as E
from transport import kinds as K

START_WAIT_S = 30.0  # START_CHARGE accepted -> SESSION_STARTED (the station answers first, then reports)
FOLLOW_WAIT_S = 600.0  # --follow: the longest silence between two progress events
HOLD_BEFORE_S = 600  # a reservation is open this long before its start (firmware config hold_before_s)

# What each refusal means to a person at a charger, by the hub's error code.
WHY = {
    E.E_NOT_FOUND: "not found",
    E.E_FORBIDDEN: "not allowed",
    E.E_INVALID_STATE: "the station cannot start now",
    E.E_CONFLICT: "the station cannot start now",
}


def configure(sub) -> None:
    """Adds start, stop and sessions to `evhub vehicle`'s subcommands."""
    st = sub.add_parser("start", help="start charging at a station (your reservation there, or a walk-in)")
    st.add_argument("--station", required=True, help="station id to charge at")
    st.add_argument("--reservation", type=int, help="the reservation to charge on (default: yours open there now)")
    st.add_argument(
        "--connector", type=int, help="connector number 1..%d (see `evhub vehicle start --help`)" % K.MAX_CONNECTORS
    )
    st.add_argument("--soc", type=float, help="the battery's state of charge now, 0..1 (sent to the station)")
    st.add_argument("--target-soc", type=float, dest="target_soc", help="charge up to this state of charge, 0..1")
    st.add_argument("--capacity-kwh", type=float, dest="capacity_kwh", help="the battery's capacity, kWh")
    st.add_argument("--max-kw", type=float, dest="max_kw", help="the most power the car takes, kW")
    st.add_argument("--follow", action="store_true", help="print the charge's progress until COMPLETE")
    st.add_argument("--timeout", type=float, default=START_WAIT_S, help="seconds to wait for the session to start")
    st.add_argument("--json", action="store_true", help="print JSON")
    sp = sub.add_parser("stop", help="stop your running session")
    sp.add_argument("session_id", nargs="?", metavar="SESSION", help="session id (default: your one running session)")
    ss = sub.add_parser("sessions", help="your charging sessions, newest first")
    ss.add_argument("--json", action="store_true", help="print JSON")


def check(args) -> None:
    """Local checks before the network; ValueError says what to fix."""
    if args.action == "start":
        if args.connector is not None and not 1 <= args.connector <= K.MAX_CONNECTORS:
            raise ValueError("--connector must be 1..%d" % K.MAX_CONNECTORS)
        if not 0 < args.timeout <= 3600:
            raise ValueError("--timeout must be 1..3600 seconds")
        for name in ("soc", "target_soc"):
            v = getattr(args, name)
            if v is not None and not 0 <= v <= 1:
                raise ValueError("--%s must be 0..1" % name.replace("_", "-"))
        for name in ("capacity_kwh", "max_kw"):
            v = getattr(args, name)
            if v is not None and not 0 < v <= 1000:
                raise ValueError("--%s must be in (0, 1000]" % name.replace("_", "-"))


def ev_map(args) -> dict | None:
    """The START_CHARGE ev map from the flags given (None: the station assumes a typical car)."""
    ev = {
        name: getattr(args, name)
        for name in ("max_kw", "capacity_kwh", "soc", "target_soc")
        if getattr(args, name) is not None
    }
    return ev or None


def refused(action: str, exc: HubError, where: str | None = None) -> int:
    """Prints the hub's refusal as one line (naming the station or session it was about); returns
    the exit status."""
    if exc.code is None:  # unreachable, went away, silent
        print("evhub vehicle %s: %s" % (action, exc), file=sys.stderr)
        return exc.exit_code
    why = WHY.get(exc.code)
    about = " (%s)" % where if where and where not in str(exc) else ""
    text = " ".join(str(exc).split())  # the hub's or the station's text, kept to one line
    print("evhub vehicle %s: %s%s: %s" % (action, why or "refused", about, text), file=sys.stderr)
    if exc.code == E.E_INVALID_STATE:
        return EXIT_CONFLICT  # e.g. nothing plugged in: try again when the car is connected
    return exc.exit_code


def run(hub: HubClient, args) -> int:
    try:
        if args.action == "start":
            return _start(hub, args)
        if args.action == "stop":
            return _stop(hub, args)
        return _sessions(hub, args)
    except HubError as exc:
        return refused(args.action, exc, getattr(args, "station", None) or getattr(args, "session_id", None))


def _open_reservation(hub: HubClient, station_id: str, now: float):
    """This vehicle's confirmed reservation at `station_id` whose window is open now, or None."""
    rows = hub.request(K.LIST_RESERVATIONS)[1][0]
    for r in rows:
        if (
            r.get("station_id") == station_id
            and r.get("state") == "confirmed"
            and r["start"] - HOLD_BEFORE_S <= now < r["end"]
        ):
            return r["reservation_id"]
    return None


def _start(hub: HubClient, args) -> int:
    rid = args.reservation
    if rid is None:
        rid = _open_reservation(hub, args.station, time.time())
    # The wire's START_CHARGE has no connector field yet: --connector goes as a trailing field the
    # hub ignores today (peers ignore appended fields) and is checked against SESSION_STARTED.
    extra = (args.connector,) if args.connector is not None else ()
    hub.request(K.START_CHARGE, args.station, rid, ev_map(args), *extra)  # the station's ACK, relayed; ERROR raises
    started = hub.wait_event((K.SESSION_STARTED,), args.timeout)
    if started is None:
        print(
            "evhub vehicle start: %s accepted the start but no session began within %.0f s; see `evhub vehicle "
            "--id %s sessions`" % (args.station, args.timeout, args.id),
            file=sys.stderr,
        )
        return EXIT_ERROR
    session_id, station_id, connector = started.fields[0], started.fields[1], started.fields[2]
    if args.json and not args.follow:
        print(
            json.dumps(
                {"session_id": session_id, "station_id": station_id, "connector": connector, "reservation_id": rid}
            )
        )
    else:
        print(
            "charging: session %s at %s connector %d%s"
            % (session_id, station_id, connector, " (reservation #%d)" % rid if rid is not None else "")
        )
    if args.connector is not None and connector != args.connector:
        print(
            "evhub vehicle start: note: the station chose connector %d: the hub does not pass --connector %d on "
            "yet" % (connector, args.connector),
            file=sys.stderr,
        )
    if not args.follow:
        return EXIT_OK
    return _follow(hub, session_id, args.json)


def _follow(hub: HubClient, session_id: str, as_json: bool) -> int:
    while True:
        ev = hub.wait_event((K.CHARGE_PROGRESS, K.COMPLETE), FOLLOW_WAIT_S)
        if ev is None:
            print(
                "evhub vehicle start: no word on session %s for %.0f s" % (session_id, FOLLOW_WAIT_S), file=sys.stderr
            )
            return EXIT_ERROR
        if ev.fields[0] != session_id:
            continue
        if ev.kind == K.CHARGE_PROGRESS:
            energy, power = ev.fields[2], ev.fields[3]
            if as_json:
                print(json.dumps({"session_id": session_id, "energy_wh": energy, "power_w": power}), flush=True)
            else:
                print("  %d Wh  %.1f kW" % (energy, power / 1000), flush=True)
            continue
        energy, duration, reason = ev.fields[2], ev.fields[3], ev.fields[4]
        if as_json:
            print(
                json.dumps(
                    {
                        "session_id": session_id,
                        "energy_wh": energy,
                        "duration_s": duration,
                        "reason": reason,
                        "complete": True,
                    }
                )
            )
        else:
            print(
                "complete: session %s, %d Wh in %d min %02d s (%s)"
                % (session_id, energy, duration // 60, duration % 60, reason)
            )
        return EXIT_OK


def _stop(hub: HubClient, args) -> int:
    sid = args.session_id
    if sid is None:
        running = [s for s in hub.request(K.LIST_SESSIONS)[1][0] if s.get("ended") is None]
        if not running:
            print("evhub vehicle stop: not found: vehicle %s has no running session" % args.id, file=sys.stderr)
            return EXIT_NOT_FOUND
        if len(running) > 1:
            print(
                "evhub vehicle stop: %d sessions are running (%s): name one"
                % (len(running), ", ".join(s["session_id"] for s in running)),
                file=sys.stderr,
            )
            return EXIT_CONFLICT
        sid = running[0]["session_id"]
    hub.request(K.STOP_CHARGE, sid)
    print("stop sent: session %s (the station ends it and reports COMPLETE)" % sid)
    return EXIT_OK


def _sessions(hub: HubClient, args) -> int:
    from tools.client.timetext import iso_local, show_local

    rows = hub.request(K.LIST_SESSIONS)[1][0]
    if args.json:
        out = []
        for r in rows:
            row = dict(r)
            for key in ("started", "ended"):
                if isinstance(r.get(key), int):
                    row[key] = iso_local(r[key])
                    row[key + "_utc"] = r[key]
            out.append(row)
        print(json.dumps(out, indent=1))
        return EXIT_OK
    if not rows:
        print("no sessions")
    for r in rows:
        when = show_local(r["started"]) if isinstance(r.get("started"), int) else "?"
        if r.get("ended") is None:
            state = "running"
        else:
            state = "%d Wh, %s" % (r.get("energy_wh") or 0, r.get("reason") or "ended")
        print(
            "%-24s %-12s c%d  %s  %s%s"
            % (
                r["session_id"],
                r["station_id"],
                r["connector"],
                when,
                state,
                "  #%d" % r["reservation_id"] if r.get("reservation_id") else "",
            )
        )
    return EXIT_OK

"""`evhub sim`: the hub, CPython charge points and vehicle agents on this machine, over real loopback links.

    evhub sim [--stations 50] [--vehicles 200] [--duration 60] [--speedup 60] [--seed N] [--json]

Stations stand in cities of Bahia around Feira de Santana (tools/data/stations_bahia.csv);
the same --seed gives the same stations and vehicles. On a terminal the run is shown
live; at the end comes a summary (or, with --json, one JSON object). Ctrl-C (or SIGTERM)
ends the run early, still closing the books. Exit status: 0 when the run had no errors
and its books balance, 1 when it had errors, 130 when it was cut short without errors.
"""

import json
import logging
import os
import signal
import sys
import threading


def configure(p):
    p.add_argument("--stations", type=int, default=50, help="charge points, 1..2000 (default 50)")
    p.add_argument("--vehicles", type=int, default=200, help="vehicle agents, 0..5000 (default 200)")
    p.add_argument("--duration", type=float, default=60, help="real seconds to run, 1..86400 (default 60)")
    p.add_argument(
        "--speedup",
        type=float,
        default=60,
        help="simulated time runs this many times faster, 1..3600 (default 60: a minute a second)",
    )
    p.add_argument("--seed", type=int, help="seed for stations and vehicles (default: from the clock)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument(
        "--position-every",
        type=float,
        default=60,
        dest="report_s",
        metavar="SECONDS",
        help="each vehicle reports its position this often, in simulated seconds (default 60)",
    )
    p.add_argument(
        "--vehicles-per-agent",
        type=int,
        default=25,
        dest="per_agent",
        help="vehicles driven by one Pykka actor (thread); 1 = an actor per vehicle (default 25)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (hub.db, hub.log, sim.log)")
    p.add_argument("--workdir", help="use this directory for the store and logs (kept)")
    p.add_argument(
        "--db",
        metavar="URL",
        help="run the hub on this store instead of WORKDIR/hub.db: an EMPTY database, e.g. postgresql://user@host/db",
    )
    p.add_argument(
        "--hubs",
        type=int,
        default=1,
        help="run this many hubs on the --db PostgreSQL database; stations and vehicles are spread over them (default 1)",
    )
    p.add_argument(
        "--ocpp-share",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="the fraction of stations that are OCPP 1.6J chargers, joining through the hub's central "
        "system (0..1, default 0: all our own boards)",
    )
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve the hub's HTTP API and dashboard here (loopback, e.g. 127.0.0.1:8080; port 0 picks one)",
    )


def _log_to(path, verbose, to_stderr):
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    if to_stderr:
        err = logging.StreamHandler(sys.stderr)
        err.setLevel(logging.ERROR)
        err.setFormatter(logging.Formatter("evhub sim: %(name)s: %(message)s"))
        root.addHandler(err)
    return handler


def run(args):
    from tools.sim.display import LiveDisplay, format_summary
    from tools.sim.run import SimError, SimOptions, Simulation

    opts = SimOptions(
        stations=args.stations,
        vehicles=args.vehicles,
        duration=args.duration,
        speedup=args.speedup,
        seed=args.seed,
        per_agent=args.per_agent,
        workdir=args.workdir,
        keep=args.keep,
        report_s=args.report_s,
        http=args.http,
        ocpp_share=args.ocpp_share,
        db=args.db,
        hubs=args.hubs,
    )
    try:
        opts.check()
        if args.workdir:
            os.makedirs(args.workdir, exist_ok=True)
        sim = Simulation(opts)
    except (ValueError, OSError) as exc:
        print("evhub sim: %s" % exc, file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():
        # SIGTERM and a closed terminal end the run like Ctrl-C: wind down, stop the hub, report.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
    live = sys.stdout.isatty() and not args.json
    handler = _log_to(os.path.join(sim.workdir, "sim.log"), getattr(args, "verbose", 0), to_stderr=not live)
    display = None
    summary = None
    title = "%d stations · %d vehicles · x%g · seed %s" % (opts.stations, opts.vehicles, opts.speedup, opts.seed)
    try:
        if live:
            print(
                "evhub sim: starting the hub, %d charge points and %d vehicles (work dir %s)..."
                % (opts.stations, opts.vehicles, sim.workdir),
                flush=True,
            )
            display = LiveDisplay(sim.stations, title, sys.stdout)
        summary = sim.run(progress=display.update if display else None)
    except SimError as exc:
        print("evhub sim: %s (logs in %s)" % (exc, sim.workdir), file=sys.stderr)
        return 1
    finally:
        if display is not None:
            display.close()
        logging.getLogger().removeHandler(handler)
        handler.close()
    kept = sim.cleanup(summary)
    if kept:
        summary["workdir"] = kept
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_summary(summary, colour=live))
    if summary["errors"]:
        return 1
    return 130 if summary["interrupted"] else 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt

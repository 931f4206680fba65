"""`evhub bench`: load a real hub over loopback and report throughput, latency, memory and CPU.

    evhub bench --scenario nearest --connections 100 --stations 10000 --duration 10 --baseline
    evhub bench --scenario mixed --connections 10000 --rate 2000 --position-interval 1
    evhub bench --scenario micro

Starts a hub process on a throwaway database (or targets --hub URL with --db, its
database), opens N real vehicle connections from a separate load-client process, and
drives the scenario closed-loop (--window requests in flight per connection) or
open-loop (--rate requests/s). --baseline first runs the same client against a
do-nothing echo server: the hub's throughput is reported as a ratio of that ceiling.
See the README's Performance section for what each figure means and how it is measured.
"""

import json
import sys

SCENARIOS = ("positions", "nearest", "reserve", "mixed", "micro", "ocpp", "cluster")


def configure(p):
    p.add_argument(
        "--scenario", choices=SCENARIOS, default="nearest", help="what to load the hub with (default nearest)"
    )
    p.add_argument(
        "--connections",
        type=int,
        default=100,
        help="vehicle connections; for --scenario ocpp, OCPP chargers (default 100)",
    )
    p.add_argument("--stations", type=int, default=10000, help="stations provisioned (default 10000)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds (default 10)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds run before measuring (default 1)")
    p.add_argument(
        "--rate",
        type=float,
        help="open loop: requests/s in total (positions/s for --scenario positions); default closed loop",
    )
    p.add_argument(
        "--window", type=int, help="closed loop: requests in flight per connection (default max(1, 256 // connections))"
    )
    p.add_argument("--k", type=int, default=5, help="stations per nearest query (default 5)")
    p.add_argument(
        "--burst",
        type=int,
        default=50,
        help="positions: positions sent before each PING that vouches for them (default 50)",
    )
    p.add_argument(
        "--position-interval",
        type=float,
        default=1.0,
        help="mixed: each connection sends a position this often, seconds (default 1; 0 = none)",
    )
    p.add_argument(
        "--reserve-share", type=float, default=0.0, help="mixed: share of requests that are reservations (default 0)"
    )
    p.add_argument(
        "--hot-share",
        type=float,
        default=0.1,
        help="reserve: share of reservations aimed at 12 hot slots, to force conflicts (default 0.1)",
    )
    p.add_argument("--procs", type=int, default=1, help="load-client processes (default 1)")
    p.add_argument("--baseline", action="store_true", help="first run the same load against the echo server")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run (echo, then hub) this many times and report the best of each: on a shared machine the"
        " best run is the least disturbed (default 1)",
    )
    p.add_argument("--hub", help="bench a running hub at tcp://HOST:PORT instead of starting one (needs --db)")
    p.add_argument(
        "--db",
        help="with --hub: the database that hub serves (bench vehicles are added to it); without --hub, "
        "postgresql://...: run the load on SQLite and then on a scratch database on that server, side by side;"
        " --scenario cluster: the database its hubs share",
    )
    p.add_argument("--hubs", type=int, default=3, help="cluster: hubs started on the --db PostgreSQL (default 3)")
    p.add_argument("--quick", action="store_true", help="micro: smaller sizes, for a smoke run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", help="also write the figures (JSON) to this file")
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the hub (and the echo server) with py-spy over the measured window: FILE.hub / FILE.echo"
        " hold collapsed stacks; the report lists the top functions (pip install py-spy)",
    )
    p.add_argument("--timeline", action="store_true", help="also report the worst latency in each second of the run")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (hub and client logs)")


def run(args):
    if args.scenario == "micro":
        from tools.bench import micro

        result = micro.run(quick=args.quick)
    elif args.scenario == "cluster":
        from tools.bench import cluster
        from tools.bench.runner import BenchError

        try:
            result = cluster.run(
                {
                    "db": args.db,
                    "hubs": args.hubs,
                    "connections": args.connections,
                    "duration": args.duration,
                    "keep_tmp": args.keep_tmp,
                }
            )
        except BenchError as exc:
            print("evhub bench: %s" % exc, file=sys.stderr)
            return 1
        result["command"] = "evhub " + " ".join(sys.argv[1:])
        print(cluster.summary(result))
        if args.out:
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1, sort_keys=True)
                f.write("\n")
        return 0
    elif args.scenario == "ocpp":
        from tools.bench import ocpp
        from tools.bench.runner import BenchError

        if args.connections < 1 or args.duration <= 0:
            print("evhub bench: --connections and --duration must be positive", file=sys.stderr)
            return 2
        try:
            result = ocpp.run(
                {
                    "connections": args.connections,
                    "duration": args.duration,
                    "warmup": args.warmup,
                    "keep_tmp": args.keep_tmp,
                }
            )
        except BenchError as exc:
            print("evhub bench: %s" % exc, file=sys.stderr)
            return 1
        result["command"] = "evhub " + " ".join(sys.argv[1:])
    else:
        from tools.bench import runner

        if args.connections < 1 or args.duration <= 0 or (args.rate is not None and args.rate <= 0):
            print("evhub bench: --connections, --duration and --rate must be positive", file=sys.stderr)
            return 2
        opts = {
            "scenario": args.scenario,
            "connections": args.connections,
            "stations": args.stations,
            "duration": args.duration,
            "warmup": args.warmup,
            "rate": args.rate,
            "window": args.window,
            "k": args.k,
            "burst": args.burst,
            "position_interval": args.position_interval,
            "reserve_share": args.reserve_share,
            "hot_share": args.hot_share,
            "procs": args.procs,
            "baseline": args.baseline,
            "repeat": args.repeat,
            "hub": args.hub,
            "db": args.db,
            "keep_tmp": args.keep_tmp,
            "profile": args.profile,
            "timeline": args.timeline,
        }
        try:
            result = runner.run(opts)
        except runner.BenchError as exc:
            print("evhub bench: %s" % exc, file=sys.stderr)
            return 1
        result["command"] = "evhub " + " ".join(sys.argv[1:])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
            f.write("\n")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        from tools.bench.report import render

        print(render(result))
    return 0

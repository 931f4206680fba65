"""`evhub chargepoint`: run a simulated charge point (the firmware core on CPython).

    evhub chargepoint --id CP-1 --key KEY [--hub tcp://HOST:PORT | --hub tls://HOST:PORT [--tls-ca PEM]
                      | --serial URL] [--lat --lon --connectors --max-kw] [--db STORE] [--speedup X] [--config FILE]

The hub comes from --hub, else $EVHUB_HUB, else tcp://127.0.0.1:7878. tls:// talks TLS to a
hub served with --tls-cert and checks its certificate against --tls-ca (default
$EVHUB_TLS_CA, else the system's trust store). --serial takes any
pyserial URL (a pty path, /dev/ttyUSB0, socket://, loop://). --config reads a JSON file in
the board's config.json format; flags given on the command line win over it.
"""

import json
import os
import ssl
import signal
import sys
import threading

from tools.client import secret_args

DEFAULT_HUB = "tcp://127.0.0.1:7878"


def configure(p):
    p.add_argument("--id", required=True, help="station id as provisioned (evhub stations add)")
    secret_args.add(p, "--key", "EVHUB_KEY", "the station's key")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--hub",
        help="tcp://HOST:PORT or tls://HOST:PORT, or several hubs comma-separated (default: $EVHUB_HUB or %s)"
        % DEFAULT_HUB,
    )
    where.add_argument("--serial", metavar="URL", help="talk to the hub over a serial line (pyserial URL or pty path)")
    p.add_argument(
        "--tls-ca",
        metavar="PEM",
        dest="tls_ca",
        help="CA certificate(s) to check a tls:// hub against (default: $EVHUB_TLS_CA, else the system's)",
    )
    p.add_argument("--baud", type=int, default=None, help="serial baud rate (default 115200)")
    p.add_argument("--lat", type=float, help="latitude (degrees)")
    p.add_argument("--lon", type=float, help="longitude (degrees)")
    p.add_argument(
        "--connectors", type=int, help="number of connectors (1..8; default: as provisioned in --db, else 1)"
    )
    p.add_argument(
        "--max-kw",
        type=float,
        dest="max_kw",
        help="power limit per connector in kW (0.1..1000; default: as provisioned in --db, else 22)",
    )
    p.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="adopt lat/lon/connectors/max-kw not given here from this hub store's provisioning"
        " (default $EVHUB_DB, else ./evhub.db if present; 'none' skips it)",
    )
    p.add_argument("--speedup", type=float, default=1.0, help="simulated time runs this many times faster (default 1)")
    p.add_argument(
        "--offline-policy",
        choices=("reduce", "stop"),
        dest="offline_policy",
        help="when the hub is lost: finish at reduced power, or stop (default reduce)",
    )
    p.add_argument("--config", metavar="FILE", help="JSON config (the board's config.json format)")
    p.add_argument(
        "--journal",
        metavar="PATH",
        help="session journal file (default: $XDG_STATE_HOME/evhub/ID.journal; 'none' keeps it in memory)",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--epoch0", type=float, help=_suppress())


def _suppress():
    import argparse

    return argparse.SUPPRESS


def _fail(text):
    print("evhub chargepoint: %s" % text, file=sys.stderr)
    return 2


def build_config(args):
    """The station config from --config and the flags; ValueError with a message for the user."""
    cfg = {}
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as f:
                cfg = json.load(f)
        except OSError as exc:
            raise ValueError("cannot read --config %s: %s" % (args.config, exc.strerror or exc))
        except ValueError as exc:
            raise ValueError("--config %s is not valid JSON: %s" % (args.config, exc))
        if not isinstance(cfg, dict):
            raise ValueError("--config %s must hold a JSON object" % args.config)
    cfg["id"] = args.id
    key = secret_args.resolve(args, "--key", "EVHUB_KEY") or cfg.get("key")
    if not key:
        raise ValueError("a key is needed: --key KEY (printed by `evhub stations add`) or $EVHUB_KEY")
    cfg["key"] = key
    for name in ("lat", "lon", "connectors", "max_kw", "offline_policy"):
        value = getattr(args, name)
        if value is not None:
            cfg[name] = value
    if args.serial:
        cfg["serial"] = args.serial
        cfg["hub"] = None
        if args.baud is not None:
            if args.baud <= 0:
                raise ValueError("--baud must be positive")
            cfg["uart"] = dict(cfg.get("uart") or {}, baud=args.baud, tx=0, rx=0)
    elif args.hub or not cfg.get("serial"):
        from transport.huburl import parse_hub_url, uses_tls

        if args.hub or not cfg.get("hub"):
            # Several hubs on one PostgreSQL: tcp://a:7878,tcp://b:7878 (the station tries them in turn).
            hubs = []
            for url in (args.hub or os.environ.get("EVHUB_HUB") or DEFAULT_HUB).split(","):
                url = url.strip()
                try:
                    host, port = parse_hub_url(url)
                except ValueError as exc:
                    raise ValueError("--hub: %s" % exc)
                one = {"host": host, "port": port}
                if uses_tls(url):
                    # The system's trust store as a file: a station config names the CA it checks the hub
                    # against (config.check refuses TLS without one unless it says tls_insecure).
                    ca = os.environ.get("EVHUB_TLS_CA") or ssl.get_default_verify_paths().cafile
                    if not ca:
                        raise ValueError("--hub tls://: no system CA file here; give --tls-ca CA.pem")
                    one.update(tls=True, ca=ca)
                hubs.append(one)
            cfg["hub"] = hubs[0] if len(hubs) == 1 else hubs
        cfg["serial"] = None
    hubs = cfg.get("hub") if type(cfg.get("hub")) is list else [cfg.get("hub")]
    tls_ca = getattr(args, "tls_ca", None)
    if tls_ca:
        if not all((hub or {}).get("tls") for hub in hubs):
            raise ValueError("--tls-ca is for a tls://HOST:PORT hub")
        for hub in hubs:
            hub["ca"] = tls_ca
    for hub in hubs:
        if hub and hub.get("tls") and hub.get("ca") and not os.path.isfile(hub["ca"]):
            raise ValueError("the TLS CA file %s does not exist" % hub["ca"])
    db = getattr(args, "db", None)
    if (db or "").lower() != "none":
        from tools.client import provisioned
        from tools.common import storepath

        said = provisioned.adopt(cfg, db or storepath.default_db(), args.id)
        if said:
            print("evhub chargepoint: %s" % said, file=sys.stderr)
    from firmware.config import normalize

    normalize(cfg)  # checked now (ValueError names the key); defaults are filled in by the station, some
    return cfg  # of which depend on what was left out (request_timeout_s on a serial line)


def journal_path(args, station_id):
    if args.journal:
        return None if args.journal.lower() == "none" else args.journal
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in station_id)
    return os.path.join(base, "evhub", "%s.journal" % safe)


def run(args):
    try:
        cfg = build_config(args)
    except ValueError as exc:
        return _fail(str(exc))
    if not args.speedup > 0:
        return _fail("--speedup must be positive")
    if args.duration is not None and args.duration <= 0:
        return _fail("--duration must be positive")
    path = journal_path(args, cfg["id"])
    if path:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "a"):
                pass
        except OSError as exc:
            return _fail("cannot use journal %s: %s" % (path, exc.strerror or exc))
    from firmware.runner import run_chargepoint

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_chargepoint(
            cfg, stop_event=stop, speedup=args.speedup, journal=path, epoch0=args.epoch0, duration=args.duration
        )
    except ValueError as exc:
        return _fail(str(exc))
    return 0

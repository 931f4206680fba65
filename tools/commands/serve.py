"""`evhub serve`: run the hub daemon."""

import logging
import os
import sys

from hub import config as hubconfig
from tools.client import secret_args


def configure(p):
    p.add_argument("--listen", help="TCP address, default tcp://127.0.0.1:7878")
    p.add_argument(
        "--serial",
        action="append",
        default=None,
        metavar="URL",
        help="a serial line with charge points (any pyserial URL: /dev/ttyUSB0, socket://, a pty path); repeatable",
    )
    p.add_argument(
        "--db",
        help="the store: a SQLite file (default $EVHUB_DB, else ./evhub.db) or postgresql://user@host/db "
        "(several hubs may share one PostgreSQL database)",
    )
    p.add_argument("--config", help="hub.toml with settings (see hub/config.py DEFAULTS)")
    p.add_argument("--log-file", help="also write the log to this file")
    p.add_argument("--heartbeat", type=int, dest="heartbeat_s", help="seconds between station heartbeats (default 30)")
    p.add_argument("--speedup", type=float, help="run simulated time this many times faster (simulation only)")
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve the HTTP API, event stream, metrics and dashboard here (e.g. 127.0.0.1:8080); off by default",
    )
    secret_args.add(
        p,
        "--http-token",
        "EVHUB_HTTP_TOKEN",
        "bearer token for HTTP writes",
        metavar="TOKEN",
        extra_help=" (or http_token in the config)",
    )
    p.add_argument(
        "--http-insecure-reads",
        action="store_true",
        help="allow --http on a non-loopback address without a token (reads open to the network)",
    )
    p.add_argument(
        "--tls-cert", metavar="PEM", help="serve TLS on the TCP listener with this certificate (clients use tls://)"
    )
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (if not in --tls-cert)")
    p.add_argument(
        "--ocpp",
        metavar="URL",
        help="serve OCPP 1.6J chargers on wss://HOST:PORT (TLS from --tls-cert: Security Profile 2) or ws://",
    )
    p.add_argument(
        "--ocpp-allow-profile1",
        action="store_true",
        default=None,
        help="allow --ocpp ws:// (Security Profile 1: Basic auth without TLS; a VPN or a lab only)",
    )
    p.add_argument(
        "--hub-id",
        help="this hub's name among several sharing one PostgreSQL store (default host:port)",
    )
    p.add_argument("--epoch0", type=float, help=argparse_suppress())
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the settings this command line and --config give, as a commented hub.toml, and exit",
    )


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def run(args):
    try:
        secret_args.resolve(args, "--http-token", "EVHUB_HTTP_TOKEN")
        cfg = hubconfig.load(
            args.config,
            {
                "listen": args.listen,
                "db": args.db or os.environ.get("EVHUB_DB") or None,
                "heartbeat_s": args.heartbeat_s,
                "speedup": args.speedup,
                "epoch0": args.epoch0,
                "http": args.http,
                "tls_cert": args.tls_cert,
                "tls_key": args.tls_key,
                "log_file": args.log_file,
                "serial": args.serial,
                "http_token": args.http_token,
                "ocpp": args.ocpp,
                "ocpp_allow_profile1": args.ocpp_allow_profile1,
                "hub_id": args.hub_id,
            },
        )
    except (hubconfig.ConfigError, ValueError) as exc:
        print("evhub serve: %s" % exc, file=sys.stderr)
        return 2
    if args.print_config:
        from hub.configdoc import render_toml

        sys.stdout.write(render_toml(cfg))
        return 0
    if cfg["log_file"]:
        try:
            handler = logging.FileHandler(cfg["log_file"])
        except OSError as exc:
            print("evhub serve: cannot write the log file %s: %s" % (cfg["log_file"], exc.strerror), file=sys.stderr)
            return 2
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    from transport.huburl import parse_hub_url

    try:
        parse_hub_url(cfg["listen"])
    except ValueError as exc:
        print("evhub serve: --listen: %s" % exc, file=sys.stderr)
        return 2
    if cfg["tls_key"] and not cfg["tls_cert"]:
        print("evhub serve: --tls-key needs --tls-cert", file=sys.stderr)
        return 2
    if cfg["tls_cert"]:
        from hub.daemon import tls_context

        try:
            tls_context(cfg)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            print("evhub serve: cannot load the TLS certificate/key: %s" % exc, file=sys.stderr)
            return 2
    if cfg["http"]:
        from hub.http.app import parse_http_address

        try:
            http_host = parse_http_address(cfg["http"])[0]
        except ValueError as exc:
            print("evhub serve: %s" % exc, file=sys.stderr)
            return 2
        if not cfg.get("http_token") and not args.http_insecure_reads and not _is_loopback_host(http_host):
            print(
                "evhub serve: --http %s is reachable from other machines but has no token: give --http-token-file "
                "(or $EVHUB_HTTP_TOKEN), listen on 127.0.0.1, or pass --http-insecure-reads" % cfg["http"],
                file=sys.stderr,
            )
            return 2
    if cfg["ocpp"]:
        from hub.ocpp.server import check_profile, parse_listen

        try:
            check_profile(parse_listen(cfg["ocpp"])[0], cfg["tls_cert"], cfg["ocpp_allow_profile1"])
        except ValueError as exc:
            print("evhub serve: --ocpp: %s" % exc, file=sys.stderr)
            return 2
    if cfg["heartbeat_s"] < 1 or cfg["speedup"] <= 0:
        print("evhub serve: heartbeat and speedup must be positive", file=sys.stderr)
        return 2
    from hub import operatorkey
    from hub.daemon import Hub
    from hub.store.backend import DB_ERRORS, is_postgres, mask, sqlite_path
    from hub.store.store import Store

    try:
        Store(cfg["db"]).close()  # a store that cannot be opened is a setup error, said before anything starts
        operatorkey.ensure(cfg["db"])  # the operator's key, generated at the first start (hub/operatorkey.py)
    except DB_ERRORS + (OSError, ValueError) as exc:
        print("evhub serve: cannot open the store %s: %s" % (mask(cfg["db"]), exc), file=sys.stderr)
        return 2
    from hub.store.lock import NoLock, StoreInUse, StoreLock

    # One hub per SQLite file; several hubs on one PostgreSQL database are the point of it.
    lock = NoLock() if is_postgres(cfg["db"]) else StoreLock(sqlite_path(cfg["db"]))
    try:
        lock.acquire(cfg["listen"])
    except StoreInUse as exc:
        print("evhub serve: %s" % exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print("evhub serve: cannot lock the store %s: %s" % (cfg["db"], exc.strerror or exc), file=sys.stderr)
        return 2
    hub = Hub(cfg, cfg["serial"])
    try:
        hub.run()
    except OSError as exc:
        print("evhub serve: cannot listen on %s: %s" % (cfg["listen"], exc.strerror or exc), file=sys.stderr)
        return 1
    finally:
        lock.release()
    return 0


def _is_loopback_host(host):
    """True for 127.x, ::1 and localhost; anything else (0.0.0.0, a LAN address, a name) is not."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

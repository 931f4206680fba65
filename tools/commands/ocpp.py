"""`evhub ocpp`: the OCPP 1.6J central system, so commercial chargers join the hub.

    $ evhub stations add CP-ABB-1 --lat -12.27 --lon -38.97 --connectors 2 --max-kw 22
    $ evhub ocpp --hub tcp://127.0.0.1:7878 --listen wss://0.0.0.0:8443 --tls-cert hub.crt --tls-key hub.key

A charger's central-system URL is then ``wss://HOST:8443/CP-ABB-1``, its Basic-auth user
``CP-ABB-1`` and password the key `stations add` printed (Security Profile 2). ``ws://`` (Profile 1:
the key crosses the network in clear) needs ``--allow-profile1``. Each charger appears to the hub
as the station it is (hub/ocpp/): nearest, Free in X min, reservations, remote start and stop,
COMPLETE, the API and the dashboard work for it as for our own boards.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys

from tools.common.storepath import DB_HELP, default_db

log = logging.getLogger("tools.ocpp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=default_db(), help=DB_HELP + "; station keys and the OCPP ledger are read there")
    p.add_argument("--hub", default="tcp://127.0.0.1:7878", help="the hub's station listener (default %(default)s)")
    p.add_argument(
        "--listen",
        default="wss://127.0.0.1:8443",
        help="ws://HOST:PORT or wss://HOST:PORT for the chargers (default %(default)s; port 0: any)",
    )
    p.add_argument("--tls-cert", help="the certificate for wss:// (PEM)")
    p.add_argument("--tls-key", help="its private key (PEM)")
    p.add_argument(
        "--allow-profile1",
        action="store_true",
        help="serve plain ws:// (OCPP Security Profile 1: Basic auth without TLS, for a VPN or a lab)",
    )


def run(args: argparse.Namespace) -> int:
    from hub.ocpp.server import OcppCentral, check_profile, parse_listen, server_tls
    from transport.huburl import parse_hub_url

    try:
        scheme, host, port = parse_listen(args.listen)
        hub_host, hub_port = parse_hub_url(args.hub)
        check_profile(scheme, args.tls_cert, args.allow_profile1, "--allow-profile1")
        context = server_tls(args.tls_cert, args.tls_key) if scheme == "wss" else None
    except (ValueError, OSError) as exc:
        print("evhub ocpp: %s" % exc, file=sys.stderr)
        return 2
    return asyncio.run(
        _serve(OcppCentral(args.db, hub_host, hub_port, allow_profile1=args.allow_profile1), host, port, context)
    )


async def _serve(central, host: str, port: int, context: ssl.SSLContext | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await central.start(host, port, context)
    except OSError as exc:
        print("evhub ocpp: cannot listen on %s:%d: %s" % (host, port, exc.strerror or exc), file=sys.stderr)
        return 1
    await stop.wait()
    log.info("OCPP central system stopping")
    await central.stop()
    return 0

"""The OCPP 1.6J server: the WebSocket listener, authentication at the upgrade (HTTP Basic: the
station id and its key), the security profile, and one OcppStation (hub/ocpp/central.py) per
connected charger. `start_in_hub` runs it inside `evhub serve --ocpp`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import ssl
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from hub.io.logsafe import wire_text
from hub.ocpp.central import HEARTBEAT_S, MAX_MESSAGE, SUBPROTOCOL, OcppStation
from hub.ocpp.ledger import Ledger
from hub.ocpp.upstream import Upstream, UpstreamError
from hub.store.store import Store
from hub.store.ops import station_protocol

log = logging.getLogger("hub.ocpp.central")  # one logger name for the central system's lines


class OcppCentral:
    """The server: authenticates chargers at the upgrade and runs an OcppStation per connection."""

    def __init__(
        self,
        store_path: str,
        hub_host: str,
        hub_port: int,
        allow_profile1: bool = False,
        upstream_tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        speedup: float = 1.0,
    ) -> None:
        self.clock = clock  # the hub's time (epoch s): faster than real time in a simulation
        self.speedup = speedup
        self.store = Store(store_path)
        self.ledger = Ledger(store_path)
        self.hub_host, self.hub_port = hub_host, hub_port
        self.upstream_tls = upstream_tls
        self.allow_profile1 = allow_profile1
        self.server: Server | None = None
        self.stations: dict[str, OcppStation] = {}

    async def start(self, host: str, port: int, ssl_context: Any = None) -> int:
        # The library logs every frame at INFO: a charger's traffic, not the operator's business
        # unless the log is at DEBUG (-vv).
        verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
        for name in ("ocpp", "websockets"):
            logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
        if ssl_context is None and not self.allow_profile1:
            raise ValueError("OCPP over plain ws:// is Security Profile 1: allow it explicitly, or serve wss://")
        self.server = await serve(
            self._connected,
            host,
            port,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            process_request=self._authenticate,
            ssl=ssl_context,
            ping_interval=HEARTBEAT_S,
            max_size=MAX_MESSAGE,
        )
        bound = self.server.sockets[0].getsockname()[1]
        log.info(
            "OCPP 1.6J central system on %s://%s:%d (%s)",
            "wss" if ssl_context else "ws",
            host,
            bound,
            "Security Profile 2" if ssl_context else "Security Profile 1: Basic auth without TLS",
        )
        return int(bound)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        self.store.close()
        self.ledger.close()

    def _authenticate(self, connection: ServerConnection, request: Request) -> Response | None:
        station_id = request.path.strip("/").split("?")[0]
        peer = "%s:%s" % connection.remote_address[:2]
        key = self.store.get_station_key(station_id) if station_id else None
        if key is not None and station_protocol(self.store, station_id) != SUBPROTOCOL:
            log.warning(
                "OCPP: refused %s from %s: provisioned for evhub's own protocol (add it with --protocol %s)",
                wire_text(station_id),
                peer,
                SUBPROTOCOL,
            )
            return connection.respond(HTTPStatus.NOT_FOUND, "refused\n")
        user, password = _basic(request.headers.get("Authorization"))
        if key is None or user != station_id or password is None or not hmac.compare_digest(password, key.encode()):
            log.warning(
                "OCPP: refused %s from %s: %s",
                wire_text(station_id) or "(no id)",
                peer,
                "unknown station" if key is None else "wrong or missing credentials",
            )
            return connection.respond(HTTPStatus.UNAUTHORIZED if key is not None else HTTPStatus.NOT_FOUND, "refused\n")
        return None

    async def _connected(self, connection: ServerConnection) -> None:
        station_id = connection.request.path.strip("/").split("?")[0] if connection.request else ""
        if connection.subprotocol != SUBPROTOCOL:
            log.warning("OCPP: %s offered no ocpp1.6 subprotocol: closed", wire_text(station_id))
            await connection.close()
            return
        key = self.store.get_station_key(station_id)
        if key is None:  # removed between the upgrade and now
            await connection.close()
            return
        old = self.stations.get(station_id)
        if old is not None:
            # Two connections claiming one id: the newer wins (a charger that rebooted, or moved). The
            # older goes first, so the hub sees a reconnect, not two devices with one id.
            log.warning(
                "OCPP: station %s connected again from %s:%s: the older connection is closed",
                station_id,
                *connection.remote_address[:2],
            )
            if old.upstream is not None:
                old.upstream.close("replaced by a new connection")
            await old.connection.close(1000, "replaced by a new connection")
        station = OcppStation(station_id, connection, self)
        station.upstream = Upstream(self.hub_host, self.hub_port, station_id, key, station.from_hub, self.upstream_tls)
        try:
            await station.upstream.connect()
        except UpstreamError as exc:
            log.warning("OCPP: %s: %s", station_id, exc.text)
            await connection.close(1011, "hub unavailable")
            return
        self.stations[station_id] = station
        log.info("OCPP: station %s connected from %s:%s", station_id, *connection.remote_address[:2])
        runner = asyncio.create_task(station.start())
        try:
            done, _ = await asyncio.wait(
                [runner, asyncio.ensure_future(station.upstream.closed.wait())], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            runner.cancel()
            station.drop()
            station.upstream.close("the charger went away")
            if self.stations.get(station_id) is station:
                del self.stations[station_id]
            await connection.close()
            log.info("OCPP: station %s disconnected", station_id)


def parse_listen(url: str) -> tuple[str, str, int]:
    """("ws" or "wss", host, port) of ``ws://HOST:PORT`` / ``wss://HOST:PORT``; ValueError otherwise."""
    scheme, sep, rest = url.partition("://")
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not sep or scheme not in ("ws", "wss") or not colon or not port.isdigit() or not host:
        raise ValueError("the OCPP address must be ws://HOST:PORT or wss://HOST:PORT, not %r" % url)
    return scheme, host.strip("[]"), int(port)


def server_tls(cert: str, key: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key or None)
    return context


def check_profile(scheme: str, cert: str | None, allow_profile1: bool, flag: str = "--ocpp-allow-profile1") -> None:
    """ValueError unless the listener's security profile is one the operator chose."""
    if scheme == "wss" and not cert:
        raise ValueError("wss:// needs a TLS certificate and key (--tls-cert, --tls-key)")
    if scheme == "ws" and not allow_profile1:
        raise ValueError(
            "ws:// is OCPP Security Profile 1 (the key crosses the network in clear): allow it "
            "explicitly (%s), or serve wss:// with a certificate" % flag
        )


async def start_in_hub(
    config: dict[str, Any], hub_port: int, clock: Callable[[], float] = time.time
) -> OcppCentral | None:
    """The central system inside `evhub serve` (config "ocpp"), talking to this hub over loopback;
    None when it is not configured."""
    if not config.get("ocpp"):
        return None
    scheme, host, port = parse_listen(config["ocpp"])
    check_profile(scheme, config.get("tls_cert"), bool(config.get("ocpp_allow_profile1")))
    context = server_tls(config["tls_cert"], config.get("tls_key")) if scheme == "wss" else None
    upstream_tls = None
    if config.get("tls_cert"):  # the hub's own listener speaks TLS: trust its own certificate
        upstream_tls = ssl.create_default_context(cafile=config["tls_cert"])
        upstream_tls.check_hostname = False  # loopback to ourselves; the chain is still checked
    central = OcppCentral(
        config["db"],
        "127.0.0.1",
        hub_port,
        allow_profile1=bool(config.get("ocpp_allow_profile1")),
        upstream_tls=upstream_tls,
        clock=clock,
        speedup=float(config.get("speedup") or 1.0),
    )
    await central.start(host, port, context)
    return central


def _basic(header: str | None) -> tuple[str | None, bytes | None]:
    if not header or not header.startswith("Basic "):
        return None, None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None, None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None, None
    return user.decode("utf-8", "replace"), password

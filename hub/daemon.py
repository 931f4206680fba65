"""The hub daemon: store, actors, gateway; clean shutdown on SIGTERM/SIGINT."""

import asyncio
import gc
import logging
import os
import signal
import socket
import time

import pykka

from hub.actors.book import ReservationBookActor
from hub.actors.locator import LocatorActor
from hub.clock import HubClock
from hub.io.gateway import Gateway, Outbox
from hub.io import fdlimits
from hub.io import logsafe
from hub.store.keys import KeyLookup
from hub.messages import UseBook
from hub.actors.registry import StationRegistry
from hub.io.revocation import RevocationWatch
from hub.router import Router
from hub.store.backend import mask
from hub.store.store import Store
from hub.actors.tracker import VehicleTracker
from transport.huburl import parse_hub_url

log = logging.getLogger(__name__)


class Hub:
    """Everything a running hub is made of; `run()` blocks until stopped."""

    def __init__(self, config, serial_urls=()):
        self.config = config
        self.serial_urls = list(serial_urls)
        self.clock = HubClock(config["speedup"], config.get("epoch0"))
        self.loop = None
        self.gateway = None
        self.ready = None  # set once listening; .port then holds the TCP port
        self.port = None
        self._stopping = None
        self.events = None  # an EventBus when the HTTP API is on
        self.http = None

    def _start_cluster(self):
        """With a PostgreSQL store, this hub joins the others on it (hub/cluster); else None."""
        db = str(self.config["db"])
        if not db.startswith(("postgresql://", "postgres://")):
            return None
        from hub.cluster.node import ClusterNode

        node = ClusterNode(db, hub_id_for(self.config), self.config["listen"])
        log.info("cluster: this hub is %s", node.hub_id)
        return node

    def _start_actors(self):
        db = self.config["db"]
        Store(db).close()  # create the schema once, before the actors open their own connections
        self.cluster = self._start_cluster()
        self.locator = LocatorActor.start()
        self.tracker = VehicleTracker.start(lambda: Store(db))  # last positions persisted, batched
        # The Outbox exists before the actors and the gateway: both are given it at construction.
        self.outbox = Outbox(self.loop)
        self.outbox.cluster = self.cluster
        self.registry = StationRegistry.start(
            lambda: Store(db),
            self.outbox,
            self.clock,
            self.config,
            None,
            self.locator,
            events=self.events,
            cluster=self.cluster,
        )
        self.book = ReservationBookActor.start(
            db,
            self.outbox,
            clock=self.clock,
            registry=self.registry,
            locator=self.locator,
            grace_s=self.config["no_show_grace_s"],
            events=self.events,
            max_open_per_vehicle=self.config["max_open_reservations_per_vehicle"],
            cluster=self.cluster,
        )
        # The book tells the registry of reservations and the registry tells the book of sessions: one of
        # the two must learn the other's ref after both exist.
        self.registry.tell(UseBook(self.book))
        if self.cluster is not None:
            self.cluster.registry, self.cluster.book, self.cluster.outbox = self.registry, self.book, self.outbox
            self.cluster.start()  # before the gateway listens: a station's first claim finds it joined

    async def _serve(self):
        self.loop = asyncio.get_running_loop()
        logsafe.install()  # nothing from the wire can forge a log line (hub/io/logsafe.py)
        fdlimits.AcceptErrorLog(self.loop).install()
        nofile = fdlimits.raise_nofile()
        self.config["max_unauth_links_effective"] = max(1, min(self.config["max_unauth_links"], nofile // 4))
        log.info(
            "at most %d unauthenticated links at once (the oldest is closed past that)",
            self.config["max_unauth_links_effective"],
        )
        self._stopping = asyncio.Event()
        self.events = None
        if self.config.get("http"):
            from hub.events import EventBus

            self.events = EventBus(self.loop)
        self._start_actors()
        index = self.locator.proxy().snapshot_source().get()
        router = Router(self.registry, self.book, self.tracker, index, self.clock, self.config)
        router.registry_view = self.registry.proxy().view.get()
        self.router = router
        self.keys = KeyLookup(self.config)
        self.gateway = Gateway(
            self.loop, router, self.keys.lookup, self.config, time.monotonic, self.clock, self.outbox
        )
        host, port = parse_hub_url(self.config["listen"])
        await self.gateway.start(host, port, self.serial_urls, tls_context(self.config))
        router.revocations = RevocationWatch(self.config["db"], self.gateway, self.registry, self.book).start(self.loop)
        self.port = self.gateway.port
        self.ocpp = None
        if self.config.get("ocpp"):  # OCPP chargers, when configured: each joins as a station
            from hub.ocpp.server import start_in_hub  # imported only then: the ocpp library costs ~6 MB

            self.ocpp = await start_in_hub(self.config, self.port, self.clock)
        self.http = None
        if self.events is not None:
            from hub.http.app import HttpApp

            # The dict the tracker keeps (read as a snapshot, never asked); fetched off the loop, once.
            self.tracker_last = await self.loop.run_in_executor(None, lambda: self.tracker.proxy().last.get(timeout=5))
            try:
                self.http = await HttpApp(self).start()
            except OSError as exc:
                log.error("http: cannot listen on %s: %s", self.config["http"], exc.strerror or exc)
                raise
            log.info("http api listening on http://%s:%d (dashboard at /)", self.http.host, self.http.port)
        # Signals first: whoever waits for the "listening" line may signal at once (SIGHUP's default kills).
        for sig, handler in (
            (signal.SIGTERM, self._stopping.set),
            (signal.SIGINT, self._stopping.set),
            (signal.SIGHUP, reopen_log_files),
        ):
            try:
                self.loop.add_signal_handler(sig, handler)
            except (ValueError, RuntimeError):  # not the main thread (tests run the hub in a thread)
                pass
        log.info(
            "hub listening on tcp://%s:%d%s (db %s)%s",
            host,
            self.port,
            " with TLS (clients use tls://)" if self.config.get("tls_cert") else "",
            mask(self.config["db"]),  # a postgresql:// URL may carry a password
            "".join(" serial %s" % u for u in self.serial_urls),
        )
        # What startup built (station tables, indexes, modules) lives as long as the hub: move it out
        # of the collector's sight, so full collections at 10k links do not pause the loop for it.
        gc.collect()
        gc.freeze()
        if self.ready is not None:
            self.ready.set()
        await self._stopping.wait()
        log.info("hub stopping: closing links, flushing the store")
        if self.http is not None:
            await self.http.stop()
        if self.ocpp is not None:
            await self.ocpp.stop()
        router.revocations.stop()
        await self.gateway.stop()
        if self.cluster is not None:
            self.cluster.stop()  # its stations have no home here any more: they reconnect elsewhere

    def stop(self):
        if self.loop is not None and self._stopping is not None:
            self.loop.call_soon_threadsafe(self._stopping.set)

    def run(self):
        try:
            asyncio.run(self._serve())
        finally:
            # Stopping the actors closes their sqlite connections; WAL commits are already durable.
            pykka.ActorRegistry.stop_all(block=True, timeout=10)
            log.info("hub stopped")


def hub_id_for(config):
    """This hub's name among the others: --hub-id, else host:port (host:pid when the port is chosen at bind)."""
    if config.get("hub_id"):
        return str(config["hub_id"])
    _host, port = parse_hub_url(config["listen"])
    return "%s:%s" % (socket.gethostname(), port if port else "pid%d" % os.getpid())


def reopen_log_files():
    """SIGHUP: close every log file; the next line opens it again by name (logrotate moved it away)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                    handler.stream = None  # FileHandler.emit opens the file again (mode "a")
            finally:
                handler.release()
    log.info("log files reopened (SIGHUP)")


def tls_context(config):
    """An SSLContext for the TCP listener when a certificate and key are configured, else None."""
    if not config.get("tls_cert"):
        return None
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(config["tls_cert"], config["tls_key"] or None)
    return ctx

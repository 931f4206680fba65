"""Wire the HTTP side to a running Hub: `await HttpApp(hub).start()` in the hub's loop."""

import json
import logging
import os

from hub.http import openapi
from hub.http.api import Api
from hub.http.live import LiveState
from hub.http.metrics import Metrics
from hub.store.reads import Reads
from hub.http.server import HttpError, HttpServer, Response, Route
from hub.http.sse import EventStream

log = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# The page loads nothing from elsewhere: it must work with no internet.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def parse_http_address(value):
    """'127.0.0.1:8080', ':8080', '[::1]:8080' or 'http://host:port' -> (host, port)."""
    text = value.strip()
    if text.startswith("http://"):
        text = text[len("http://") :].rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError("--http wants HOST:PORT (e.g. 127.0.0.1:8080), not %r" % value)
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def load_static(directory=STATIC_DIR):
    files = {}
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            ext = os.path.splitext(name)[1]
            path = os.path.join(directory, name)
            if ext in CONTENT_TYPES and os.path.isfile(path):
                with open(path, "rb") as f:
                    files[name] = (f.read(), CONTENT_TYPES[ext])
    return files


class HttpApp:
    def __init__(self, hub):
        self.hub = hub
        self.loop = hub.loop
        cfg = hub.config
        self.host, self.port_wanted = parse_http_address(cfg["http"])
        self.live = LiveState()
        hub.events.listeners.append(self.live)
        self.reads = Reads(cfg["db"], self.loop)
        self.api = Api(
            self.loop, hub.clock, cfg, hub.router, hub.gateway, hub.book, hub.tracker_last, self.live, self.reads
        )
        self.server = HttpServer(self.loop, [], cfg.get("http_token", ""), cfg["open_loopback_reads"])
        self.stream = EventStream(hub.events, self.server, hub.tracker_last)
        self.metrics = Metrics(self.api, hub.events, self.live, self.server, self.stream)
        self.static = load_static()
        self._spec = json.dumps(openapi.spec(), indent=1).encode()
        self.server.routes = (
            self.api.routes()
            + self.stream.routes()
            + self.metrics.routes()
            + [
                Route("GET", "/api/openapi.json", self.openapi, public=True),
                Route("GET", "/", self.index, public=True),
                Route("GET", "/static/{name}", self.static_file, public=True),
            ]
        )

    async def start(self):
        await self.server.start(self.host, self.port_wanted)
        self.stream.start(self.loop)
        self.metrics.start(self.loop)
        if not self.hub.config.get("http_token"):
            log.info("http: no --http-token: the HTTP API is read-only")
            if not self.host.startswith("127.") and self.host not in ("localhost", "::1"):
                log.warning("http: listening on %s without a token: other machines can read nothing", self.host)
        return self

    @property
    def port(self):
        return self.server.port

    async def stop(self):
        self.stream.stop()
        self.metrics.stop()
        await self.server.stop()
        self.reads.close()

    # --- documents ------------------------------------------------------------------------

    async def openapi(self, req):
        return Response(200, self._spec, "application/json")

    async def index(self, req):
        return self._file("index.html")

    async def static_file(self, req):
        return self._file(req.params["name"])

    def _file(self, name):
        found = self.static.get(name)
        if found is None:
            raise HttpError(404, "no such file: %s" % name[:80])
        body, ctype = found
        headers = [("Cache-Control", "no-cache")]
        if ctype.startswith("text/html"):
            headers += [("Content-Security-Policy", PAGE_CSP), ("Referrer-Policy", "no-referrer")]
        return Response(200, body, ctype, headers)

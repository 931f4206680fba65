"""A small HTTP/1.1 server on asyncio streams, in the hub's loop.

Enough HTTP for an API, an event stream and a page: keep-alive, Content-Length
bodies (no chunked uploads), HEAD, hard limits on header and body size, a header
timeout against slow clients, a connection cap. Every failure is a JSON
{"error": message} with its status code; a handler bug is a 500 with a log line,
never a traceback to the client.

Auth: writes need `Authorization: Bearer TOKEN` (the hub's http_token). Reads are
open to clients on loopback whose Host header names a loopback host (a guard
against DNS rebinding); anyone else needs the token for reads too.
"""

import asyncio
import email.utils
import hmac
import ipaddress
import json
import logging
import re
import urllib.parse

from hub.http.conns import IDLE_KEEPALIVE_S, MAX_PER_ADDRESS, IdleConnections, PerAddress

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
HEADER_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 256

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    def __init__(self, status, message, extra=None, headers=()):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.extra = extra or {}
        self.headers = list(headers)


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "peer", "params", "version")

    def __init__(self, method, path, query, headers, body, peer, version):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.peer = peer
        self.params = {}
        self.version = version

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self):
        """The body as a JSON object, or a 400/415 saying what is wrong with it."""
        ctype = self.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HttpError(415, "send the body as application/json")
        try:
            obj = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError(400, "the body is not valid JSON: %s" % exc) from None
        except RecursionError:
            raise HttpError(400, "the body is not valid JSON: nested too deeply") from None
        if not isinstance(obj, dict):
            raise HttpError(400, "the body must be a JSON object")
        return obj


class Response:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status=200, body=b"", content_type="application/json", headers=()):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = list(headers)


class Stream:
    """A long-lived response (the event stream): run(request, writer) owns the connection."""

    def __init__(self, run):
        self.run = run


def json_response(obj, status=200, headers=()):
    body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    return Response(status, body, "application/json", headers)


class Route:
    def __init__(self, method, template, handler, write=False, public=False):
        self.method = method
        self.template = template  # OpenAPI style: /api/stations/{station_id}
        self.handler = handler  # async (Request) -> Response | Stream
        self.write = write
        self.public = public  # served without auth (the page itself, its scripts)
        self.regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


def _is_loopback(host):
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _loopback_host_header(value):
    if not value:
        return False
    host = value.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]")[0]
    elif host.count(":") == 1:
        host = host.split(":")[0]
    return host == "localhost" or host.endswith(".localhost") or _is_loopback(host)


class HttpServer:
    def __init__(self, loop, routes, token="", open_loopback_reads=True):
        self.loop = loop
        self.routes = list(routes)
        self.token = token or ""
        self.open_loopback_reads = open_loopback_reads
        self.server = None
        self.connections = set()
        self.requests = {}  # status code -> count, for /metrics
        self.tasks = set()  # one per connection
        self.per_address = PerAddress(MAX_PER_ADDRESS)
        self.idle = IdleConnections()

    async def start(self, host, port):
        self.server = await asyncio.start_server(self._client, host, port, limit=MAX_HEADER_BYTES, reuse_address=True)
        return self

    @property
    def port(self):
        return self.server.sockets[0].getsockname()[1]

    async def stop(self):
        if self.server is not None:
            self.server.close()
        for writer in list(self.connections):
            writer.transport.abort()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        self.connections.clear()

    # --- connections -----------------------------------------------------------------------

    async def _client(self, reader, writer):
        peer = writer.get_extra_info("peername")
        peer_host = peer[0] if peer else ""
        if len(self.connections) >= MAX_CONNECTIONS:
            # A keep-alive connection waiting for nothing makes room (its task ends on its own).
            self.connections.discard(self.idle.evict_oldest())
        if len(self.connections) >= MAX_CONNECTIONS or not self.per_address.take(peer_host):
            self._count(503)
            writer.write(self._encode(json_response({"error": "too many HTTP connections"}, 503), False, False))
            writer.close()
            return
        self.connections.add(writer)
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            timeout = HEADER_TIMEOUT_S
            while True:
                if timeout != HEADER_TIMEOUT_S:  # served before: now idle in keep-alive, evictable
                    self.idle.idle(writer)
                try:
                    request = await asyncio.wait_for(self._read_request(reader, peer_host), timeout)
                except HttpError as exc:
                    self._count(exc.status)
                    writer.write(self._encode(self._error(exc), False, False))
                    await writer.drain()
                    return
                finally:
                    self.idle.busy(writer)
                if request is None:
                    return
                timeout = IDLE_KEEPALIVE_S  # between requests a connection may idle this long, no more
                keep = self._keep_alive(request)
                result = await self._dispatch(request)
                if isinstance(result, Stream):
                    await self._run_stream(result, request, reader, writer)
                    return
                self._count(result.status)
                writer.write(self._encode(result, keep, request.method == "HEAD"))
                try:
                    await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT_S)
                except asyncio.TimeoutError:
                    writer.transport.abort()  # not reading its answer: let go of it
                    return
                if not keep:
                    return
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or idled out: nothing to tell it
        except asyncio.CancelledError:
            pass  # the hub is stopping; end quietly (a cancelled handler task is logged as an error)
        finally:
            self.tasks.discard(task)
            self.connections.discard(writer)
            self.idle.busy(writer)
            self.per_address.give(peer_host)
            writer.close()

    @staticmethod
    async def _run_stream(stream, request, reader, writer):
        """Run a long-lived response until it ends or the client closes: a client sends nothing
        after its request, so EOF (or anything) on the socket ends the stream at once and frees
        its slot, instead of at the next write."""
        run = asyncio.ensure_future(stream.run(request, writer))
        eof = asyncio.ensure_future(reader.read(1024))
        try:
            await asyncio.wait({run, eof}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (run, eof):
                t.cancel()
            await asyncio.gather(run, eof, return_exceptions=True)

    async def _read_request(self, reader, peer_host):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise HttpError(400, "incomplete request head") from None
            return None
        except asyncio.LimitOverrunError:
            raise HttpError(431, "request head larger than %d bytes" % MAX_HEADER_BYTES) from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            if len(parts) == 3 and parts[2].startswith("HTTP/"):
                raise HttpError(505, "only HTTP/1.x is spoken here")
            raise HttpError(400, "malformed request line")
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or line[0] in " \t":
                raise HttpError(400, "malformed header line")
            name = name.lower()
            value = value.strip()
            if name in headers and name == "content-length" and headers[name] != value:
                raise HttpError(400, "conflicting Content-Length headers")
            headers[name] = value if name not in headers or name == "content-length" else headers[name] + ", " + value
        if "transfer-encoding" in headers:
            raise HttpError(501, "chunked request bodies are not supported; send Content-Length")
        length = headers.get("content-length", "0")
        if not (length.isascii() and length.isdigit()):
            raise HttpError(400, "Content-Length must be a non-negative integer")
        length = int(length)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, "request body larger than %d bytes" % MAX_BODY_BYTES)
        body = await reader.readexactly(length) if length else b""
        split = urllib.parse.urlsplit(target)
        if not split.path.startswith("/"):
            raise HttpError(400, "the request target must be an absolute path")
        path = split.path  # matched raw; route parameters are unquoted one by one
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        return Request(method.upper(), path, query, headers, body, peer_host, version)

    @staticmethod
    def _keep_alive(request):
        conn = request.headers.get("connection", "").lower()
        if request.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    # --- dispatch --------------------------------------------------------------------------

    async def _dispatch(self, request):
        try:
            route, params = self._route(request)
            request.params = params
            if not route.public:
                self.authorize(request, route.write)
            return await route.handler(request)
        except HttpError as exc:
            return self._error(exc)
        except Exception:
            log.exception("http: %s %s failed", request.method, request.path)
            return json_response({"error": "internal error; see the hub log"}, 500)

    def _route(self, request):
        allowed = []
        method = "GET" if request.method == "HEAD" else request.method
        for route in self.routes:
            m = route.regex.match(request.path)
            if m is None:
                continue
            if route.method == method:
                return route, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise HttpError(
                405,
                "%s is not allowed on %s" % (request.method, request.path),
                headers=[("Allow", ", ".join(sorted(set(allowed))))],
            )
        raise HttpError(404, "no such endpoint: %s" % request.path)

    def authorize(self, request, write):
        auth = request.headers.get("authorization", "")
        presented = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        challenge = [("WWW-Authenticate", 'Bearer realm="evhub"')]
        if presented is not None:
            if self.token and hmac.compare_digest(presented.encode(), self.token.encode()):
                return
            raise HttpError(401, "the bearer token is not valid", headers=challenge)
        if write:
            if not self.token:
                raise HttpError(
                    403, "HTTP writes are disabled: start the hub with --http-token (or http_token in the config)"
                )
            raise HttpError(401, "writing needs a token: send Authorization: Bearer TOKEN", headers=challenge)
        if self.open_loopback_reads and _is_loopback(request.peer):
            if _loopback_host_header(request.headers.get("host")):
                return
            raise HttpError(403, "reads without a token need a loopback Host header (localhost or 127.0.0.1)")
        raise HttpError(
            401, "reading from off this machine needs a token: send Authorization: Bearer TOKEN", headers=challenge
        )

    def _error(self, exc):
        body = {"error": exc.message}
        body.update(exc.extra)
        return json_response(body, exc.status, exc.headers)

    def _count(self, status):
        self.requests[status] = self.requests.get(status, 0) + 1

    @staticmethod
    def _encode(resp, keep_alive, head_only):
        headers = [
            "HTTP/1.1 %d %s" % (resp.status, REASONS.get(resp.status, "Unknown")),
            "Date: %s" % email.utils.formatdate(usegmt=True),
            "Server: evhub",
            "Content-Type: %s" % resp.content_type,
            "Content-Length: %d" % len(resp.body),
            "X-Content-Type-Options: nosniff",
            "Connection: %s" % ("keep-alive" if keep_alive else "close"),
        ]
        if not any(name.lower() == "cache-control" for name, _v in resp.headers):
            headers.append("Cache-Control: no-store")
        headers.extend("%s: %s" % (name, value) for name, value in resp.headers)
        head = ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + resp.body

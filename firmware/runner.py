"""CPython runner: the firmware core driven over TCP or serial, many charge points in one thread.

    run_chargepoint(config, stop_event=None, speedup=1.0)       one station, blocks
    run_many(configs, stop_event=None, speedup=1.0)             many stations, one thread, blocks
    fleet = Fleet(configs, speedup=60); fleet.run(stop_event)   the same, with access to the devices

One ``selectors`` loop owns every socket and serial port: non-blocking connects,
reads as they come, writes buffered (bounded) until the socket takes them, and a
tick of every ChargePoint about every ``tick_s``. A station costs a ChargePoint,
a framer and a socket: hundreds fit in one thread.

TLS (``"hub": {"host", "port", "tls": true, "ca": PEM}``; a PEM bundle such as the system's
``/etc/ssl/certs/ca-certificates.crt`` for a hub with a public certificate; no ``ca`` only with
``"tls_insecure": true``, and then, as on a board, nothing checks the hub): the TCP connect completes, the socket is wrapped with
``do_handshake_on_connect=False`` and ``do_handshake()`` is driven by the selector
(SSLWantReadError: wait to read, SSLWantWriteError: wait to write) like the connect
itself. A blocking handshake would be simpler, but it would stall every other station
on the loop for as long as one hub takes to answer (up to the timeout); this way a
silent TLS peer costs nothing and is dropped by the link's connect timeout. The
session starts (HELLO) once the handshake is done; an untrusted certificate closes
the link (logged) and is retried with backoff like any failed connect.

The relay is simulated (its state is kept and logged) and so is the meter (the
core's charge simulation). ``wall`` runs ``speedup`` times faster than real time
from ``epoch0`` (the same formula as hub.clock.HubClock, so a simulation that
gives both the same epoch0 agrees on the time); link timers use real monotonic time.

Not board code: this module is never copied to a board.
"""

import collections
import errno
import logging
import os
import selectors
import socket
import ssl
import time

from firmware.chargepoint import ChargePoint
from firmware.config import normalize
from firmware.journal import Journal
from transport.compat import monotonic_ms, wall_s
from transport.errors import FrameError
from transport.framing import SERIAL_MAX_FRAME, SerialFramer, StreamFramer

log = logging.getLogger("firmware.runner")

MAX_FRAME = 64 * 1024  # the hub never sends a station more than this
MAX_OUTBUF = 256 * 1024  # bytes waiting for a socket that does not read: the link is dropped
DEFAULT_BAUD = 115200
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def sim_wall(speedup=1.0, epoch0=None):
    """A wall clock (whole epoch s, an int as on a board) running `speedup` times real time from
    `epoch0` (default: now)."""
    speedup = float(speedup)
    if speedup == 1.0:
        return wall_s
    e0 = time.time() if epoch0 is None else float(epoch0)

    def wall():
        return int(e0 + (time.time() - e0) * speedup)

    return wall


class Device:
    """One charge point: its ChargePoint and its transport (TCP socket or serial port)."""

    def __init__(self, fleet, config, wall, journal_path=None):
        self.fleet = fleet
        self.id = config["id"]
        n = config.get("connectors", 1)
        self.journal = Journal(journal_path, connectors=n)
        self.relays = [False] * n
        self.cp = ChargePoint(config, monotonic_ms, wall, journal=self.journal, relay=self._relay, log=self._log)
        cfg = self.cp.config
        hub = cfg.get("hub")
        # A list of hubs (several on one PostgreSQL): each connect tries the next, so a dead hub is left.
        self.hubs = hub if type(hub) is list else [hub] if hub else []
        self.tries = 0
        self.hub = self.hubs[0] if self.hubs else None
        self.serial_url = cfg.get("serial")
        self.baud = (cfg.get("uart") or {}).get("baud", DEFAULT_BAUD)
        if not self.hub and not self.serial_url:
            raise ValueError("%s: config needs hub {host, port} or serial URL" % self.id)
        self.tls = fleet.tls_context(self.id, self.hub) if self.hub else None
        for other in self.hubs[1:]:
            fleet.tls_context(self.id, other)  # a bad CA in any of them is a config error now, not later
        self.handshaking = False  # TLS handshake in progress (the TCP connect is done)
        self.sock = None
        self.port = None
        self.framer = None
        self.out = bytearray()
        self.connecting = False
        self.registered = 0  # selector events currently registered

    # --- core callbacks ----------------------------------------------------------

    def _log(self, level, text):
        log.log(_LEVELS.get(level, logging.INFO), "%s: %s", self.id, text)

    def _relay(self, connector, on):
        self.relays[connector - 1] = on
        log.debug("%s: relay %d %s", self.id, connector, "closed" if on else "open")

    # --- transport ------------------------------------------------------------------

    def tick(self):
        cp = self.cp
        if cp.want_connect():
            self._open()
        cp.tick()
        self.flush()

    def _open(self):
        cp = self.cp
        cp.on_connecting()
        if self.hub:
            self.hub = self.hubs[self.tries % len(self.hubs)]
            self.tries += 1
            self.tls = self.fleet.tls_context(self.id, self.hub)
            host, port = self.hub["host"], self.hub["port"]
            try:
                infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
                family, stype, proto, _c, addr = infos[0]
                sock = socket.socket(family, stype, proto)
            except OSError as exc:
                cp.on_disconnected("cannot resolve %s:%s: %s" % (host, port, exc))
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                sock.close()
                cp.on_disconnected("connect %s:%s: %s" % (host, port, os.strerror(err)))
                return
            self.sock = sock
            self.framer = StreamFramer(MAX_FRAME)
            self.connecting = True
            self._watch(selectors.EVENT_WRITE)
            log.debug("%s: connecting to %s:%s", self.id, host, port)
        else:
            import serial  # pyserial; only stations on a serial line need it

            try:
                port = serial.serial_for_url(self.serial_url, baudrate=self.baud, timeout=0, write_timeout=2)
            except (serial.SerialException, OSError, ValueError) as exc:
                cp.on_disconnected("cannot open %s: %s" % (self.serial_url, exc))
                return
            self.port = port
            self.framer = SerialFramer(SERIAL_MAX_FRAME)
            try:
                port.fileno()
                self._watch(selectors.EVENT_READ)
            except Exception:  # loop://, socket:// ... have no usable fd: polled by the fleet
                self.fleet.polled.add(self)
            cp.on_connected()  # every frame goes out after a 0x00: the hub's framer drops any noise before it
            log.info("%s: serial %s open at %d baud", self.id, self.serial_url, self.baud)

    def _fileobj(self):
        return self.sock if self.sock is not None else self.port

    def _watch(self, events):
        f = self._fileobj()
        if f is None or events == self.registered:
            return
        sel = self.fleet.sel
        if self.registered and events:
            sel.modify(f, events, self)
        elif events:
            sel.register(f, events, self)
        else:
            sel.unregister(f)
        self.registered = events

    def close(self, why=None):
        if self.sock is None and self.port is None:
            return
        self._watch(0)
        self.fleet.polled.discard(self)
        f = self._fileobj()
        try:
            f.close()
        except OSError:
            pass
        self.sock = None
        self.port = None
        self.framer = None
        self.out = bytearray()
        self.connecting = False
        self.handshaking = False
        self.cp.on_disconnected(why)

    def on_event(self, mask):
        if self.connecting and mask & selectors.EVENT_WRITE:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.close("connect: %s" % os.strerror(err))
                return
            self.connecting = False
            if self.tls is not None:
                self._watch(0)  # the selector gets the SSLSocket, the plain socket is detached
                try:
                    self.sock = self.tls.wrap_socket(
                        self.sock, server_hostname=self.hub["host"], do_handshake_on_connect=False
                    )
                except (OSError, ValueError) as exc:
                    self.close("TLS: %s" % exc)
                    return
                self.handshaking = True
                self._handshake()
                return
            self._up()
            return
        if self.handshaking:
            self._handshake()
            return
        if mask & selectors.EVENT_READ:
            self.read()
        if mask & selectors.EVENT_WRITE:
            self._write()

    def _handshake(self):
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(selectors.EVENT_WRITE)
            return
        except ssl.SSLCertVerificationError as exc:
            log.error(
                "%s: the hub at %s:%s has a certificate we do not trust: %s (hub.ca / --tls-ca?)",
                self.id,
                self.hub["host"],
                self.hub["port"],
                exc.verify_message,
            )
            self.close("TLS: untrusted hub certificate (%s)" % exc.verify_message)
            return
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError; EOF from a plaintext peer
            self.close("TLS handshake: %s" % exc)
            return
        self.handshaking = False
        self._up()

    def _up(self):
        if self.tls is not None:
            log.info("%s: connected to %s:%s with %s", self.id, self.hub["host"], self.hub["port"], self.sock.version())
        else:
            log.info("%s: connected to %s:%s", self.id, self.hub["host"], self.hub["port"])
        self.cp.on_connected()
        self._watch(selectors.EVENT_READ)
        self.flush()

    def read(self):
        try:
            if self.sock is not None:
                data = self.sock.recv(65536)
                if not data:
                    self.close("hub closed the connection")
                    return
                while self.tls is not None and self.sock.pending():
                    data += self.sock.recv(65536)  # decrypted bytes the selector cannot see
            else:
                n = self.port.in_waiting
                if not n:
                    return
                data = self.port.read(n)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # TLS: a record not complete yet (or a key update): wait for more
        except OSError as exc:
            self.close("read: %s" % exc)
            return
        except Exception as exc:  # pyserial: SerialException when the device goes away
            self.close("read: %s" % exc)
            return
        try:
            self.cp.feed(self.framer, data)  # decoded and received as the board does (firmware/chargepoint.py)
        except FrameError as exc:
            self.close("bad frame from hub: %s" % exc)
            return
        self.flush()

    def flush(self):
        cp = self.cp
        if cp.should_close:
            self._send_out()
            self._write()
            self.close(cp.close_reason)
            return
        if self.framer is None or self.connecting or self.handshaking:
            return
        self._send_out()
        if self.out:
            self._write()

    def _send_out(self):
        if self.framer is None:
            self.cp.take_outgoing()  # no transport: nowhere to send them
            return
        self.cp.pour(self.framer, self.out)  # framed as the board does (firmware/chargepoint.py)

    def _write(self):
        if not self.out:
            return
        try:
            if self.sock is not None:
                n = self.sock.send(self.out)
            else:
                n = self.port.write(bytes(self.out))
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            n = 0  # TLS: retried with the same bytes first (self.out only grows at its end)
        except Exception as exc:
            self.close("write: %s" % exc)
            return
        del self.out[:n]
        if len(self.out) > MAX_OUTBUF:
            self.close("hub is not reading (%d bytes queued)" % len(self.out))
            return
        if self.sock is not None:
            self._watch(selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0))


class Fleet:
    """Many Devices on one selectors loop in the calling thread."""

    def __init__(self, configs, speedup=1.0, epoch0=None, tick_s=0.25, journal_dir=None, journal_paths=None):
        self.sel = selectors.DefaultSelector()
        self.polled = set()
        self.tick_s = tick_s
        self.wall = sim_wall(speedup, epoch0)
        self._calls = collections.deque()
        self._tls = {}  # CA path (None: the system's) -> ssl.SSLContext, shared by the devices
        self.devices = []
        seen = set()
        for raw in configs:
            cfg = normalize(raw)  # checked here; the device gets the config as given (its defaults
            if cfg["id"] in seen:  # may depend on what was left out, e.g. request_timeout_s on serial)
                raise ValueError("station id %s given twice" % cfg["id"])
            seen.add(cfg["id"])
            path = (journal_paths or {}).get(cfg["id"])
            if path is None and journal_dir:
                safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in cfg["id"])
                path = os.path.join(journal_dir, "%s.journal" % safe)
            self.devices.append(Device(self, raw, self.wall, path))
        self.by_id = {d.id: d for d in self.devices}

    def tls_context(self, station_id, hub):
        """The SSLContext for a hub config with "tls": true, else None; ValueError names what is wrong."""
        tls = hub.get("tls", False)
        ca = hub.get("ca")
        if type(tls) is not bool or (ca is not None and type(ca) is not str):
            raise ValueError("%s: hub tls must be true or false and hub ca a file path or null" % station_id)
        if not tls:
            return None
        ctx = self._tls.get(ca)
        if ctx is None:
            if not ca:  # config.check let it through only with "tls_insecure": true
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                log.warning("%s: hub TLS without a ca: encrypted, but the hub's certificate is not checked", station_id)
            else:
                try:
                    ctx = ssl.create_default_context(cafile=ca)
                except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                    raise ValueError("%s: cannot load the TLS CA %s: %s" % (station_id, ca, exc)) from None
            self._tls[ca] = ctx
        return ctx

    def call_soon(self, fn, *args):
        """Run fn(*args) in the loop thread (thread-safe): plug, unplug, fault from other threads."""
        self._calls.append((fn, args))

    def run(self, stop_event=None, duration=None):
        deadline = None if duration is None else time.monotonic() + duration
        next_tick = time.monotonic()
        try:
            while stop_event is None or not stop_event.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                timeout = max(0.0, next_tick - now)
                if self.polled:
                    timeout = min(timeout, 0.02)
                if self.sel.get_map():
                    events = self.sel.select(timeout)
                else:
                    time.sleep(timeout)
                    events = ()
                for key, mask in events:
                    key.data.on_event(mask)
                for dev in list(self.polled):
                    if dev.port is not None:
                        dev.read()
                while self._calls:
                    fn, args = self._calls.popleft()
                    try:
                        fn(*args)
                    except Exception as exc:
                        log.warning("call %s failed: %s", getattr(fn, "__name__", fn), exc)
                if time.monotonic() >= next_tick:
                    next_tick += self.tick_s
                    if next_tick < time.monotonic():
                        next_tick = time.monotonic() + self.tick_s
                    for dev in self.devices:
                        try:
                            dev.tick()
                        except Exception:
                            log.exception("%s: tick failed", dev.id)
        finally:
            self.close()

    def close(self):
        for dev in self.devices:
            dev.close("shutting down")
            dev.journal.close()
        self.sel.close()


def run_many(configs, stop_event=None, speedup=1.0, epoch0=None, tick_s=0.25, journal_dir=None, duration=None):
    fleet = Fleet(configs, speedup=speedup, epoch0=epoch0, tick_s=tick_s, journal_dir=journal_dir)
    fleet.run(stop_event, duration)
    return fleet


def run_chargepoint(config, stop_event=None, speedup=1.0, journal=None, epoch0=None, duration=None):
    """Run one charge point until stop_event is set; `journal` is a file path (None: in memory)."""
    paths = {config["id"]: journal} if journal else None
    fleet = Fleet([config], speedup=speedup, epoch0=epoch0, journal_paths=paths)
    fleet.run(stop_event, duration)
    return fleet

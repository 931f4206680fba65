"""Board glue: clock, WiFi, the hub link (TCP with optional TLS, UART, or a pty on the unix port: ptylink.py),
relays, watchdog, and the main loop that drives firmware.chargepoint.ChargePoint.

Nothing here touches hardware at import: every machine/network object is made in a
function and injected into the core. On the MicroPython unix port (no `network`, no
`machine.UART`, no `machine.WDT`) the same loop talks TCP with `socket` + `select.poll`,
or opens a pty path for serial; relays are then only logged.

TLS (``"hub": {"host", "port", "tls": true, "ca": "hub-ca.pem"}``): firmware/tls.py makes the
context (loaded only for such a hub); TcpLink wraps the socket once connected and the handshake
runs non-blocking inside the loop (reads and writes return nothing until it is done), so the
watchdog keeps being fed.
"""

import gc
import json
import select
import socket
import time

from firmware.chargepoint import ChargePoint
from firmware.journal import Journal
from transport.compat import const, monotonic_ms  # monotonic_ms: wrap-safe integer ms from ticks_ms
from transport.errors import FrameError
from transport.framing import SerialFramer, StreamFramer

# Private constants are folded by the compiler: no name to intern, no global to store (the heap).
_TICK_MS = const(200)  # core tick period (all board times are integer ms or s: ESP32 floats are float32)
_POLL_MS = const(50)  # longest wait for input per loop
_READ_SIZE = const(256)
_MAX_FRAME = const(4096)  # the hub never sends a station more than this
_MAX_OUT = const(8192)  # bytes queued for a link that does not drain: drop it
_WDT_MS = const(10000)  # watchdog timeout; fed only while the loop is healthy
_STALL_MS = const(5000)  # a loop that has not completed a tick for this long is unhealthy
_MAX_ERRORS = const(10)  # consecutive failed loop iterations before we stop feeding the watchdog
_MEM_REPORT_MS = const(300000)
_EPOCH_2000 = const(946684800)  # ports whose time.time() counts from 2000-01-01


def load_config(path):
    with open(path) as f:
        return json.load(f)


def _tls_error(exc):
    """OSError("TLS: ...") for an error of a TLS link (only a TLS link gets here: firmware/tls.py is loaded)."""
    from firmware import tls

    return OSError("TLS: %s" % tls.text(exc))


def wall_clock(clock=None):
    """UTC epoch seconds as an int whatever the port's epoch (the hub's clock is adopted at WELCOME).

    Integer division: ``time_ns() / 1e9`` is a float, and a float32 epoch moves in 128 s steps.
    ``time.time()`` is an int on the ESP32 but a float on the unix port, hence time_ns there.
    `clock` (tests) is a module-like object with time_ns (or time) and gmtime."""
    t = clock or time
    adj = _EPOCH_2000 if t.gmtime(0)[0] == 2000 else 0
    if hasattr(t, "time_ns"):
        ns = t.time_ns

        def wall():
            return ns() // 1000000000 + adj

        return wall
    now = t.time

    def wall():
        return int(now()) + adj

    return wall


def make_logger(station_id, debug=False):
    def log(level, text):
        if level != "debug" or debug:
            print("%s %s: %s" % (level.upper(), station_id, text))

    return log


def make_relay(pins, log):
    """relay(connector, on) switching one output Pin per connector; logged only without machine.Pin."""
    outs = None
    if pins:
        try:
            from machine import Pin

            outs = [Pin(p, Pin.OUT, value=0) for p in pins]
        except (ImportError, AttributeError):
            outs = None

    def relay(connector, on):
        if outs is not None:
            outs[connector - 1].value(1 if on else 0)
        log("debug", "relay %d %s" % (connector, "closed" if on else "open"))

    return relay


def make_wdt():
    try:
        from machine import WDT
    except ImportError:
        return None
    return WDT(timeout=_WDT_MS)


class Wifi:
    """Station-mode WiFi that reconnects on its own schedule; `up` tells the loop when to use it."""

    def __init__(self, ssid, password, clock, log):
        import network

        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        self.ssid = ssid
        self.password = password
        self.clock = clock
        self.log = log
        self.next_try = 0
        self.delay = 2000  # ms
        self.was_up = False

    @property
    def up(self):
        return self.wlan.isconnected()

    def poll(self):
        if self.wlan.isconnected():
            if not self.was_up:
                self.was_up = True
                self.delay = 2000
                self.log("info", "wifi up %s" % (self.wlan.ifconfig()[0],))
            return
        if self.was_up:
            self.was_up = False
            self.log("warning", "wifi lost")
        now = self.clock()
        if now >= self.next_try:
            self.next_try = now + self.delay
            self.delay = min(self.delay * 2, 60000)
            try:
                self.wlan.disconnect()
            except OSError:
                pass
            self.wlan.connect(self.ssid, self.password)


# --- links: the bytes of one connection to the hub -----------------------------------------


class TcpLink:
    def __init__(self, host, port, poller, tls=None):
        self.poller = poller
        self.framer = StreamFramer(_MAX_FRAME)
        self.host = host
        self.tls = tls  # an ssl.SSLContext: the socket is wrapped once connected
        addr = socket.getaddrinfo(host, port)[0][-1]
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(addr)
        except OSError as exc:
            if exc.errno not in (115, 119):  # EINPROGRESS on Linux / lwIP
                s.close()
                raise
        self.sock = s
        self.pending = True
        poller.register(s, select.POLLOUT)

    def check(self, flags):
        """After a poll event during connect: True once connected; OSError if refused."""
        if flags & (select.POLLERR | select.POLLHUP):
            raise OSError("connection refused")
        if flags & select.POLLOUT:
            self.pending = False
            if self.tls is None:
                self.poller.modify(self.sock, select.POLLIN)
            else:
                # The handshake is driven by the reads and writes that follow (they return nothing
                # until it is done), so the loop never blocks on it.
                self.poller.unregister(self.sock)
                try:
                    self.sock = self.tls.wrap_socket(
                        self.sock, server_hostname=self.host, do_handshake_on_connect=False
                    )
                except (OSError, ValueError) as exc:
                    raise _tls_error(exc)
                self.poller.register(self.sock, select.POLLIN)
        return not self.pending

    def readinto(self, buf):
        try:
            n = self.sock.readinto(buf)
        except OSError as exc:
            if exc.errno == 11:  # EAGAIN
                return 0
            if self.tls is not None:
                raise _tls_error(exc)
            raise
        except ValueError as exc:  # mbedTLS: the hub's certificate failed verification
            raise _tls_error(exc)
        if n is None:
            return 0
        if n == 0:
            raise OSError("hub closed the connection")
        return n

    def write(self, data):
        try:
            n = self.sock.write(data)
        except OSError as exc:
            if exc.errno == 11:
                return 0
            if self.tls is not None:
                raise _tls_error(exc)
            raise
        except ValueError as exc:
            raise _tls_error(exc)
        return n or 0

    def close(self):
        try:
            self.poller.unregister(self.sock)
        except (OSError, ValueError, KeyError):
            pass
        self.sock.close()


class UartLink:
    def __init__(self, cfg):
        from machine import UART

        self.uart = UART(cfg.get("id", 1), baudrate=cfg["baud"], tx=cfg["tx"], rx=cfg["rx"], rxbuf=1024, timeout=0)
        self.framer = SerialFramer(_MAX_FRAME)
        self.pending = False

    def readinto(self, buf):
        if not self.uart.any():
            return 0
        return self.uart.readinto(buf) or 0

    def write(self, data):
        return self.uart.write(data) or 0

    def close(self):
        pass  # the UART stays configured; a new session starts on it


# --- the main loop ------------------------------------------------------------------------------


class Board:
    evse = None  # firmware/evse.py's Evse on a board with a control pilot (set on the instance)

    def __init__(self, cfg, debug=False):
        if "sync_time" not in cfg:
            cfg["sync_time"] = True  # a board's RTC is not set: follow the hub
        self.log = make_logger(cfg.get("id", "?"), debug)
        self.clock = monotonic_ms
        journal = Journal(cfg.get("journal") or "journal.log", cfg.get("connectors", 1))
        self.cp = ChargePoint(
            cfg, self.clock, wall_clock(), journal, relay=make_relay(cfg.get("relay_pins"), self.log), log=self.log
        )
        self.cfg = self.cp.config
        if self.cfg.get("evse") is not None:  # control pilot, gated relay, S0 meter, button
            from firmware import evse  # one name for the key, the module and the attribute: heap

            self.evse = evse.start(self.cp, self.log)
        self.tls = None  # an ssl.SSLContext for a hub with "tls": true
        hub = self.cfg.get("hub")
        if type(hub) is list:  # several hubs on one PostgreSQL: they share the first one's TLS settings
            hub = hub[0]
        if hub and hub.get("tls"):
            from firmware import tls  # only a TLS board loads it (heap)

            self.tls = tls.context(hub, self.log)
        self.poller = select.poll()
        self.link = None
        self.buf = bytearray(_READ_SIZE)
        self.mv = memoryview(self.buf)
        self.out = bytearray()
        self.wifi = None
        wifi = self.cfg.get("wifi")
        if wifi and hub:
            try:
                self.wifi = Wifi(wifi["ssid"], wifi.get("password", ""), self.clock, self.log)
            except ImportError:
                self.wifi = None  # unix port: the host's network is already up
        self.errors = 0
        self.last_tick = self.clock()

    def open_link(self):
        cp = self.cp
        cfg = self.cfg
        cp.on_connecting()
        try:
            hub = cfg.get("hub")
            if hub:
                if type(hub) is list:  # several hubs: after a failure, the next one on the list
                    hub = hub[(cp.link.failures + cp.link.connects) % len(hub)]
                if self.tls is not None and self.wifi is not None:
                    from firmware import tls

                    tls.set_clock(self.log)
                self.link = TcpLink(hub["host"], hub["port"], self.poller, self.tls)
            elif cfg.get("uart") and _has_uart():
                self.link = UartLink(cfg["uart"])
            elif cfg.get("serial"):
                try:
                    from ptylink import PtyLink  # the unix port's pty: not in an ESP32 bundle
                except ImportError:
                    raise OSError('no pty link on this board: a board\'s serial line is "uart"')
                self.link = PtyLink(cfg["serial"], self.poller)
            else:
                raise OSError("config has no hub, uart or serial link")
        except OSError as exc:
            self.link = None
            cp.on_disconnected("cannot open link: %s" % (exc,))
            return
        self.out = bytearray()
        if not self.link.pending:
            self.connected()

    def connected(self):
        self.cp.on_connected()

    def close_link(self, why):
        if self.link is not None:
            try:
                self.link.close()
            except OSError:
                pass
            self.link = None
        self.out = bytearray()
        self.cp.on_disconnected(why)

    def pump_in(self, flags):
        link = self.link
        if link.pending:
            if flags and link.check(flags):
                self.connected()
            return
        while True:
            n = link.readinto(self.buf)
            if not n:
                return
            try:
                self.cp.feed(link.framer, self.mv[:n])
            except FrameError as exc:  # a TCP stream cannot resync after a bad length
                raise OSError("bad frame from hub: %s" % (exc,))
            if n < len(self.buf) and getattr(link, "tls", None) is None:
                return  # TLS: mbedTLS may hold more of a record than one read returned; read on

    def pump_out(self):
        link = self.link
        if link is None or link.pending:
            self.cp.take_outgoing()  # nothing to send them on
            return
        self.cp.pour(link.framer, self.out)
        if self.out:
            n = link.write(self.out)
            if n:
                self.out = self.out[n:]
            if len(self.out) > _MAX_OUT:
                raise OSError("hub is not reading")

    def step(self):
        cp = self.cp
        if self.wifi is not None:
            self.wifi.poll()
        if self.link is None and cp.want_connect() and (self.wifi is None or self.wifi.up):
            self.open_link()
        flags = 0
        for ev in self.poller.poll(_POLL_MS if self.link is not None else 0):
            flags |= ev[1]
        if self.link is None:
            if hasattr(time, "sleep_ms"):
                time.sleep_ms(_POLL_MS)
            else:
                time.sleep(_POLL_MS / 1000)  # float-ok: a sleep, not a clock
        if self.link is not None:
            try:
                self.pump_in(flags)
            except OSError as exc:
                why = str(exc)
                if why.startswith("TLS"):  # an untrusted hub or a broken handshake: an operator must look
                    self.log("error", "hub link: %s" % why)
                self.close_link(why)
        if self.evse is not None:
            self.evse.poll()  # every turn (<= _POLL_MS apart): the relay opens within 100 ms of leaving C
        now = self.clock()
        if now - self.last_tick >= _TICK_MS:
            self.last_tick = now
            cp.tick()
        if self.link is not None:
            try:
                self.pump_out()
            except OSError as exc:
                self.close_link("write: %s" % (exc,))
                return
            if cp.should_close:
                self.close_link(cp.close_reason)
        elif cp.should_close:
            cp.on_disconnected(cp.close_reason)

    def healthy(self):
        return self.errors < _MAX_ERRORS and self.clock() - self.last_tick < _STALL_MS

    def run(self, seconds=None):
        wdt = make_wdt()
        next_mem = 0
        end = None if seconds is None else self.clock() + seconds * 1000
        self.log("info", "started: %d connector(s), link %s" % (len(self.cp.connectors), _describe(self.cfg)))
        while end is None or self.clock() < end:
            try:
                self.step()
                self.errors = 0
            except MemoryError:
                self.errors += 1
                gc.collect()
                self.log("error", "out of memory (free %d)" % gc.mem_free())
            except Exception as exc:  # keep going; the watchdog resets us if it keeps failing
                self.errors += 1
                self.log("error", "loop: %r" % (exc,))
                if self.link is not None:
                    self.close_link("error")
            if wdt is not None and self.healthy():
                wdt.feed()
            now = self.clock()
            if now >= next_mem:
                next_mem = now + _MEM_REPORT_MS
                gc.collect()
                self.log("info", "heap: %d used, %d free" % (gc.mem_alloc(), gc.mem_free()))
        if self.link is not None:
            self.close_link("stopped")


def _has_uart():
    try:
        from machine import UART  # noqa: F401

        return True
    except ImportError:
        return False


def _describe(cfg):
    hub = cfg.get("hub")
    if hub:
        if type(hub) is list:  # the first of several (no new string: every one is an interned name)
            hub = hub[0]
        return "%s %s:%d" % ("tls" if hub.get("tls") else "tcp", hub["host"], hub["port"])
    if cfg.get("uart") and _has_uart():
        return "uart %s" % (cfg["uart"],)
    return "serial %s" % (cfg.get("serial"),)


def main(config_path="config.json", seconds=None):
    cfg = load_config(config_path)
    Board(cfg, debug=cfg.get("debug", False)).run(seconds)

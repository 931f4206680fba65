"""`evhub console PORT_URL`: a serial console that speaks evhub frames.

    evhub console /dev/ttyUSB0 [--baud 115200] [--key KEY [--id ID] | --db evhub.db]
    evhub console /dev/ttyUSB0 --as station --id CP-1 --key KEY     (on a hub's serial line)
    evhub console /dev/ttyUSB0 --as monitor                          (decode only)
    evhub console /dev/ttyUSB0 --raw                                 (the board's REPL)

PORT_URL is any pyserial URL: /dev/ttyUSB0, COM3, a pty path, socket://HOST:PORT,
rfc2217://HOST:PORT, loop://.

What the console is on the wire. A serial line has two ends. A charge point on a
serial line (``"uart"`` or ``"serial"`` in its config.json) expects a hub at the other
end, so by default (--as hub) the console IS that hub end: it answers the station's
HELLO with a challenge and checks its proof against the station's key (--key, or the
key in the hub's store --db, looked up by the id the station says hello with), then
acknowledges its BOOT and STATUS and answers its pings, as a hub does. Session records
are acknowledged only once stored in --db (the station deletes what is acknowledged):
with no store they stay in the station's journal and it sends them again. The commands you type become hub-to-station requests (TRIGGER, RESERVE_NOW,
CANCEL_RESERVATION, REMOTE_START, REMOTE_STOP, CHANGE_AVAILABILITY, CONFIGURE) and
their answers are shown. With no key to be found the console only monitors. A station
still in a session with whoever was on the line before (another console, a hub) talks
on as if nothing happened: the console stays silent until the station notices (three
heartbeats without an answer) and says hello again; resetting the station is quicker.
  --as station   for a hub's serial line (``evhub serve --serial URL``): the console
                 plays station --id with --key: hello, BOOT, then it acknowledges the
                 hub's requests (it does not act on them); ``status N STATUS`` reports.
  --as monitor   no session: frames are decoded and shown, ``raw`` sends exactly what
                 you type. For a tapped line, or to poke a peer with bad messages.

Every frame is one line: local time, direction (``<-`` received, ``->`` sent), kind
name, seq and fields as name=value. Frames dropped by the COBS/CRC-32 framing are
counted (crc_errors, decode_errors, oversize, resyncs) and a ``!!`` line shows the
totals whenever they change; ``stats`` shows them at any time.

Commands (hub end; ``help`` lists them):
  status                         last known connector statuses, and TRIGGER status
  trigger boot|status|meter      ask the station to send BOOT / STATUS / METER now
  reserve ID CONNECTOR VEHICLE [START] [MINUTES]
                                 RESERVE_NOW; START: now (default), +15m, +2h, HH:MM (UTC) or
                                 epoch seconds; MINUTES default 60; CONNECTOR 0 = any
  cancel ID                      CANCEL_RESERVATION
  start CONNECTOR VEHICLE [RESERVATION]   REMOTE_START (CONNECTOR 0 = any free one)
  stop [SESSION]                 REMOTE_STOP (default: the one running session)
  availability N on|off          CHANGE_AVAILABILITY (N = 0: the whole station)
  config KEY VALUE               CONFIGURE (VALUE as JSON: 30, "stop", 7.4)
  raw [kind, seq, ...]           send this message as it is (JSON or Python literal; kind may
                                 be a name: raw ["trigger", 99, "meter"]); not validated
  stats                          frame counters
  sleep SECONDS                  pause reading commands (for scripts)
  help | quit

Keys: Enter sends the line, Up/Down recall earlier ones, Ctrl-] (or Ctrl-C, or Ctrl-D on an
empty line, or ``quit``) leaves and restores the terminal. When stdin is not a terminal the
console reads one command per line; at the end of the input it keeps showing frames until
Ctrl-C, SIGTERM or --duration (end the input with ``quit`` to leave after the answers).

--raw is a plain terminal for the board's REPL (UART0): every key goes to the board
(Ctrl-C interrupts, Ctrl-D soft-resets it) and its output is shown as is; only Ctrl-]
leaves. Without a terminal, input lines are sent with CR line ends.
"""

import argparse
import ast
import codecs
import json
import os
import select
import shlex
import signal
import sys
import time

from serial import SerialException

from tools.client import secret_args
from tools.device.term_escape import RawFilter, escape_text
from transport import kinds as K
from transport.codec import packb, unpackb
from transport.errors import ERROR_NAMES, CodecError, FrameError, ProtocolError
from transport.framing import SEALED_MARK, SerialFramer
from transport.messages import parse, to_dict
from transport.session import (
    S_WAIT_HELLO,
    Authenticated,
    ClientSession,
    Closed,
    Message,
    PeerSilent,
    Reply,
    ServerSession,
    Timeout,
)

CTRL_RBRACKET = "\x1d"  # Ctrl-]: leave, as in telnet, miniterm and mpremote
POLL_S = 0.02  # the longest wait for input when the port cannot be select()ed (loop://, socket://)
TICK_S = 0.1  # session timers and `quit`
QUIT_DRAIN_S = 3.0  # `quit` waits this long at most for answers still due
QUIT_LINGER_S = 0.3  # and at least this long, for frames already on their way
PROMPTS = {"hub": "hub> ", "station": "station> ", "monitor": "monitor> "}
STATION_REQUESTS = (K.BOOT, K.STATUS, K.METER, K.SESSION_START, K.SESSION_END)
TRIGGERS = ("boot", "status", "meter")
_COUNTERS = ("crc_errors", "decode_errors", "oversize", "resyncs")


def configure(p):
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "url", metavar="PORT_URL", help="pyserial URL: /dev/ttyUSB0, a pty path, socket://HOST:PORT, loop://"
    )
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument("--raw", action="store_true", help="plain terminal for the board's REPL; Ctrl-] leaves")
    p.add_argument(
        "--as",
        dest="mode",
        choices=("hub", "station", "monitor"),
        default="hub",
        help="which end of the line the console plays (default hub: for a charge point on the line)",
    )
    secret_args.add(p, "--key", "EVHUB_KEY", "the station's key", extra_help=" (default: from the store --db)")
    p.add_argument("--id", help="the station's id (--as hub: accept only this station; --as station: required)")
    p.add_argument(
        "--db",
        default=os.environ.get("EVHUB_DB", "evhub.db"),
        help="hub store (default $EVHUB_DB or ./evhub.db, if it exists): station keys are looked up there, "
        "and the station's session records are stored there before they are acknowledged",
    )
    p.add_argument("--heartbeat", type=int, default=30, help="heartbeat seconds the hub end announces (default 30)")
    p.add_argument("--lat", type=float, default=0.0, help="--as station: position sent in BOOT")
    p.add_argument("--lon", type=float, default=0.0, help="--as station: position sent in BOOT")
    p.add_argument("--connectors", type=int, default=1, help="--as station: connectors sent in BOOT")
    p.add_argument("--max-kw", type=float, default=22.0, dest="max_kw", help="--as station: power sent in BOOT")
    p.add_argument("--duration", type=float, help="leave after this many seconds")


# --- showing messages ---------------------------------------------------------------------------


def clock_text(t=None):
    t = time.time() if t is None else t
    return time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % int((t % 1) * 1000)


def value_text(v):
    if isinstance(v, (bytes, bytearray)):
        hx = bytes(v[:8]).hex()
        return "<%d bytes %s%s>" % (len(v), hx, "..." if len(v) > 8 else "")
    if isinstance(v, str):
        return v if v and not any(c.isspace() or c in "\"'=" for c in v) else json.dumps(v)
    if isinstance(v, (dict, list, tuple)):
        try:
            return json.dumps(v, separators=(",", ":"), default=repr)
        except (TypeError, ValueError):
            return repr(v)
    return repr(v)


def message_text(obj):
    """(kind name, 'seq=.. name=value ...') for a decoded message, valid or not."""
    try:
        kind, seq, fields = parse(obj)
    except ProtocolError as exc:
        if isinstance(obj, (list, tuple)) and len(obj) >= 2 and isinstance(obj[0], int):
            shown = " ".join(["seq=%s" % value_text(obj[1])] + [value_text(f) for f in obj[2:]])
            return K.kind_name(obj[0]), "%s  (invalid: %s)" % (shown, exc)
        return "?", "%s  (invalid: %s)" % (value_text(obj), exc)
    parts = ["seq=%d" % seq]
    for name, value in to_dict(kind, fields).items():
        parts.append("%s=%s" % (name, value_text(value)))
    if len(fields) > len(K.KINDS[kind][2]):
        parts.append("+%s" % value_text(list(fields[len(K.KINDS[kind][2]) :])))
    if kind == K.ERROR and fields and fields[0] in ERROR_NAMES:
        parts[1] = "code=%d(%s)" % (fields[0], ERROR_NAMES[fields[0]])
    return K.kind_name(kind), " ".join(parts)


class UsageError(Exception):
    """A command typed wrong; the text says how it goes."""


def kind_from(value):
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        for k, entry in K.KINDS.items():
            if entry[0] == value.lower():
                return k
    raise UsageError("unknown kind %r" % (value,))


def parse_literal(text):
    """A message typed as JSON or a Python literal (bytes allowed)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise UsageError("not a JSON or Python literal: %s" % exc) from None


def parse_start(text, now):
    """now | +15m | +2h | +90s | HH:MM (UTC, today or tomorrow) | epoch seconds -> epoch seconds."""
    text = text.strip().lower()
    if text == "now":
        return int(now)
    if text.startswith("+") and len(text) > 2 and text[-1] in "smh" and text[1:-1].isdigit():
        return int(now) + int(text[1:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]
    if ":" in text:
        hh, _sep, mm = text.partition(":")
        if hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60:
            day = int(now) - int(now) % 86400
            t = day + int(hh) * 3600 + int(mm) * 60
            return t if t >= int(now) - 60 else t + 86400
    if text.isdigit() and len(text) >= 9:
        return int(text)
    raise UsageError("START is now, +15m, +2h, HH:MM (UTC) or epoch seconds, not %r" % text)


def _int(text, what):
    try:
        return int(text)
    except ValueError:
        raise UsageError("%s must be a number, not %r" % (what, text)) from None


# --- the protocol end ---------------------------------------------------------------------------------


class Console:
    """One end of a serial line: frames in and out, a session (hub or station end) and the commands."""

    def __init__(self, port, mode, out, args, wall=time.time):
        self.port = port
        self.mode = mode
        self.out = out  # out(text): one line for the person
        self.args = args
        self.wall = wall
        self.framer = SerialFramer()
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self.session = None
        self.pending = {}  # seq -> what we asked, for the answer line
        self.connectors = {}  # connector -> (status, info), from the station's STATUS
        self.running = {}  # session id -> connector, from SESSION_START/END
        self.station_id = None
        self.store = None
        self.noise_hint = False
        self.stale_hint = False
        self.quit_at = None  # set by `quit`: leave once answers are in, or at this time
        self.resume_at = 0.0  # `sleep`
        self.done = False

    # -- wire

    def start(self):
        if self.mode == "hub":
            self.session = self._server()
            self.note("hub end of %s: waiting for a station's hello (%s)" % (self.args.url, self._key_source()))
        elif self.mode == "station":
            self._hello()
        else:
            self.note("monitoring %s: frames are shown; `raw [kind, seq, ...]` sends" % self.args.url)

    def _key_source(self):
        if self.args.key:
            return "key from --key" + (" for %s" % self.args.id if self.args.id else "")
        return "keys from %s" % self.args.db

    def _server(self):
        session = ServerSession(self._lookup_key, wall=self.wall, heartbeat_s=self.args.heartbeat)
        self.framer.seal = session.seal  # frames after the handshake carry the session's MAC
        return session

    def _hello(self):
        self.session = ClientSession(
            "station", self.args.id, self.args.key, wall=self.wall, heartbeat_s=self.args.heartbeat
        )
        self.framer.seal = self.session.seal
        self.session.start()
        self.port.write(b"\x00")  # a delimiter first: the hub's framer drops any noise before us
        self.flush()

    def _lookup_key(self, role, peer_id):
        if role != "station":
            self.note("a %s says hello; only stations connect on a serial line: refused" % role)
            return None
        self.station_id = peer_id
        if self.args.key:
            if self.args.id and peer_id != self.args.id:
                self.note("%s says hello but --id is %s: refused" % (peer_id, self.args.id))
                return None
            return self.args.key
        try:
            if self.store is None:
                from hub.store.store import Store

                self.store = Store(self.args.db)
            key = self.store.get_station_key(peer_id)
        except Exception as exc:  # sqlite3.Error, StoreError: say it, refuse the station, keep going
            self.note("cannot read keys from %s: %s" % (self.args.db, exc))
            return None
        if key is None:
            self.note("%s is not in %s: it will be refused (give --key, or provision it)" % (peer_id, self.args.db))
        return key

    def feed(self, data):
        for payload in self.framer.feed(data):
            if payload[:1] == SEALED_MARK:
                # Sealed with keys this console does not hold: a session from before it started
                # (hub mode), or anyone's session (monitor mode: it can show, not verify or read).
                seq = int.from_bytes(payload[1:5], "big") if len(payload) >= 5 else -1
                self.line(
                    "<-",
                    "sealed",
                    "%d bytes, seq=%d, MAC'd for a session this console does not hold" % (len(payload), seq),
                )
                if self.mode == "hub" and self.session is not None and self.session.state == S_WAIT_HELLO:
                    self._session_from_before()
                continue
            try:
                obj = unpackb(payload)
            except CodecError as exc:
                self.line("<-", "?", "%d bytes that are not msgpack: %s" % (len(payload), exc))
                continue
            self.show("<-", obj)
            self.receive(obj)
        self._counters()
        self.flush()

    def _session_from_before(self):
        # A station that had a session with someone else before us. Refusing would keep it busy
        # answering; silence makes it notice (3 heartbeats) and say hello again.
        if not self.stale_hint:
            self.stale_hint = True
            self.note(
                "the station talks as if in a session from before; it says hello again once it "
                "notices the silence (3 heartbeats), or reset it"
            )

    def _counters(self):
        stats = self.framer.stats()
        now = {k: stats[k] for k in _COUNTERS}
        if now != self.counts:
            self.counts = now
            self.line(
                "!!",
                "line",
                "%s (frames ok %d)" % (" ".join("%s=%d" % (k, v) for k, v in now.items()), stats["frames_ok"]),
            )
            if not self.noise_hint and stats["frames_ok"] == 0 and now["decode_errors"] + now["crc_errors"] >= 3:
                self.noise_hint = True
                self.note("nothing here decodes as evhub frames: wrong port or baud rate? (the REPL needs --raw)")

    def receive(self, obj):
        if self.session is None:
            return
        kind = obj[0] if isinstance(obj, (list, tuple)) and obj else None
        if self.mode == "hub":
            if kind == K.HELLO and self.session.state != S_WAIT_HELLO:
                self.flush()
                self.session = self._server()
                self.pending.clear()
                self.note("the station says hello again: new session")
            elif self.session.state == S_WAIT_HELLO and kind != K.HELLO:
                self._session_from_before()
                return
        try:
            events = self.session.receive(obj)
        except Exception as exc:  # a session bug must not end the console
            self.note("session error: %r" % (exc,))
            return
        for ev in events:
            self.on_event(ev)

    def send(self, obj):
        try:
            self.port.write(self.framer.encode(packb(obj)))
        except (CodecError, FrameError) as exc:
            raise UsageError("cannot encode that: %s" % exc) from None
        self.show("->", obj)

    def flush(self):
        if self.session is not None:
            for m in self.session.take_outgoing():
                self.send(m)

    def tick(self):
        if self.session is not None:
            for ev in self.session.tick():
                self.on_event(ev)
            self.flush()
        if self.quit_at is not None:
            now = time.monotonic()
            if now >= self.quit_at or (not self.pending and now >= self.quit_at - QUIT_DRAIN_S + QUIT_LINGER_S):
                self.done = True

    # -- what the person sees

    # Everything shown goes through escape_text: ids, texts and names come from the wire.
    def line(self, arrow, name, text):
        self.out(escape_text("%s %s %-18s %s" % (clock_text(), arrow, name, text)))

    def show(self, arrow, obj):
        name, text = message_text(obj)
        self.line(arrow, name, text)

    def note(self, text):
        self.out(escape_text("%s -- %s" % (clock_text(), text)))

    # -- session events

    def on_event(self, ev):
        if isinstance(ev, Authenticated):
            if self.mode == "hub":
                self.note("station %s authenticated; type `help` for commands" % ev.peer_id)
            else:
                self.note("the hub welcomed us (heartbeat %ss); sending BOOT" % ev.heartbeat_s)
                a = self.args
                self.ask("boot", K.BOOT, a.lat, a.lon, a.connectors, a.max_kw, "evhub-console")
        elif isinstance(ev, Message):
            self.on_message(ev)
        elif isinstance(ev, Reply):
            what = self.pending.pop(ev.seq, K.kind_name(ev.request_kind))
            if ev.kind == K.ERROR:
                self.note("%s: REFUSED %s: %s" % (what, ERROR_NAMES.get(ev.fields[0], ev.fields[0]), ev.fields[1]))
            else:
                self.note("%s: %s" % (what, "ok" if ev.kind == K.ACK else K.kind_name(ev.kind)))
        elif isinstance(ev, Timeout):
            what = self.pending.pop(ev.seq, K.kind_name(ev.request_kind))
            self.note("%s: no answer within %d s" % (what, self.session.request_timeout_s))
        elif isinstance(ev, PeerSilent):
            self.note("the %s has been silent for %.0f s" % ("station" if self.mode == "hub" else "hub", ev.silent_s))
        elif isinstance(ev, Closed):
            self.note("session closed: %s" % ev.text)
            self.pending.clear()
            self.flush()  # the refusal goes out before the session is replaced
            if self.mode == "hub":
                self.session = self._server()
            else:
                self.session = None
                self.framer.seal = None
                self.note("type `hello` to start again")

    def on_message(self, m):
        f = m.fields
        if m.kind == K.ERROR:
            self.note(
                "error from the %s: %s: %s"
                % ("station" if self.mode == "hub" else "hub", ERROR_NAMES.get(f[0], f[0]), f[1])
            )
            return
        if self.mode == "station":
            if m.seq:
                self.session.send(K.ACK, m.seq)
                self.note("the hub asks %s (acknowledged; this console does not act on it)" % K.kind_name(m.kind))
            return
        if m.kind in (K.SESSION_START, K.SESSION_END):
            # A station deletes a session record from its journal once it is acknowledged: only a
            # record that is stored may be acknowledged, or billing data is lost.
            if not self._store_session(m.kind, f):
                return
            if m.kind == K.SESSION_START:
                self.running[f[0]] = f[1]
            else:
                self.running.pop(f[0], None)
        elif m.kind == K.STATUS:
            self.connectors[f[0]] = (f[1], f[2])
        elif m.kind == K.BOOT:
            self.note("%s booted: %d connector(s), %s kW, firmware %s" % (self.session.peer_id, f[2], f[3], f[4]))
        if m.seq and m.kind in STATION_REQUESTS:
            self.session.send(K.ACK, m.seq)

    def _session_store(self):
        """The hub store session records go to: the --db store when it exists, else None."""
        if self.store is None and os.path.isfile(self.args.db):
            from hub.store.store import Store

            self.store = Store(self.args.db)
        return self.store

    def _store_session(self, kind, f):
        """Record a SESSION_START/END in the store; True if it is stored (or was already)."""
        try:
            store = self._session_store()
            if store is None:
                self.note(
                    "%s %s not acknowledged: no store to keep it in (give --db); the station keeps it "
                    "in its journal and sends it again" % (K.kind_name(kind), f[0])
                )
                return False
            if kind == K.SESSION_START:
                store.record_session_start(f[0], self.session.peer_id, f[1], f[2], f[3], f[4], f[5])
            else:
                store.record_session_end(f[0], self.session.peer_id, f[1], f[2], f[3], f[4], f[5], f[6], f[7])
        except Exception as exc:  # sqlite3.Error, StoreError: not stored, so not acknowledged
            self.note(
                "%s %s not acknowledged: storing it in %s failed: %s" % (K.kind_name(kind), f[0], self.args.db, exc)
            )
            return False
        self.note("%s %s stored in %s" % (K.kind_name(kind), f[0], self.args.db))
        return True

    # -- commands

    def ask(self, what, kind, *fields):
        if self.session is None or not self.session.authenticated:
            raise UsageError(
                "no session yet: %s" % ("wait for the station's hello" if self.mode == "hub" else "type `hello`")
            )
        try:
            seq = self.session.request(kind, *fields)
        except ProtocolError as exc:
            raise UsageError(str(exc)) from None
        self.pending[seq] = what
        self.flush()
        return seq

    def command(self, line):
        """Run one typed line; UsageError texts are shown to the person."""
        line = line.strip()
        if not line or line.startswith("#"):
            return
        word, _sep, rest = line.partition(" ")
        word = word.lower()
        if word == "raw":
            self.raw(rest)
            return
        try:
            argv = shlex.split(rest)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        handler = getattr(self, "do_" + word, None)
        if handler is None:
            raise UsageError("unknown command %r; `help` lists them" % word)
        allowed = _MODE_COMMANDS.get(word)
        if allowed is not None and self.mode not in allowed:
            raise UsageError(
                "`%s` is for --as %s; `help` lists this mode's commands" % (word, " or --as ".join(allowed))
            )
        handler(argv)

    def do_help(self, argv):
        for text in HELP[self.mode]:
            self.out(text)

    def do_quit(self, argv):
        self.quit_at = time.monotonic() + QUIT_DRAIN_S
        if self.pending:
            self.note("leaving once %d answer(s) are in (at most %.0f s)" % (len(self.pending), QUIT_DRAIN_S))

    do_exit = do_quit

    def do_sleep(self, argv):
        if len(argv) != 1:
            raise UsageError("sleep SECONDS")
        try:
            seconds = float(argv[0])
        except ValueError:
            raise UsageError("sleep SECONDS") from None
        self.resume_at = time.monotonic() + max(0.0, min(seconds, 3600.0))

    def do_stats(self, argv):
        stats = self.framer.stats()
        self.note(" ".join("%s=%d" % kv for kv in stats.items()) + "  buffered=%d" % self.framer.buffered())

    def do_status(self, argv):
        if self.mode == "station":
            self.do_report(argv)
            return
        if argv:
            raise UsageError("status (no arguments): shows the last known statuses and asks for fresh ones")
        if self.connectors:
            self.note(
                "last known: "
                + ", ".join(
                    "%d %s%s" % (n, s, " (%s)" % info if info else "")
                    for n, (s, info) in sorted(self.connectors.items())
                )
            )
        if self.running:
            self.note("running sessions: " + ", ".join("%s on %d" % kv for kv in sorted(self.running.items())))
        self.ask("trigger status", K.TRIGGER, "status")

    def do_trigger(self, argv):
        if len(argv) != 1 or argv[0] not in TRIGGERS:
            raise UsageError("trigger boot|status|meter")
        self.ask("trigger %s" % argv[0], K.TRIGGER, argv[0])

    def do_reserve(self, argv):
        if not 3 <= len(argv) <= 5:
            raise UsageError("reserve ID CONNECTOR VEHICLE [START] [MINUTES]")
        rid, connector = _int(argv[0], "ID"), _int(argv[1], "CONNECTOR")
        now = self.wall()
        start = parse_start(argv[3], now) if len(argv) > 3 else int(now)
        minutes = _int(argv[4], "MINUTES") if len(argv) > 4 else 60
        if minutes <= 0:
            raise UsageError("MINUTES must be positive")
        self.ask("reserve %d" % rid, K.RESERVE_NOW, rid, connector, argv[2], start, start + minutes * 60)

    def do_cancel(self, argv):
        if len(argv) != 1:
            raise UsageError("cancel ID")
        rid = _int(argv[0], "ID")
        self.ask("cancel %d" % rid, K.CANCEL_RESERVATION, rid)

    def do_start(self, argv):
        if not 2 <= len(argv) <= 3:
            raise UsageError("start CONNECTOR VEHICLE [RESERVATION]")
        rid = _int(argv[2], "RESERVATION") if len(argv) > 2 else None
        self.ask("start %s on %s" % (argv[1], argv[0]), K.REMOTE_START, _int(argv[0], "CONNECTOR"), argv[1], rid, None)

    def do_stop(self, argv):
        if len(argv) > 1:
            raise UsageError("stop [SESSION]")
        if argv:
            sid = argv[0]
        elif len(self.running) == 1:
            sid = next(iter(self.running))
        else:
            raise UsageError("stop SESSION (running: %s)" % (", ".join(sorted(self.running)) or "none seen"))
        self.ask("stop %s" % sid, K.REMOTE_STOP, sid)

    def do_availability(self, argv):
        if len(argv) != 2 or argv[1].lower() not in ("on", "off"):
            raise UsageError("availability CONNECTOR on|off")
        n = _int(argv[0], "CONNECTOR")
        self.ask("availability %d %s" % (n, argv[1].lower()), K.CHANGE_AVAILABILITY, n, argv[1].lower() == "on")

    def do_config(self, argv):
        if len(argv) != 2:
            raise UsageError("config KEY VALUE")
        try:
            value = json.loads(argv[1])
        except ValueError:
            value = argv[1]
        self.ask("config %s" % argv[0], K.CONFIGURE, argv[0], value)

    def do_hello(self, argv):
        self._hello()

    def do_boot(self, argv):
        a = self.args
        self.ask("boot", K.BOOT, a.lat, a.lon, a.connectors, a.max_kw, "evhub-console")

    def do_report(self, argv):
        if len(argv) not in (2, 3):
            raise UsageError("status CONNECTOR STATUS [INFO]")
        if argv[1] not in K.CONNECTOR_STATUSES:
            raise UsageError("STATUS is one of %s" % ", ".join(K.CONNECTOR_STATUSES))
        self.ask(
            "status %s %s" % (argv[0], argv[1]),
            K.STATUS,
            _int(argv[0], "CONNECTOR"),
            argv[1],
            argv[2] if len(argv) > 2 else None,
        )

    def raw(self, text):
        obj = parse_literal(text.strip())
        if not isinstance(obj, (list, tuple)) or len(obj) < 2:
            raise UsageError("raw [kind, seq, field, ...]")
        obj = [kind_from(obj[0])] + list(obj[1:])
        self.send(obj)


# `status` at the station end reports a status instead of asking for them.
_MODE_COMMANDS = {
    "status": ("hub", "station"),
    "trigger": ("hub",),
    "reserve": ("hub",),
    "cancel": ("hub",),
    "start": ("hub",),
    "stop": ("hub",),
    "availability": ("hub",),
    "config": ("hub",),
    "hello": ("station",),
    "boot": ("station",),
    "report": ("station",),
}

_COMMON_HELP = [
    "  raw [kind, seq, ...]           send exactly this (JSON/Python literal; kind may be a name)",
    "  stats                          frame counters (crc_errors, resyncs, ...)",
    "  sleep SECONDS                  pause reading commands (scripts)",
    "  help | quit                    (Ctrl-] also leaves)",
]
HELP = {
    "hub": [
        "commands (you are the hub end; they go to the station):",
        "  status                         last known statuses + TRIGGER status",
        "  trigger boot|status|meter      TRIGGER",
        "  reserve ID CONNECTOR VEHICLE [START] [MINUTES]   RESERVE_NOW (START: now, +15m, HH:MM UTC, epoch)",
        "  cancel ID                      CANCEL_RESERVATION",
        "  start CONNECTOR VEHICLE [RES]  REMOTE_START (connector 0: any free one)",
        "  stop [SESSION]                 REMOTE_STOP (default: the one running session)",
        "  availability N on|off          CHANGE_AVAILABILITY (N = 0: whole station)",
        "  config KEY VALUE               CONFIGURE",
    ]
    + _COMMON_HELP,
    "station": [
        "commands (you are the station end; they go to the hub):",
        "  hello                          start a new session",
        "  boot                           send BOOT again",
        "  status CONNECTOR STATUS [INFO] report a connector status (Available, Charging, ...)",
    ]
    + _COMMON_HELP,
    "monitor": ["commands (monitor: no session):"] + _COMMON_HELP,
}


# --- the person's terminal -------------------------------------------------------------------------------


class LineInput:
    """Commands from stdin: a small line editor on a terminal (cbreak, our own echo), else lines."""

    def __init__(self, fd, write, prompt):
        self.fd = fd
        self.write = write
        self.prompt = prompt
        self.tty = os.isatty(fd)
        self.saved = None
        self.buf = ""
        self.history = []
        self.hpos = None
        self.esc = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.partial = ""
        self.eof = False

    def __enter__(self):
        if self.tty:
            import termios

            self.saved = termios.tcgetattr(self.fd)
            self.cbreak()
            self.redraw()
        return self

    def cbreak(self):
        import termios

        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)  # ISIG stays: Ctrl-C still interrupts
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def restore(self):
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None

    def __exit__(self, *exc):
        if self.tty:
            self.write("\r\x1b[K")
        self.restore()

    def print(self, text):
        if self.tty:
            self.write("\r\x1b[K" + text + "\n" + self.prompt + self.buf)
        else:
            self.write(text + "\n")

    def redraw(self):
        if self.tty:
            self.write("\r\x1b[K" + self.prompt + self.buf)

    def read(self):
        """What is waiting on stdin: a list of complete lines; None means leave now."""
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return []
        text = self.decoder.decode(data)
        if not self.tty:
            if CTRL_RBRACKET in text:
                return None
            self.partial += text
            lines = self.partial.split("\n")
            self.partial = lines.pop()
            return [ln.rstrip("\r") for ln in lines]
        lines = []
        for ch in text:
            if self.esc:
                self.esc += ch
                if len(self.esc) >= 3 and (0x40 <= ord(ch) <= 0x7E):
                    self._escape(self.esc)
                    self.esc = ""
                elif len(self.esc) == 2 and ch not in "[O":
                    self.esc = ""
                continue
            if ch == CTRL_RBRACKET or ch == "\x03":  # Ctrl-C arrives as a key when this is not our controlling tty
                return None
            if ch == "\x04" and not self.buf:
                return None
            if ch in "\r\n":
                line = self.buf
                self.buf = ""
                self.hpos = None
                self.write("\r\x1b[K" + self.prompt + line + "\n")
                if line.strip() and (not self.history or self.history[-1] != line):
                    self.history.append(line)
                lines.append(line)
            elif ch in "\x7f\x08":
                self.buf = self.buf[:-1]
            elif ch == "\x15":  # Ctrl-U
                self.buf = ""
            elif ch == "\x1b":
                self.esc = ch
            elif ch >= " ":
                self.buf += ch
        self.redraw()
        return lines

    def _escape(self, seq):
        if seq[-1] not in "AB" or not self.history:
            return
        if seq[-1] == "A":
            self.hpos = len(self.history) - 1 if self.hpos is None else max(0, self.hpos - 1)
        elif self.hpos is not None:
            self.hpos += 1
            if self.hpos >= len(self.history):
                self.hpos = None
                self.buf = ""
                return
        if self.hpos is not None:
            self.buf = self.history[self.hpos]


def _port_fd(port):
    try:
        return port.fileno()
    except Exception:  # loop://, socket://, rfc2217:// have none: they are polled
        return None


def _open(url, baud):
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=0, write_timeout=2)
    except (serial.SerialException, OSError, ValueError) as exc:
        text = str(exc)
        if "Permission denied" in text:
            text += " (add yourself to the dialout group and log in again)"
        raise OSError("cannot open %s: %s" % (url, text)) from None


class _Stop(Exception):
    pass


def _on_sigterm(*_):
    raise _Stop()


def run(args):
    if args.baud <= 0:
        print("evhub console: --baud must be positive", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("evhub console: --duration must be positive", file=sys.stderr)
        return 2
    try:
        secret_args.resolve(args, "--key", "EVHUB_KEY")
    except ValueError as exc:
        print("evhub console: %s" % exc, file=sys.stderr)
        return 2
    mode = args.mode
    if not args.raw and mode == "station":
        if not args.id:
            print("evhub console: --as station needs --id (and --key, or a --db that has it)", file=sys.stderr)
            return 2
        if not args.key and os.path.exists(args.db):
            from hub.store.store import Store

            try:
                store = Store(args.db)
            except ValueError as exc:  # e.g. a store others can read (hub/secretfile.py)
                print("evhub console: %s" % exc, file=sys.stderr)
                return 2
            try:
                args.key = store.get_station_key(args.id)
            finally:
                store.close()
        if not args.key:
            print(
                "evhub console: no key for %s: give --key (or --db with the station in it)" % args.id, file=sys.stderr
            )
            return 2
    fallback = None
    if not args.raw and mode == "hub" and not args.key and not os.path.exists(args.db):
        mode = "monitor"
        fallback = (
            "no --key and no store %s: monitoring only (give --key or --db to answer a station's hello)" % args.db
        )
    try:
        port = _open(args.url, args.baud)
    except OSError as exc:
        print("evhub console: %s" % exc, file=sys.stderr)
        return 1
    old_term = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        if args.raw:
            return _run_raw(port, args)
        return _run_lines(port, args, mode, fallback)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        try:
            port.close()
        except Exception:  # closing a port that went away
            pass


def _main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()


def _write_stdout(text):
    sys.stdout.write(text)
    sys.stdout.flush()


def _run_lines(port, args, mode, fallback):
    stdin_fd = sys.stdin.fileno()
    term = LineInput(stdin_fd, _write_stdout, PROMPTS[mode])
    console = Console(port, mode, term.print, args)
    port_fd = _port_fd(port)
    end = None if args.duration is None else time.monotonic() + args.duration
    status = 0
    old_cont = None
    with term:
        if term.tty and _main_thread():

            def _on_cont(*_):
                term.cbreak()
                term.redraw()

            old_cont = signal.signal(signal.SIGCONT, _on_cont)
        try:
            if fallback:
                console.note(fallback)
            console.start()
            next_tick = time.monotonic()
            queued = []
            eof_noted = False
            while not console.done:
                now = time.monotonic()
                if end is not None and now >= end:
                    break
                fds = [] if term.eof else [stdin_fd]
                if port_fd is not None:
                    fds.append(port_fd)
                wait = TICK_S if port_fd is not None else POLL_S
                if fds:
                    ready, _w, _x = select.select(fds, [], [], min(wait, max(0.0, next_tick - now)))
                else:
                    time.sleep(POLL_S)
                    ready = []
                if stdin_fd in ready:
                    lines = term.read()
                    if lines is None or (term.eof and term.tty):
                        break
                    queued.extend(lines)
                try:
                    if port_fd is None:
                        waiting = port.in_waiting
                        data = port.read(waiting) if waiting else b""
                    elif port_fd in ready:
                        data = port.read(port.in_waiting or 1)  # ready with nothing to read: raises if gone
                    else:
                        data = b""
                    if data:
                        console.feed(data)
                    while queued and time.monotonic() >= console.resume_at and console.quit_at is None:
                        line = queued.pop(0)
                        try:
                            console.command(line)
                        except UsageError as exc:
                            console.note(str(exc))
                    if term.eof and not queued and console.quit_at is None and not eof_noted:
                        eof_noted = True
                        console.note("end of input: still showing frames (Ctrl-C leaves)")
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + TICK_S
                        console.tick()
                except (SerialException, OSError) as exc:  # the device went away (read or write)
                    console.note("lost %s: %s" % (args.url, exc))
                    status = 1
                    break
        except (KeyboardInterrupt, _Stop):
            pass
        finally:
            if old_cont is not None:
                signal.signal(signal.SIGCONT, old_cont)
            stats = console.framer.stats()
            console.note(
                "bye: %d frames in; crc_errors=%d decode_errors=%d oversize=%d resyncs=%d"
                % (stats["frames_ok"], stats["crc_errors"], stats["decode_errors"], stats["oversize"], stats["resyncs"])
            )
            if console.store is not None:
                console.store.close()
    return status


def _run_raw(port, args):
    """A plain terminal: keys to the board, its bytes to the screen; Ctrl-] leaves."""
    stdin_fd = sys.stdin.fileno()
    tty_in = os.isatty(stdin_fd)
    out = getattr(sys.stdout, "buffer", None)
    port_fd = _port_fd(port)
    saved = None
    shown = RawFilter()  # the board's bytes, minus escapes beyond what its REPL needs (tools/device/term_escape.py)
    end = None if args.duration is None else time.monotonic() + args.duration
    eof = False
    status = 0
    if tty_in:
        import termios
        import tty

        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd, termios.TCSANOW)  # TCSANOW: keys typed ahead are kept, not flushed
    sys.stderr.write("--- evhub console --raw on %s at %d baud; Ctrl-] leaves ---\r\n" % (args.url, args.baud))
    sys.stderr.flush()
    try:
        while end is None or time.monotonic() < end:
            fds = ([] if eof else [stdin_fd]) + ([port_fd] if port_fd is not None else [])
            ready = select.select(fds, [], [], POLL_S)[0] if fds else (time.sleep(POLL_S) or [])
            try:
                if stdin_fd in ready:
                    data = os.read(stdin_fd, 1024)
                    leave = b"\x1d" in data
                    data = data.split(b"\x1d", 1)[0]
                    if not tty_in:
                        data = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")  # Enter on the board is CR
                    if data:
                        port.write(data)
                    elif not leave:
                        eof = True
                    if leave:
                        break
                if port_fd is None:
                    waiting = port.in_waiting
                    data = port.read(waiting) if waiting else b""
                elif port_fd in ready:
                    data = port.read(port.in_waiting or 1)
                else:
                    data = b""
            except (SerialException, OSError) as exc:  # the device went away
                sys.stderr.write("\r\n--- lost %s: %s ---\r\n" % (args.url, exc))
                status = 1
                break
            text = shown.feed(data) if data else ""
            if text:
                if out is not None:
                    out.write(text.encode("utf-8"))
                    out.flush()
                else:
                    sys.stdout.write(text)
                    sys.stdout.flush()
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        sys.stderr.write("\r\n--- left %s ---\n" % args.url)
        sys.stderr.flush()
    return status

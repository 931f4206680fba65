"""One end of a serial line, as the console plays it: frames in and out, what the person sees, and the
commands every end has. A small class per end, behind this one interface:

- ``LineEnd``     the wire (framing, counters, sealed frames), display, requests, common commands
- ``Monitor``     no session: frames are decoded and shown, ``raw`` sends
- ``StationEnd``  a station on a hub's serial line: hello, BOOT, it acknowledges the hub's requests
- ``HubEnd``      (hubend.py) the hub end for a charge point on the line
"""

import shlex
import time

from tools.device.console import commands
from tools.device.console.render import clock_text, message_text
from tools.device.console.typed import UsageError, _int, kind_from, parse_literal
from tools.device.term_escape import escape_text
from transport import kinds as K
from transport.codec import packb, unpackb
from transport.errors import ERROR_NAMES, CodecError, FrameError, ProtocolError
from transport.framing import SEALED_MARK, SerialFramer
from transport.session import Authenticated, ClientSession, Closed, Message, PeerSilent, Reply, Timeout

QUIT_DRAIN_S = 3.0  # `quit` waits this long at most for answers still due
QUIT_LINGER_S = 0.3  # and at least this long, for frames already on their way
COUNTERS = ("crc_errors", "decode_errors", "oversize", "resyncs")


class LineEnd:
    """What every end does. Subclasses set `role` and `peer` and answer the session's events."""

    role = "monitor"
    peer = "peer"  # who is at the other end, in notes

    def __init__(self, port, out, args, wall=time.time):
        self.port = port
        self.out = out  # out(text): one line for the person
        self.args = args
        self.wall = wall
        self.framer = SerialFramer()
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.session = None
        self.pending = {}  # seq -> what we asked, for the answer line
        self.store = None
        self.noise_hint = False
        self.quit_at = None  # set by `quit`: leave once answers are in, or at this time
        self.resume_at = 0.0  # `sleep`
        self.done = False
        self.commands = commands.for_role(self.role)

    def start(self):
        self.note("monitoring %s: frames are shown; `raw [kind, seq, ...]` sends" % self.args.url)

    # -- wire

    def feed(self, data):
        for payload in self.framer.feed(data):
            if payload[:1] == SEALED_MARK:
                # Sealed with keys this console does not hold: a session from before it started,
                # or anyone's session (a monitor can show it, not verify or read it).
                seq = int.from_bytes(payload[1:5], "big") if len(payload) >= 5 else -1
                self.line(
                    "<-",
                    "sealed",
                    "%d bytes, seq=%d, MAC'd for a session this console does not hold" % (len(payload), seq),
                )
                self.on_sealed()
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

    def on_sealed(self):
        pass

    def _counters(self):
        stats = self.framer.stats()
        now = {k: stats[k] for k in COUNTERS}
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

    # -- what the person sees (through escape_text: ids, texts and names come from the wire)

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
            self.on_authenticated(ev)
        elif isinstance(ev, Message):
            if ev.kind == K.ERROR:
                f = ev.fields
                self.note("error from the %s: %s: %s" % (self.peer, ERROR_NAMES.get(f[0], f[0]), f[1]))
            else:
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
            self.note("the %s has been silent for %.0f s" % (self.peer, ev.silent_s))
        elif isinstance(ev, Closed):
            self.note("session closed: %s" % ev.text)
            self.pending.clear()
            self.flush()  # the refusal goes out before the session is replaced
            self.on_closed()

    def on_authenticated(self, ev):
        pass

    def on_message(self, m):
        pass

    def on_closed(self):
        self.session = None

    # -- commands

    def ask(self, what, kind, *fields):
        if self.session is None or not self.session.authenticated:
            raise UsageError("no session yet: %s" % self.no_session_hint)
        try:
            seq = self.session.request(kind, *fields)
        except ProtocolError as exc:
            raise UsageError(str(exc)) from None
        self.pending[seq] = what
        self.flush()
        return seq

    no_session_hint = "this end has none"

    def command(self, line):
        """Run one typed line; UsageError texts are shown to the person."""
        line = line.strip()
        if not line or line.startswith("#"):
            return
        word, _sep, rest = line.partition(" ")
        word = word.lower()
        word = "quit" if word == "exit" else word
        if word not in self.commands:
            others = commands.roles_of(word)
            if others:
                raise UsageError(
                    "`%s` is for --as %s; `help` lists this mode's commands" % (word, " or --as ".join(others))
                )
            raise UsageError("unknown command %r; `help` lists them" % word)
        if word == "raw":  # the rest of the line is a literal, not shell words
            self.do_raw(rest)
            return
        try:
            argv = shlex.split(rest)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        getattr(self, "do_" + word)(argv)

    def do_help(self, argv):
        for text in commands.help_lines(self.role):
            self.out(text)

    def do_quit(self, argv):
        self.quit_at = time.monotonic() + QUIT_DRAIN_S
        if self.pending:
            self.note("leaving once %d answer(s) are in (at most %.0f s)" % (len(self.pending), QUIT_DRAIN_S))

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

    def do_raw(self, text):
        obj = parse_literal(text.strip())
        if not isinstance(obj, (list, tuple)) or len(obj) < 2:
            raise UsageError("raw [kind, seq, field, ...]")
        self.send([kind_from(obj[0])] + list(obj[1:]))


class Monitor(LineEnd):
    role = "monitor"


class StationEnd(LineEnd):
    """A station on a hub's serial line (``evhub serve --serial URL``): it acknowledges the hub's
    requests without acting on them; `status N STATUS` reports."""

    role = "station"
    peer = "hub"
    no_session_hint = "type `hello`"

    def start(self):
        self.do_hello([])

    def on_authenticated(self, ev):
        self.note("the hub welcomed us (heartbeat %ss); sending BOOT" % ev.heartbeat_s)
        self.do_boot([])

    def on_message(self, m):
        if m.seq:
            self.session.send(K.ACK, m.seq)
            self.note("the hub asks %s (acknowledged; this console does not act on it)" % K.kind_name(m.kind))

    def on_closed(self):
        self.session = None
        self.framer.seal = None
        self.note("type `hello` to start again")

    def do_hello(self, argv):
        a = self.args
        self.session = ClientSession("station", a.id, a.key, wall=self.wall, heartbeat_s=a.heartbeat)
        self.framer.seal = self.session.seal
        self.session.start()
        self.port.write(b"\x00")  # a delimiter first: the hub's framer drops any noise before us
        self.flush()

    def do_boot(self, argv):
        a = self.args
        self.ask("boot", K.BOOT, a.lat, a.lon, a.connectors, a.max_kw, "evhub-console")

    def do_status(self, argv):
        if len(argv) not in (2, 3):
            raise UsageError("status CONNECTOR STATUS [INFO]")
        if argv[1] not in K.CONNECTOR_STATUSES:
            raise UsageError("STATUS is one of %s" % ", ".join(K.CONNECTOR_STATUSES))
        info = argv[2] if len(argv) > 2 else None
        self.ask("status %s %s" % (argv[0], argv[1]), K.STATUS, _int(argv[0], "CONNECTOR"), argv[1], info)

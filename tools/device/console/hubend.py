"""The hub end of a serial line, for a charge point on it (``evhub console PORT``, --as hub).

It is built from the hub's own pieces where they do not need the actors: the handshake is
transport's ServerSession (the one the hub's gateway runs, the same challenge, proof and MAC), keys
come from the hub's Store, and session records go into that Store with the same calls the registry
makes, acknowledged only once stored (the station deletes what is acknowledged). What it does not
do is the registry's bookkeeping (reservations, views): a person at a console is the hub's brain.
"""

from hub.store.backend import DB_ERRORS
from tools.device.console.endpoint import LineEnd
from tools.device.console.ports import has_store
from tools.device.console.typed import UsageError, _int, parse_start
from transport import kinds as K
from transport.session import S_WAIT_HELLO, ServerSession

STATION_REQUESTS = (K.BOOT, K.STATUS, K.METER, K.SESSION_START, K.SESSION_END)
TRIGGERS = ("boot", "status", "meter")


class HubEnd(LineEnd):
    role = "hub"
    peer = "station"
    no_session_hint = "wait for the station's hello"

    def __init__(self, *a, **kw):
        LineEnd.__init__(self, *a, **kw)
        self.connectors = {}  # connector -> (status, info), from the station's STATUS
        self.running = {}  # session id -> connector, from SESSION_START/END
        self.station_id = None
        self.stale_hint = False

    def start(self):
        self.session = self._server()
        self.note("hub end of %s: waiting for a station's hello (%s)" % (self.args.url, self._key_source()))

    def _key_source(self):
        if self.args.key:
            return "key from --key" + (" for %s" % self.args.id if self.args.id else "")
        return "keys from %s" % self.args.db

    def _server(self):
        session = ServerSession(self._lookup_key, wall=self.wall, heartbeat_s=self.args.heartbeat)
        self.framer.seal = session.seal  # frames after the handshake carry the session's MAC
        return session

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
        except (ValueError, OSError) + DB_ERRORS as exc:  # StoreError is a ValueError: refuse, keep going
            self.note("cannot read keys from %s: %s" % (self.args.db, exc))
            return None
        if key is None:
            self.note("%s is not in %s: it will be refused (give --key, or provision it)" % (peer_id, self.args.db))
        return key

    # -- the station's side of the session

    def on_sealed(self):
        if self.session is not None and self.session.state == S_WAIT_HELLO:
            self._session_from_before()

    def _session_from_before(self):
        # A station that had a session with someone else before us. Refusing would keep it busy
        # answering; silence makes it notice (3 heartbeats) and say hello again.
        if not self.stale_hint:
            self.stale_hint = True
            self.note(
                "the station talks as if in a session from before; it says hello again once it "
                "notices the silence (3 heartbeats), or reset it"
            )

    def receive(self, obj):
        kind = obj[0] if isinstance(obj, (list, tuple)) and obj else None
        if kind == K.HELLO and self.session.state != S_WAIT_HELLO:
            self.flush()
            self.session = self._server()
            self.pending.clear()
            self.note("the station says hello again: new session")
        elif self.session.state == S_WAIT_HELLO and kind != K.HELLO:
            self._session_from_before()
            return
        LineEnd.receive(self, obj)

    def on_authenticated(self, ev):
        self.note("station %s authenticated; type `help` for commands" % ev.peer_id)

    def on_closed(self):
        self.session = self._server()

    def on_message(self, m):
        f = m.fields
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
        if self.store is None and has_store(self.args.db):
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
        except (ValueError, OSError) + DB_ERRORS as exc:  # not stored, so not acknowledged
            self.note(
                "%s %s not acknowledged: storing it in %s failed: %s" % (K.kind_name(kind), f[0], self.args.db, exc)
            )
            return False
        self.note("%s %s stored in %s" % (K.kind_name(kind), f[0], self.args.db))
        return True

    # -- commands (they go to the station)

    def do_status(self, argv):
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
        import json

        try:
            value = json.loads(argv[1])
        except ValueError:
            value = argv[1]
        self.ask("config %s" % argv[0], K.CONFIGURE, argv[0], value)

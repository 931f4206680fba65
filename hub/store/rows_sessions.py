"""The charging-session rows of the store (a mixin of Store: it uses the connection, `_tx` and `_now`)."""

MAX_LISTED_SESSIONS = 50  # SESSIONS is one frame: the newest 50 keep it a few KB
_SESSION_KEYS = (
    "session_id",
    "station_id",
    "connector",
    "vehicle_id",
    "reservation_id",
    "meter_start_wh",
    "energy_wh",
    "started",
    "ended",
    "reason",
    "claimed_vehicle_id",
    "implausible",
)


class SessionRows:
    def record_session_start(
        self,
        session_id,
        station_id,
        connector,
        vehicle_id,
        reservation_id,
        meter_start_wh,
        started,
        claimed_vehicle_id=None,
    ):
        """Record a session start; returns False if this session id is already known (a replay).
        vehicle_id is the vehicle the hub attributed it to (None: a local session); claimed_vehicle_id
        what the station named when that differs."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO sessions (session_id, station_id, connector, vehicle_id, reservation_id,"
                " meter_start_wh, started, claimed_vehicle_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (
                    session_id,
                    station_id,
                    connector,
                    vehicle_id,
                    reservation_id,
                    meter_start_wh,
                    started,
                    claimed_vehicle_id,
                ),
            )
        return cur.rowcount == 1

    def record_session_end(
        self,
        session_id,
        station_id,
        connector,
        vehicle_id,
        reservation_id,
        energy_wh,
        started,
        ended,
        reason,
        claimed_vehicle_id=None,
        implausible=False,
    ):
        """Record a session end; returns False if it was already recorded (a replay).

        A session whose start never reached the hub is recorded whole from its end.
        """
        with self._tx() as db:
            row = db.execute("SELECT ended FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            if row is not None and row[0] is not None:
                return False
            if row is None:
                db.execute(
                    "INSERT INTO sessions (session_id, station_id, connector, vehicle_id, reservation_id, energy_wh,"
                    " started, ended, reason, claimed_vehicle_id, implausible) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        station_id,
                        connector,
                        vehicle_id,
                        reservation_id,
                        energy_wh,
                        started,
                        ended,
                        reason,
                        claimed_vehicle_id,
                        int(bool(implausible)),
                    ),
                )
            else:
                db.execute(
                    "UPDATE sessions SET energy_wh = ?, ended = ?, reason = ?, implausible = ?,"
                    " reservation_id = COALESCE(reservation_id, ?) WHERE session_id = ?",
                    (energy_wh, ended, reason, int(bool(implausible)), reservation_id, session_id),
                )
        return True

    def get_session(self, session_id):
        row = self._db.execute(
            "SELECT %s FROM sessions WHERE session_id = ?" % ", ".join(_SESSION_KEYS), (session_id,)
        ).fetchone()
        return None if row is None else dict(zip(_SESSION_KEYS, row))

    def vehicle_reservations(self, vehicle_id, limit=MAX_LISTED_SESSIONS):
        """A vehicle's reservations in every state, newest window first (at most `limit`), as the
        wire maps RESERVATIONS carries (`evhub vehicle reservations --all`)."""
        rows = self._db.execute(
            'SELECT id, station_id, connector, start, "end", state FROM reservations WHERE vehicle_id = ?'
            " ORDER BY start DESC, id DESC LIMIT ?",
            (vehicle_id, limit),
        )
        keys = ("reservation_id", "station_id", "connector", "start", "end", "state")
        return [dict(zip(keys, r)) for r in rows]

    def vehicle_sessions(self, vehicle_id, limit=MAX_LISTED_SESSIONS):
        """A vehicle's sessions, newest first (at most `limit`), as wire maps: what SESSIONS carries."""
        rows = self._db.execute(
            "SELECT session_id, station_id, connector, reservation_id, energy_wh, started, ended, reason"
            " FROM sessions WHERE vehicle_id = ? ORDER BY started DESC NULLS LAST, session_id LIMIT ?",
            (vehicle_id, limit),
        )
        keys = ("session_id", "station_id", "connector", "reservation_id", "energy_wh", "started", "ended", "reason")
        return [dict(zip(keys, r)) for r in rows]

    def load_open_sessions(self):
        """Sessions started and not ended, as dicts (they occupy connectors after a restart)."""
        rows = self._db.execute(
            "SELECT %s FROM sessions WHERE ended IS NULL ORDER BY started" % ", ".join(_SESSION_KEYS)
        )
        return [dict(zip(_SESSION_KEYS, r)) for r in rows]

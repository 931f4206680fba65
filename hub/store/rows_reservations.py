"""The reservation rows of the store (a mixin of Store: it uses the connection, `_tx` and `_now`)."""

from hub.store import requests as store_requests
from hub.store.errors import StoreConflict, StoreError

RESERVATION_STATES = ("confirmed", "fulfilled", "cancelled", "expired")

_RES_COLS = 'id, vehicle_id, station_id, connector, start, "end", state, created, updated'
_RES_KEYS = ("id", "vehicle_id", "station_id", "connector", "start", "end", "state", "created", "updated")


class ReservationRows:
    def insert_reservations(self, rows):
        """Insert confirmed reservations in ONE transaction (one fsync); returns, in order, each new
        id or a StoreConflict for a row the database refused: its window overlaps a confirmed one
        on that connector (PostgreSQL's exclusion constraint: another hub booked it first) or its
        (vehicle, request_id) is taken. The other rows of the batch are stored all the same.

        rows: iterable of (vehicle_id, station_id, connector, start, end[, request_id]). On any
        other error nothing is written and the exception propagates.
        """
        now = self._now()
        params = [tuple(row[:5]) + (now, now, row[5] if len(row) > 5 else None) for row in rows]
        sql = (
            'INSERT INTO reservations (vehicle_id, station_id, connector, start, "end", state, created, updated,'
            " request_id) VALUES (?, ?, ?, ?, ?, 'confirmed', ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"
        )
        if self.is_postgres:
            import time as _t

            _a = _t.perf_counter()
            out = self._insert_reservations_pg(params, now)
            self._tinsert = getattr(self, "_tinsert", 0.0) + _t.perf_counter() - _a
        else:
            out = []
            with self._tx() as db:
                for p in params:
                    row = db.execute(sql, p).fetchone()
                    out.append(row[0] if row else None)
        return [
            rid
            if rid is not None
            else StoreConflict(
                "station %s connector %d is already booked in [%d, %d) (or request %s is taken)"
                % (p[1], p[2], p[3], p[4], p[7])
            )
            for rid, p in zip(out, params)
        ]

    def _insert_reservations_pg(self, params, now):
        """PostgreSQL: the whole batch as ONE statement over arrays (one round trip, and in autocommit
        one implicit transaction: one commit, one WAL flush). Rows the constraints refuse are skipped
        by ON CONFLICT DO NOTHING (also against earlier rows of the same batch); RETURNING names the
        stored ones, matched back to the batch by their values. Each row carries its station's
        number, which the exclusion constraint keys on (migration 8), looked up per row (a join
        could reorder the rows, and ids follow the batch's order); an unknown station leaves it
        NULL, which NOT NULL refuses as the foreign key would."""
        if not params:
            return []
        cols = list(zip(*params))
        rows = self._db.execute(
            'INSERT INTO reservations (vehicle_id, station_id, connector, start, "end", state, created, updated,'
            " request_id, station_num) SELECT v, s, c, b, e, 'confirmed', %s, %s, r,"
            " (SELECT num FROM stations WHERE id = t.s)"
            " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[])"
            " AS t(v, s, c, b, e, r) ON CONFLICT DO NOTHING"
            ' RETURNING id, vehicle_id, station_id, connector, start, "end", request_id',
            (now, now, list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]), list(cols[4]), list(cols[7])),
        ).fetchall()
        stored = {}
        for row in sorted(rows):  # ids in insertion order: equal rows (connector 0) get theirs in order
            stored.setdefault(tuple(row[1:]), []).append(row[0])
        out = []
        for p in params:
            ids = stored.get((p[0], p[1], p[2], p[3], p[4], p[7]))
            out.append(ids.pop(0) if ids else None)
        return out

    def update_reservation_state(self, reservation_id, state):
        """Set one reservation's state; returns False if there is no such reservation."""
        return self.update_reservation_states(((reservation_id, state),)) == 1

    def update_reservation_states(self, changes):
        """[(reservation_id, state)] in one transaction; returns how many rows changed."""
        changes = list(changes)
        for _rid, state in changes:
            if state not in RESERVATION_STATES:
                raise StoreError("reservation state must be one of %s, got %r" % (", ".join(RESERVATION_STATES), state))
        if not changes:
            return 0
        now = self._now()
        n = 0
        with self._tx() as db:
            for rid, state in changes:
                n += db.execute(
                    "UPDATE reservations SET state = ?, updated = ? WHERE id = ?", (state, now, rid)
                ).rowcount
        return n

    def move_reservations(self, moves):
        """[(reservation_id, connector)] in one transaction (a station turned out to have fewer connectors)."""
        now = self._now()
        with self._tx() as db:
            for rid, connector in moves:
                db.execute("UPDATE reservations SET connector = ?, updated = ? WHERE id = ?", (connector, now, rid))

    def reservation_for_request(self, vehicle_id, request_id):
        """The reservation this vehicle booked with this RESERVE request_id, as a dict, or None."""
        row = store_requests.reservation_for_request(self._db, vehicle_id, request_id)
        keys = ("reservation_id", "station_id", "connector", "start", "end", "state")
        return None if row is None else dict(zip(keys, row))

    def get_reservation(self, reservation_id):
        row = self._db.execute("SELECT %s FROM reservations WHERE id = ?" % _RES_COLS, (reservation_id,)).fetchone()
        return None if row is None else dict(zip(_RES_KEYS, row))

    def load_open_reservations(self, station_id=None):
        """Every confirmed reservation (of one station, when given), as dicts, oldest id first: the
        book's startup load, and its refresh of a station after the database refused a window."""
        if station_id is None:
            rows = self._db.execute("SELECT %s FROM reservations WHERE state = 'confirmed' ORDER BY id" % _RES_COLS)
        else:
            rows = self._db.execute(
                "SELECT %s FROM reservations WHERE state = 'confirmed' AND station_id = ? ORDER BY id" % _RES_COLS,
                (station_id,),
            )
        return [dict(zip(_RES_KEYS, r)) for r in rows]

"""Who may connect: device keys and vehicle tokens, looked up from the store by the I/O loop.

Keys are never cached: every handshake reads the key from the database (a primary
key lookup, microseconds), so a key replaced or removed with the CLI is refused at
the very next login. A miss is remembered briefly, so a flood of unknown ids
cannot turn into a flood of queries.
"""

import sqlite3
import time

NEGATIVE_TTL_S = 5.0
OPERATOR_ID = "operator"


class KeyLookup:
    def __init__(self, config):
        self.db = config["db"]
        host = config["listen"].split("//")[-1].rsplit(":", 1)[0].strip("[]")
        # Read-only operator access without a key only when nobody off this machine can connect.
        self.open_reads = config["open_loopback_reads"] and (host.startswith("127.") or host in ("localhost", "::1"))
        self._conn = None
        self._cache = {}
        self._misses = {}

    def _query(self, role, peer_id):
        if self._conn is None:
            self._conn = sqlite3.connect(self.db, check_same_thread=False)
        if role == "station":
            row = self._conn.execute("SELECT key FROM stations WHERE id = ? AND removed IS NULL", (peer_id,)).fetchone()
        elif role == "vehicle":
            row = self._conn.execute("SELECT token FROM vehicles WHERE id = ? AND removed IS NULL", (peer_id,)).fetchone()
        else:
            return b"" if self.open_reads and peer_id == OPERATOR_ID else None
        return row[0] if row else None

    def lookup(self, role, peer_id):
        missed = self._misses.get((role, peer_id))
        if missed is not None and time.monotonic() - missed < NEGATIVE_TTL_S:
            return None
        key = self._query(role, peer_id)
        if key is None:
            if len(self._misses) > 10000:
                self._misses.clear()
            self._misses[(role, peer_id)] = time.monotonic()
            return None
        return key

    def forget(self, role, peer_id):
        self._cache.pop((role, peer_id), None)

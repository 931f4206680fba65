"""Who may connect: device keys and vehicle tokens, looked up from the store by the I/O loop.

Keys are never cached: every handshake reads the key from the database (a primary
key lookup, microseconds), so a key replaced or removed with the CLI is refused at
the very next login. A miss is remembered briefly, so a flood of unknown ids
cannot turn into a flood of queries.
"""

import time

from hub import operatorkey
from hub.store.store import Store

NEGATIVE_TTL_S = 5.0
OPERATOR_ID = "operator"


class KeyLookup:
    def __init__(self, config):
        self.db = config["db"]
        # The operator proves a real key (never an empty one), whatever the listen address.
        self.operator_key = operatorkey.ensure(self.db)
        self._conn = None
        self._misses = {}

    def _query(self, role, peer_id):
        if role == "station":
            return self._store().get_station_key(peer_id)
        if role == "vehicle":
            return self._store().get_vehicle_token(peer_id)
        return self.operator_key if role == "operator" and peer_id == OPERATOR_ID else None

    def _store(self):
        if self._conn is None:
            self._conn = Store(self.db, shared=True)  # opened by the I/O loop's first login
        return self._conn

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

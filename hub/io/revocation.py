"""Revocation: keys replaced or removed with the CLI stop working on the running hub.

The CLI writes the store, not the hub: `evhub stations|vehicles add --replace` and
`evhub stations|vehicles remove` append a row to the `revocations` table in the same
transaction as the key change. This watch polls that table from the I/O loop every
POLL_S (one indexed MAX() read) and, for each new row:
  - closes the link open on the old key (the peer may log in again with a new one);
  - on a removal, tells the registry (a removed station leaves the map) and the book
    (the reservations the CLI cancelled leave memory; their vehicles are told).
New logins are refused at once anyway: the key lookup reads the store every time.

Bound: a link open on a revoked key is closed within POLL_S plus one loop wakeup
(~0.25 s). A handshake that read the old key just before the change and completes
just after the poll is caught by `revoked_since` when it comes up.
"""

import asyncio
import logging
import time

from hub.messages import PeerRemoved, StationRemoved
from hub.store.backend import DB_ERRORS
from hub.store.store import Store

log = logging.getLogger(__name__)

POLL_S = 0.25
RECENT_S = 30.0  # longer than any handshake may take (handshake_timeout_s is 10 s by default)
MAX_ROWS = 1000  # per poll: a burst of revocations is worked through over several polls


class RevocationWatch:
    def __init__(self, db_path, gateway, registry, book, clock=time.monotonic):
        self.db_path = str(db_path)
        self.gateway = gateway
        self.registry = registry
        self.book = book
        self.clock = clock
        self._db = None
        self.last_seq = None
        self.recent = {}  # (role, peer_id) -> clock() when its revocation was seen
        self._task = None

    def _conn(self):
        if self._db is None:
            self._db = Store(self.db_path)
        return self._db

    def start(self, loop):
        # Revocations written before this hub started are already in force (keys are read per login).
        self.last_seq = self._conn().last_revocation()
        self._task = loop.create_task(self._run())
        return self

    async def _run(self):
        while True:
            await asyncio.sleep(POLL_S)
            try:
                self.poll()
            except DB_ERRORS as exc:  # a locked or vanished store: try again at the next poll
                log.warning("revocations: cannot read the store: %s", exc)

    def stop(self):
        if self._task is not None:
            self._task.cancel()
        if self._db is not None:
            self._db.close()
            self._db = None

    def poll(self):
        rows = self._conn().revocations_after(self.last_seq, MAX_ROWS)
        now = self.clock()
        for seq, role, peer_id, why in rows:
            self.last_seq = seq
            self.recent[(role, peer_id)] = now
            self._close_links(role, peer_id, why)
            if why == "removed":
                if role == "station":
                    self.registry.tell(StationRemoved(peer_id))
                self.book.tell(PeerRemoved(role, peer_id))
        if self.recent:
            for key in [k for k, t in self.recent.items() if now - t > RECENT_S]:
                del self.recent[key]

    def _close_links(self, role, peer_id, why):
        closed = 0
        for link in list(self.gateway.links.values()):
            s = link.session
            if not link.closed and s.authenticated and s.role == role and s.peer_id == peer_id:
                log.warning("%s: %s, closing its link", link.label, why)
                link.shutdown()
                closed += 1
        if not closed:
            log.info("%s %s: %s (no link open)", role, peer_id, why)

    def revoked_since(self, role, peer_id, opened_at):
        """True when (role, peer_id)'s key was revoked after a link opened at `opened_at` (clock())."""
        t = self.recent.get((role, peer_id))
        return t is not None and t >= opened_at

"""VehicleTracker: the last known position (and charge) of every vehicle.

Positions arrive every 60 s per vehicle, tens of thousands a second in total,
so the gateway sends them here in batches, one `tell` per loop wakeup.

Last positions survive a hub restart: with a store, the positions that changed are written in one
transaction at most every FLUSH_S (never one write per POSITION), and once more when the actor
stops; at start they are loaded back. A `kill -9` loses at most the last FLUSH_S of positions.
"""

import logging
import time
from typing import Any, Callable, Optional

import pykka

from hub.domain.bounds import INT64_LIMIT
from hub.store import ops as store_ops
from hub.store.backend import DB_ERRORS
from hub.messages import FlushPositions, Positions

log = logging.getLogger(__name__)

FLUSH_S = 5.0


class VehicleTracker(pykka.ThreadingActor):
    def __init__(self, store_factory: Optional[Callable[[], Any]] = None, flush_s: float = FLUSH_S) -> None:
        super().__init__()
        self.last: "dict[str, tuple[Any, ...]]" = {}  # vehicle id -> (lat, lon, time, soc); read by the HTTP API/sim as a snapshot
        self._store_factory = store_factory
        self._store: Any = None
        self._flush_s = flush_s
        self._dirty: "set[str]" = set()
        self._flushed_at = time.monotonic()

    def on_start(self) -> None:
        if self._store_factory is None:
            return
        self._store = self._store_factory()  # the sqlite connection belongs to this thread
        for vehicle_id, lat, lon, when, soc in store_ops.load_positions(self._store):
            self.last.setdefault(vehicle_id, (lat, lon, when, soc))
        log.info("tracker: %d last vehicle positions loaded", len(self.last))

    def on_stop(self) -> None:
        self._flush()
        if self._store is not None:
            self._store.close()

    def _flush(self) -> None:
        if self._store is None or not self._dirty:
            return
        last = self.last
        # A time the wire allowed but SQLite's 64-bit INTEGER cannot hold would fail the whole batch.
        rows = [(vid,) + last[vid] for vid in self._dirty if vid in last and _storable(last[vid][2])]
        self._dirty = set()
        self._flushed_at = time.monotonic()
        try:
            store_ops.save_positions(self._store, rows)
        except DB_ERRORS + (OverflowError, ValueError, TypeError) as exc:
            # Positions are advisory: keep tracking, try again next time. OverflowError: a time from the
            # wire too large for SQLite's 64-bit INTEGER (the fuzz test sends such).
            log.warning("tracker: could not save %d vehicle positions: %s", len(rows), exc)

    def on_receive(self, message: object) -> None:
        if type(message) is Positions:
            last = self.last
            for vehicle_id, lat, lon, when, soc in message.batch:
                last[vehicle_id] = (lat, lon, when, soc)
            if self._store is not None:
                self._dirty.update(p[0] for p in message.batch)
                if time.monotonic() - self._flushed_at >= self._flush_s:
                    self._flush()
        elif type(message) is FlushPositions:
            self._flush()
        else:
            log.error("tracker: unknown message %s", type(message).__name__)


def _storable(when: Any) -> bool:
    return when is None or (type(when) is int and -INT64_LIMIT <= when < INT64_LIMIT)

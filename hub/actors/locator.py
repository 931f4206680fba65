"""LocatorActor: the thin Pykka actor around hub/domain/locator.py.

Messages: Upsert, UpsertMany, RemoveStation, Subscribe (answered with NearbySource).
Readers on other threads never ask it: they hold its PublishedIndex (from the constructor
or `snapshot_source()`), whose `current` is a frozen SpatialIndex swapped by reference.
Publishing is coalesced: a new snapshot is made only when the inbox is empty, so a burst
of 100k upserts costs one snapshot, not 100k.
"""

import logging
from typing import Iterable, Optional

import pykka

from hub.domain.locator import DEFAULT_CELL_DEG, PublishedIndex, SpatialIndex
from hub.messages import NearbySource, RemoveStation, Subscribe, Upsert, UpsertMany

log = logging.getLogger(__name__)


class LocatorActor(pykka.ThreadingActor):
    def __init__(
        self,
        published: Optional[PublishedIndex] = None,
        cell_deg: float = DEFAULT_CELL_DEG,
        stations: "Iterable[tuple[str, float, float]]" = (),
    ) -> None:
        super().__init__()
        self.index = SpatialIndex(cell_deg)
        self.published = published if published is not None else PublishedIndex()
        self._initial: "list[tuple[str, float, float]]" = list(stations)  # (station_id, lat, lon)
        self._dirty = False

    def on_start(self) -> None:
        for station_id, lat, lon in self._initial:
            self._upsert(station_id, lat, lon)
        self._initial = []
        self._publish()

    def snapshot_source(self) -> PublishedIndex:
        """The PublishedIndex readers use (fetch it once, at wiring time, from outside any actor)."""
        return self.published

    def _publish(self) -> None:
        self.published.publish(self.index.frozen())
        self._dirty = False

    def _upsert(self, station_id: str, lat: float, lon: float) -> None:
        try:
            if self.index.upsert(station_id, lat, lon):
                self._dirty = True  # a BOOT that repeats a known position changes nothing to publish
        except ValueError as exc:
            log.warning("station %s: not indexed, bad position: %s", station_id, exc)

    def on_receive(self, message: object) -> None:
        try:
            if type(message) is Upsert:
                self._upsert(message.station_id, message.lat, message.lon)
            elif type(message) is UpsertMany:
                for station_id, lat, lon in message.stations:
                    self._upsert(station_id, lat, lon)
            elif type(message) is RemoveStation:
                if self.index.remove(message.station_id):
                    self._dirty = True
                    log.info("station %s: removed from the locator", message.station_id)
            elif type(message) is Subscribe:
                message.actor_ref.tell(NearbySource(self.published))
            else:
                log.error("locator: unknown message %s", type(message).__name__)
        except Exception:
            log.exception("locator: failed handling %s", type(message).__name__)
        # Coalesce: one snapshot per burst, made when nothing else is waiting.
        if self._dirty and self.actor_inbox.empty():
            self._publish()
        return None

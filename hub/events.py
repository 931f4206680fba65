"""EventBus: hub events fanned out to live subscribers (the HTTP API's event stream).

Actors publish from their own threads: `publish(kind, data)` appends to a pending
list under a lock and schedules ONE drain in the I/O loop per burst (the same hop
the gateway's Outbox makes), so an actor never waits for a subscriber. In the
loop each event becomes a JSON document once, gets an increasing id, is kept in a
small replay ring (a reconnecting client resumes with Last-Event-ID), is shown to
listeners (metrics, the live-session mirror) and offered to every subscriber.

Event ids increase, also across restarts (they start from the clock in microseconds).
A subscriber has a bounded queue. One that falls behind by `max_queue` events is
dropped (its stream is cut; it reconnects and resumes from the ring), it never
makes the bus or the other clients wait.

Event kinds and their data (all times UTC epoch seconds on the hub clock):
  station        a station's view changed: the station document + previous_status
  reservation    {reservation_id, station_id, vehicle_id, connector, start, end, state}
  session_start  {session_id, station_id, connector, vehicle_id, reservation_id, started, expected_end, ...}
  meter          {station_id, connector, session_id, vehicle_id, energy_wh, power_w, time}
  session_end    {session_id, station_id, connector, vehicle_id, reservation_id, energy_wh, started, ended, reason}
  positions      {vehicles: [{id, lat, lon, time, soc}]}  (made in the loop; not kept for replay)
"""

import collections
import json
import logging
import time

from hub.io.loophop import LoopHop

log = logging.getLogger(__name__)

MAX_PENDING = 100_000  # events waiting for the loop; past this the loop is stuck and we shed
RING_SIZE = 2048
DEFAULT_MAX_QUEUE = 1000


def station_doc(v, last_heartbeat=None):
    """A StationView as JSON (the shape of GET /api/stations items)."""
    return {
        "id": v.id,
        "lat": v.lat,
        "lon": v.lon,
        "status": v.status,
        "free_in_min": v.free_in_min,
        "free_at": None if v.free_at is None else int(v.free_at),
        "connectors": v.connectors,
        "connector_status": {str(n): s for n, s in sorted(v.connector_status.items())},
        "max_kw": v.max_kw,
        "online": v.online,
        "last_seen": None if v.last_seen is None else int(v.last_seen),
        "last_heartbeat": None if last_heartbeat is None else int(last_heartbeat),
        "name": getattr(v, "name", None),  # place label (`stations add --name`), or null
        "mismatch": getattr(v, "mismatch", None),  # provisioned vs reported capacity (hub.domain.capacity), or null
    }


# A STATIONS entry on the wire (transport/PROTOCOL.md): these fields of the document above.
WIRE_STATION_KEYS = ("id", "lat", "lon", "status", "free_in_min", "connectors", "max_kw", "connector_status", "last_seen")


def station_entry(v):
    """A StationView as one entry of the wire's STATIONS list."""
    doc = station_doc(v)
    return {k: doc[k] for k in WIRE_STATION_KEYS}


def reservation_doc(r):
    """A booking.Reservation (or a store row dict) as JSON."""
    if isinstance(r, dict):
        return {
            "reservation_id": r["id"],
            "station_id": r["station_id"],
            "vehicle_id": r["vehicle_id"],
            "connector": r["connector"],
            "start": r["start"],
            "end": r["end"],
            "state": r["state"],
        }
    return {
        "reservation_id": r.id,
        "station_id": r.station_id,
        "vehicle_id": r.vehicle_id,
        "connector": r.connector,
        "start": r.start,
        "end": r.end,
        "state": r.state,
    }


def _doc(kind, data):
    if kind == "station":
        view, previous = data
        doc = station_doc(view)
        doc["previous_status"] = previous
        return doc
    if kind == "reservation":
        return reservation_doc(data)
    return data


class Subscriber:
    """One live client: a bounded queue of encoded events and a wake-up event (loop only)."""

    def __init__(self, max_queue, on_drop):
        self.queue = collections.deque()
        self.max_queue = max_queue
        self.dropped = False
        self._on_drop = on_drop
        self.wake = None  # asyncio.Event, created by the consumer in the loop

    def offer(self, payload):
        if self.dropped:
            return
        if len(self.queue) >= self.max_queue:
            self.dropped = True
            self.queue.clear()
            self._on_drop(self)
        else:
            self.queue.append(payload)
        if self.wake is not None:
            self.wake.set()


class EventBus:
    def __init__(self, loop, max_queue=DEFAULT_MAX_QUEUE, ring_size=RING_SIZE):
        self.loop = loop
        self.max_queue = max_queue
        self._hop = LoopHop(loop, self._deliver, limit=MAX_PENDING)  # a stuck loop sheds events
        self.subscribers = set()
        self.ring = collections.deque(maxlen=ring_size)  # (id, payload bytes)
        # Ids start from the wall clock in microseconds, so they keep growing across hub restarts: a
        # client resuming with an id from an earlier run gets this run's whole ring, not nothing.
        self.last_id = int(time.time() * 1_000_000)
        self.counts = collections.Counter()  # events by kind
        self.dropped_clients = 0
        self.listeners = []  # callables(kind, doc), run in the loop for every event

    # --- any thread ---------------------------------------------------------------------

    def publish(self, kind, data):
        self._hop.post((kind, data))

    @property
    def shed(self):
        """Published while the loop was stuck, never delivered."""
        return self._hop.shed

    # --- the loop ---------------------------------------------------------------------

    def _deliver(self, items):
        for kind, data in items:
            try:
                self.emit(kind, _doc(kind, data))
            except Exception:  # one malformed event must not lose the rest of the burst
                log.exception("events: cannot deliver a %s event", kind)

    def emit(self, kind, doc, replay=True):
        """Deliver one event made in the loop; returns its id."""
        self.counts[kind] += 1
        for listener in self.listeners:
            listener(kind, doc)
        self.last_id += 1
        payload = (
            "id: %d\nevent: %s\ndata: %s\n\n"
            % (self.last_id, kind, json.dumps(doc, separators=(",", ":"), allow_nan=False))
        ).encode()
        if replay:
            self.ring.append((self.last_id, payload))
        for sub in list(self.subscribers):
            sub.offer(payload)
        return self.last_id

    def subscribe(self, last_event_id=None):
        """A new Subscriber, preloaded with the events after last_event_id still in the ring."""
        sub = Subscriber(self.max_queue, self._dropped)
        if last_event_id is not None:
            for event_id, payload in self.ring:
                if event_id > last_event_id:
                    sub.offer(payload)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub):
        self.subscribers.discard(sub)

    def _dropped(self, sub):
        self.dropped_clients += 1
        self.subscribers.discard(sub)
        log.warning("events: a subscriber fell %d events behind and was dropped", sub.max_queue)

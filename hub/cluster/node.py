"""One hub's membership of the cluster: the threads and connections that join it to the others.

ClusterNode is what the daemon starts when the store is PostgreSQL. It owns:
- a sync thread that beats for this hub, writes the live views of the stations homed here (coalesced,
  at most one write per station per beat) and reads the other hubs' views, handing them to the
  registry as RemoteViews (every beat, and at once when a NOTIFY says a view changed);
- the LISTEN thread (bus.Listener), whose handlers only `tell`;
- one connection for the calls the actors make (claim, release, send), serialized by psycopg.

Actors never wait on another hub: everything here is a table write or a tell.
"""

import base64
import logging
import threading
import time
from typing import Any, Optional

import msgpack
import psycopg

from hub.store.backend import connect_pg, mask

from hub.cluster import membership, requests, schema, status
from hub.cluster.bus import Listener
from hub.domain.stations import StationView
from hub.messages import (
    HomeMoved,
    RemoteAnswer,
    RemoteRequest,
    RemoteViews,
    ReservationChanged,
    ResyncReservations,
    SessionsChanged,
)

log = logging.getLogger(__name__)

RESYNC_S = 30.0  # the books re-read the open reservations this often, in case news was lost


class ClusterNode:
    def __init__(self, dsn: str, hub_id: str, address: str = "", beat_s: float = membership.BEAT_S) -> None:
        self.dsn = dsn
        self.hub_id = hub_id
        self.address = address
        self.beat_s = beat_s
        self.registry: Any = None  # set by the daemon before start(): pykka refs
        self.book: Any = None
        self.outbox: Any = None  # the gateway's Outbox: messages for vehicles whose link is here
        self._calls: Any = None  # the actors' connection
        self._lock = threading.Lock()
        self._outgoing: "dict[str, tuple[StationView, int]]" = {}  # views to write, latest per station
        self._dirty: "set[str]" = set()  # remote views a NOTIFY said changed
        self._news: "list[str]" = []  # reservation changes to announce ("id station state"), in order
        self._session_news: "set[str]" = set()  # stations whose open sessions changed here
        self._seen: "dict[str, StationView]" = {}  # remote views as last handed to the registry
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sync = threading.Thread(target=self._run, name="cluster-sync", daemon=True)
        self._listener = Listener(
            dsn,
            {
                schema.CH_STATUS: self._on_status,
                schema.CH_HOME: self._on_home,
                schema.CH_RESERVATION: self._on_reservation,
                schema.CH_VEHICLE: self._on_vehicle,
                schema.CH_SESSIONS: self._on_sessions,
                schema.hub_channel(hub_id): self._on_request,
            },
            resync=self._resync,
        )

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> "ClusterNode":
        self._calls = connect_pg(self.dsn)
        schema.apply(self._calls)
        membership.beat(self._calls, self.hub_id, self.address)
        self._sync.start()
        self._listener.start()
        log.info("cluster: hub %s joined %s (live hubs: %s)", self.hub_id, mask(self.dsn), ", ".join(self.live_hubs()))
        return self

    def stop(self) -> None:
        """A clean stop: this hub's stations have no home until they reconnect elsewhere."""
        self._stop.set()
        self._wake.set()
        self._listener.stop()
        self._sync.join(5)
        try:
            with self._lock:
                membership.leave(self._calls, self.hub_id)
        except psycopg.Error as exc:
            log.warning("cluster: could not leave cleanly: %s", exc)
        self._calls.close()

    # --- calls from actors ----------------------------------------------------------------------------

    def claim(self, station_id: str) -> int:
        with self._lock:
            return membership.claim(self._calls, station_id, self.hub_id)

    def release(self, station_id: str, epoch: int) -> None:
        with self._lock:
            membership.release(self._calls, station_id, self.hub_id, epoch)
        with self._lock:
            self._outgoing.pop(station_id, None)

    def publish(self, view: StationView, epoch: int) -> None:
        """Queue a home station's view; the sync thread writes the latest one within a beat."""
        with self._lock:
            self._outgoing[view.id] = (view, epoch)
        self._wake.set()

    def announce_reservation(self, reservation_id: int, station_id: str, state: str) -> None:
        """Queue the news of a committed change; the sync thread sends it at once, many per NOTIFY.

        Never on the book's thread: one round trip per reservation would bound the book by the
        database's latency. News lost (a hub killed between its COMMIT and this) is still in the
        table: every book re-reads the open reservations when its listener connects, when a station
        comes online, and every RESYNC_S.
        """
        with self._lock:
            self._news.append("%s %d %s %s" % (self.hub_id, reservation_id, station_id, state))
        self._wake.set()

    def announce_sessions(self, station_id: str) -> None:
        """A session started or ended at a station homed here: the other books re-read its open sessions
        (a connector busy with a session is not booked by another hub). Sent by the sync thread."""
        with self._lock:
            self._session_news.add(station_id)
        self._wake.set()

    def send(self, station_id: str, kind: str, body: "dict[str, Any]") -> Optional[int]:
        """Ask the station's home to relay a request; its answer comes back as RemoteAnswer."""
        with self._lock:
            return requests.send(self._calls, station_id, kind, body, reply_hub=self.hub_id)

    def answer(self, request: RemoteRequest, reply: Any) -> None:
        req = requests.HubRequest(
            request.request_id, request.station_id, request.epoch, request.kind, request.body, request.reply_hub
        )
        with self._lock:
            requests.answer(self._calls, req, reply)

    def to_vehicle(self, vehicle_id: str, msg: Any) -> None:
        """A message for a vehicle whose link is on another hub: whichever hub holds it delivers it."""
        payload = "%s %s" % (vehicle_id, base64.b64encode(msgpack.packb(msg, use_bin_type=True)).decode())
        with self._lock:
            self._calls.execute("SELECT pg_notify(%s, %s)", (schema.CH_VEHICLE, payload))

    def live_hubs(self) -> "list[str]":
        with self._lock:
            return membership.live_hubs(self._calls)

    # --- notifications (listener thread: tell only) ----------------------------------------------------

    def _on_status(self, station_id: str) -> None:
        with self._lock:
            self._dirty.add(station_id)
        self._wake.set()

    def _on_home(self, payload: str) -> None:
        parts = payload.split(" ")
        if len(parts) == 3 and self.registry is not None:
            hub_id = None if parts[1] == "-" else parts[1]
            self.registry.tell(HomeMoved(parts[0], hub_id, int(parts[2])))

    def _on_reservation(self, payload: str) -> None:
        for line in payload.split("\n"):
            parts = line.split(" ")
            # This hub's own news is already in its book: re-reading it would cost a query per reservation.
            if len(parts) == 4 and parts[0] != self.hub_id and parts[1].isdigit() and self.book is not None:
                self.book.tell(ReservationChanged(int(parts[1])))

    def _on_sessions(self, payload: str) -> None:
        for line in payload.split("\n"):
            hub_id, _, station_id = line.partition(" ")
            if hub_id != self.hub_id and station_id and self.book is not None:
                self.book.tell(SessionsChanged(station_id))

    def _on_vehicle(self, payload: str) -> None:
        vehicle_id, _, packed = payload.partition(" ")
        if self.outbox is None or ("vehicle", vehicle_id) not in self.outbox.peers:
            return  # not connected here (another hub delivers it, or nobody: it lists what it missed)
        self.outbox.send_to_peer("vehicle", vehicle_id, msgpack.unpackb(base64.b64decode(packed), raw=False))

    def _on_request(self, payload: str) -> None:
        answered = requests.parse_answer(payload)
        if answered is not None:
            if self.registry is not None:
                self.registry.tell(RemoteAnswer(*answered))
            return
        if payload.isdigit():
            with self._lock:
                req = requests.take(self._calls, self.hub_id, int(payload))
            self._relay(req)

    def _relay(self, req: Optional[requests.HubRequest]) -> None:
        if req is not None and self.registry is not None:
            self.registry.tell(RemoteRequest(req.id, req.station_id, req.epoch, req.kind, req.body, req.reply_hub))

    def _resync(self) -> None:
        """After a (re)connect: what notifications may have been missed is re-read from the tables."""
        with self._lock:
            self._dirty.add("*")
            missed = requests.take_all(self._calls, self.hub_id)
        for req in missed:
            self._relay(req)
        if self.book is not None:
            self.book.tell(ResyncReservations())
        self._wake.set()

    # --- the sync thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        conn: Any = None
        live: "list[str]" = []
        next_resync = time.monotonic() + RESYNC_S
        next_beat = 0.0
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_beat - time.monotonic()))
            self._wake.clear()
            try:
                if conn is None:
                    conn = connect_pg(self.dsn)
                # News wakes this thread many times a beat: the beat (a commit) and the liveness read
                # are once per beat_s, not per wake, so they do not compete with the books' commits.
                beat_due = time.monotonic() >= next_beat
                if beat_due:
                    membership.beat(conn, self.hub_id, self.address)
                    next_beat = time.monotonic() + self.beat_s
                with self._lock:
                    outgoing, self._outgoing = list(self._outgoing.values()), {}
                    dirty, self._dirty = self._dirty, set()
                    news, self._news = self._news, []
                    sessions, self._session_news = self._session_news, set()
                for payload in schema.chunks(["%s %s" % (self.hub_id, sid) for sid in sorted(sessions)]):
                    conn.execute("SELECT pg_notify(%s, %s)", (schema.CH_SESSIONS, payload))
                for payload in schema.chunks(news):
                    conn.execute("SELECT pg_notify(%s, %s)", (schema.CH_RESERVATION, payload))
                if outgoing:
                    status.publish(conn, self.hub_id, outgoing)
                if beat_due:
                    now_live = membership.live_hubs(conn)
                    if now_live != live:  # a hub joined or died: every remote view may read differently
                        live, dirty = now_live, {"*"}
                if time.monotonic() >= next_resync and self.book is not None:
                    next_resync = time.monotonic() + RESYNC_S
                    self.book.tell(ResyncReservations())
                if dirty:
                    self._hand_remote(status.read(conn, None if "*" in dirty else dirty))
            except psycopg.Error as exc:
                log.warning("cluster: sync failed (%s); retrying", exc)
                next_beat = time.monotonic() + self.beat_s  # the next try after a beat, not at once
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _hand_remote(self, rows: "dict[str, tuple[StationView, str]]") -> None:
        changed = [v for v, hub_id in rows.values() if hub_id != self.hub_id and self._seen.get(v.id) != v]
        for v in changed:
            self._seen[v.id] = v
        if changed and self.registry is not None:
            self.registry.tell(RemoteViews(changed))

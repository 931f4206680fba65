"""Every message the hub's actors receive, and every item the gateway's Outbox carries.

Each is a NamedTuple (as pykka's own messages are): immutable, cheap to build, and a missing
field fails where the message is made, not three hops later in another thread.

Index (receiver: messages)
  ReservationBookActor (hub/actors/book.py)
      ReserveBatch(requests, now, done)   ReserveRequest rows decided in order, one COMMIT, then answered;
                                          `done()` is called once every reply is queued (the router's
                                          group commit waits for it)
      Cancel, ListReservations            a vehicle's CANCEL / LIST_RESERVATIONS, answered through the Outbox
      BookTick(now)                       expire no-shows
      SessionStarted, SessionEnded        told by the registry: sessions occupy and free connectors
      StationCapacity(station_id, connectors)   told by the registry: capacity learned at boot
      StationRefused(reservation_id, ...)  told by the registry: the station refused a RESERVE_NOW
      PeerRemoved(role, peer_id)          `stations|vehicles remove`: its reservations leave memory
      NearbySource(published)             from the LocatorActor: where alternatives are searched
      ReservationChanged(reservation_id)  from hub/cluster: another hub changed it in the shared store
      BookCall(fn, reply)                 fn(book) on the book's thread; reply(result, error) (HTTP API)
  StationRegistry (hub/actors/registry.py)
      Boot, Status, Meter, SessionStart, SessionEnd, ReservationRefused   a station's frame: (station_id,
                                          link_id, seq, then the wire fields by their kinds.py names)
      StationOnline, StationOffline       the station's link came up / went down
      Reserved, ReservationEnded          told by the book, for RESERVE_NOW / CANCEL_RESERVATION
      StartCharge, StopCharge             a vehicle's START_CHARGE / STOP_CHARGE, relayed to the station
      ListSessions, ReservationHistory    a vehicle's LIST_SESSIONS / RESERVATION_HISTORY (from the store)
      StationAnswer(tag, answer)          a station's reply to a hub->station request (None: no reply)
      RegistryTick(now)                   once a second: "Free in X min" counts down, new provisioning
      StationRemoved(station_id)          `stations remove`: it leaves the map
      UseBook(book)                       the book's ref (the book is started after the registry)
  LocatorActor (hub/actors/locator.py)
      Upsert, UpsertMany, RemoveStation, Subscribe(actor_ref) -> NearbySource
  VehicleTracker (hub/actors/tracker.py)
      Positions(batch), FlushPositions()
      RemoteViews, HomeMoved, RemoteRequest, RemoteAnswer   from hub/cluster: other hubs' stations and requests
  Outbox items (hub/io/gateway.py, thread -> loop)
      OutSend(link_id, msg), OutToPeer(peer, msg), OutRequest(peer, kind, fields, reply_to, tag)
"""

from typing import Any, Callable, NamedTuple, Optional

# --- the reservation book ------------------------------------------------------------------------


class ReserveRequest(NamedTuple):
    link_id: Any
    seq: int
    vehicle_id: str
    station_id: str
    start: int
    end: int
    request_id: Optional[str] = None  # the vehicle's idempotency key: a retried RESERVE books once


class ReserveBatch(NamedTuple):
    requests: "list[ReserveRequest]"
    now: Optional[float] = None
    done: Optional[Callable[[], None]] = None  # called on the book's thread once all are answered


class Cancel(NamedTuple):
    link_id: Any
    seq: int
    vehicle_id: str
    reservation_id: int


class SessionsChanged(NamedTuple):
    """To the book: another hub recorded a session start or end at this station; re-read its open sessions."""

    station_id: str


class ResyncReservations(NamedTuple):
    """To the book: re-read the open reservations (of one station, or all) from the shared store."""

    station_id: Optional[str] = None
    then: "Optional[tuple[Any, Any]]" = None  # (actor ref, message) told once the news is out


class ListReservations(NamedTuple):
    link_id: Any
    seq: int
    vehicle_id: str


class BookTick(NamedTuple):
    now: Optional[float] = None


class SessionStarted(NamedTuple):
    station_id: str
    connector: int
    vehicle_id: Optional[str]
    reservation_id: Optional[int]
    started: int
    expected_end: float
    session_id: Optional[str] = None


class SessionEnded(NamedTuple):
    station_id: str
    connector: int
    session_id: str
    vehicle_id: Optional[str]
    reservation_id: Optional[int]
    ended: int


class StationRefused(NamedTuple):
    """The station refused (or never took) a RESERVE_NOW: move it to another connector, else cancel it."""

    reservation_id: int
    station_id: str
    connector: int
    movable: bool
    text: str


class StationCapacity(NamedTuple):
    station_id: str
    connectors: int


class PeerRemoved(NamedTuple):
    role: str
    peer_id: str


class NearbySource(NamedTuple):
    published: Any  # hub.domain.locator.PublishedIndex


class BookCall(NamedTuple):
    fn: Callable[[Any], Any]
    reply: Callable[[Any, Optional[BaseException]], None]


# --- the station registry: frames from a station (fields named as in transport/kinds.py) ----------


class Boot(NamedTuple):
    station_id: str
    link_id: Any
    seq: int
    lat: float
    lon: float
    connectors: int
    max_kw: float
    firmware: str


class Status(NamedTuple):
    station_id: str
    link_id: Any
    seq: int
    connector: int
    status: str
    info: Optional[str]


class Meter(NamedTuple):
    station_id: str
    link_id: Any
    seq: int
    connector: int
    session_id: Optional[str]
    energy_wh: int
    power_w: int
    time: int


class SessionStart(NamedTuple):
    station_id: str
    link_id: Any
    seq: int
    session_id: str
    connector: int
    vehicle_id: Optional[str]
    reservation_id: Optional[int]
    meter_start_wh: int
    time: int


class SessionEnd(NamedTuple):
    station_id: str
    link_id: Any
    seq: int
    session_id: str
    connector: int
    vehicle_id: Optional[str]
    reservation_id: Optional[int]
    energy_wh: int
    started: int
    ended: int
    reason: str


class ReservationRefused(NamedTuple):
    """A station can no longer hold a reservation it had taken: an OCPP charger whose ReserveNow,
    sent when the window opened, was answered Occupied (hub/ocpp). Handled as a RESERVE_NOW refusal."""

    station_id: str
    link_id: Any
    seq: int
    reservation_id: int
    code: int
    text: str


STATION_FRAME_FIELDS = 3  # station_id, link_id, seq come before the wire fields

# --- the station registry: the rest ----------------------------------------------------------------


class StationOnline(NamedTuple):
    station_id: str


class StationOffline(NamedTuple):
    station_id: str
    why: str


class Reserved(NamedTuple):
    reservation_id: int
    station_id: str
    vehicle_id: str
    start: int
    end: int
    connector: int = 0  # the book's choice, sent in RESERVE_NOW (0: the station picks)


class ReservationEnded(NamedTuple):
    reservation_id: int
    station_id: str
    why: str


class StartCharge(NamedTuple):
    link_id: Any
    seq: int
    vehicle_id: str
    station_id: str
    reservation_id: Optional[int]
    ev: Any
    retried: bool = False  # several hubs: asked again once the book re-read the station's reservations


class StopCharge(NamedTuple):
    link_id: Any
    seq: int
    vehicle_id: str
    session_id: str


class ListSessions(NamedTuple):
    link_id: Any
    seq: int
    vehicle_id: str


class ReservationHistory(NamedTuple):
    link_id: Any
    seq: int
    vehicle_id: str


class Answer(NamedTuple):
    """A peer's reply to a hub->peer request: ACK or ERROR (or another reply kind) and its fields."""

    kind: int
    fields: "list[Any]"


class StationAnswer(NamedTuple):
    tag: int
    answer: Optional[Answer]  # None: no reply came (timeout, link closed, no link)


class RegistryTick(NamedTuple):
    now: float


class StationRemoved(NamedTuple):
    station_id: str


class UseBook(NamedTuple):
    book: Any  # pykka.ActorRef of the ReservationBookActor


# --- the locator and the tracker ---------------------------------------------------------------------


class Upsert(NamedTuple):
    station_id: str
    lat: float
    lon: float


class UpsertMany(NamedTuple):
    stations: "list[tuple[str, float, float]]"


class RemoveStation(NamedTuple):
    station_id: str


class Subscribe(NamedTuple):
    actor_ref: Any  # told NearbySource(published)


class Positions(NamedTuple):
    batch: "list[tuple[str, float, float, Any, Any]]"  # (vehicle_id, lat, lon, time, soc)


class FlushPositions(NamedTuple):
    pass


# --- the Outbox: what actors hand to the I/O loop ---------------------------------------------------


class OutSend(NamedTuple):
    link_id: Any
    msg: Any  # a built message (list) or packed bytes


class OutToPeer(NamedTuple):
    peer: "tuple[str, str]"  # (role, peer id): whichever link it is on now
    msg: Any


class OutRequest(NamedTuple):
    peer: "tuple[str, str]"
    kind: int
    fields: "list[Any]"
    reply_to: Any  # an ActorRef told StationAnswer(tag, ...), or None: nobody waits
    tag: int


# --- several hubs on one PostgreSQL (hub/cluster) ----------------------------------------------------


class RemoteViews(NamedTuple):
    """To the registry: live views of stations whose home is another hub (Offline when it died)."""

    views: "list[Any]"  # hub.domain.stations.StationView


class HomeMoved(NamedTuple):
    """To the registry: a station's home is now `hub_id` at `epoch` (None: it has no home)."""

    station_id: str
    hub_id: Optional[str]
    epoch: int


class ReservationChanged(NamedTuple):
    """To the book: another hub confirmed or ended this reservation; reload it from the store."""

    reservation_id: int


class RemoteRequest(NamedTuple):
    """To the registry: another hub asks this hub, the station's home, to relay a request."""

    request_id: int
    station_id: str
    epoch: int
    kind: str
    body: "dict[str, Any]"
    reply_hub: str = ""


class RemoteAnswer(NamedTuple):
    """To the registry: the answer to a request it forwarded to another hub ((kind, fields), or None)."""

    request_id: int
    answer: Any

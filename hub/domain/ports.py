"""What the pure rules need from the outside, as Protocols: the store's methods booking and authz
call, and the shape of a store row. Any object with these methods will do (hub.store.Store on SQLite
or PostgreSQL, a test's fake); nothing here imports the store at run time. mypy proves below that
the store's interface (hub/store/api.py StoreAPI) gives both.

A row is the store's record as a mapping of column name to value (a dict from hub/store). Its values
are typed only where the rules read them, so `Row` keeps them as Any: the store owns the columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Protocol, Sequence, Union

if TYPE_CHECKING:
    from hub.store.api import StoreAPI
    from hub.store.store import StoreConflict

Row = Mapping[str, Any]
# A reservation to store: (vehicle_id, station_id, connector, start, end, request_id or None).
NewReservation = tuple[str, str, int, int, int, Optional[str]]


class BookStore(Protocol):
    """The store as the ReservationBook (hub/domain/booking.py) uses it."""

    def all_stations(self) -> Iterable[Row]: ...
    def get_station(self, station_id: str) -> Optional[Row]: ...
    def load_open_reservations(self, station_id: Optional[str] = None) -> Iterable[Row]: ...
    def load_open_sessions(self) -> Iterable[Row]: ...
    def get_reservation(self, reservation_id: int) -> Optional[Row]: ...
    def reservation_for_request(self, vehicle_id: str, request_id: str) -> Optional[Row]: ...
    def insert_reservations(self, rows: Sequence[NewReservation]) -> Sequence[Union[int, StoreConflict]]:
        """A reservation id per row, or StoreConflict for a row the database refused (another hub's window)."""
        ...

    def update_reservation_state(self, reservation_id: int, state: str) -> bool: ...
    def update_reservation_states(self, changes: Iterable[tuple[int, str]]) -> int: ...
    def move_reservations(self, moves: Iterable[tuple[int, int]]) -> None: ...


class AuthzStore(Protocol):
    """The store as attribution (hub/domain/authz.py `attribute`) uses it."""

    def take_remote_start(
        self, station_id: str, vehicle_id: str, session_id: str, since: int
    ) -> tuple[bool, Optional[int]]: ...
    def get_reservation(self, reservation_id: int) -> Optional[Row]: ...
    def reservation_billed(self, reservation_id: int, session_id: str) -> bool: ...


if TYPE_CHECKING:

    def _check(store: StoreAPI) -> tuple[BookStore, AuthzStore]:  # the store gives what the rules need
        return store, store

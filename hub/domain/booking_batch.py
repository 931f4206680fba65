"""Mixed into ReservationBook: a batch of RESERVE requests decided in order against memory, then
stored in ONE transaction (group commit), with what the database refused tried again or answered.

Each request of a batch sees the earlier ones (they are held in memory with provisional negative
ids until the COMMIT). A request_id the vehicle used before (in the store, or earlier in this batch)
is answered with the reservation it booked then. A row the database refuses (another hub booked the
window first, on PostgreSQL) is re-read and tried on another connector, at most STORE_RETRIES
rounds, else answered as a conflict with alternatives.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional, Sequence

from hub.domain.booking_types import (
    STORE_RETRIES,
    BookingError,
    Outcome,
    Reservation,
    ReserveResult,
    _Held,
    _Station,
)
from hub.domain.bounds import MAX_ID_LEN
from hub.domain.ports import BookStore
from hub.store.backend import DB_ERRORS
from hub.store.store import StoreConflict
from hub.timefmt import Window
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_INTERNAL

log = logging.getLogger("hub.domain.booking")  # one logger for the book's parts


class BookBatches:
    if TYPE_CHECKING:  # what ReservationBook provides
        _store: BookStore
        _by_vehicle: dict[str, set[int]]
        _by_id: dict[int, Reservation]
        _stations: dict[str, _Station]
        _events: list[Any]
        max_open_per_vehicle: Optional[int]

        def _hold(self, st: _Station, r: Reservation) -> None: ...
        def _release(self, st: _Station, start: int, rid: int) -> None: ...
        def _fit(self, st: _Station, s: float, e: float, now: float) -> Optional[int]: ...
        def _validate(self, vehicle_id: str, station_id: str, start: int, end: int, now: float) -> _Station: ...
        def alternatives(self, st: _Station, start: int, end: int, now: float) -> list[Any]: ...

    def reserve_many(self, requests: Sequence[Sequence[Any]], now: float) -> list[Outcome]:
        """[(vehicle_id, station_id, start, end[, request_id])] decided in order (a later request sees
        the earlier ones), persisted in ONE transaction. One entry per request: a ReserveResult (ok, or
        a conflict with alternatives) or a BookingError for a request refused outright. A request_id
        the vehicle used before (in the store, or earlier in this batch) is answered with the
        reservation it booked then: a retry never books twice."""
        # Requests are the wire's fields, checked here (_validate), hence Sequence[Any].
        results: list[Optional[Outcome]] = [None] * len(requests)
        held: list[_Held] = []  # (index, provisional Reservation with a negative id, station, request_id)
        provisional: dict[str, int] = {}  # vehicle_id -> how many of this batch's held requests are its
        # (vehicle_id, request_id) -> index of this batch's first request with that key
        keyed: dict[tuple[str, str], int] = {}
        repeats: list[tuple[int, int]] = []  # (index, index of the first request with the same key)
        cap = self.max_open_per_vehicle
        for i, req in enumerate(requests):
            request_id = req[4] if type(req) in (tuple, list) and len(req) > 4 else None
            if request_id is not None:
                first = keyed.setdefault((req[0], request_id), i)
                if first != i:
                    repeats.append((i, first))
                    continue
                results[i] = self._booked_before(req[0], request_id)
                if results[i] is not None:
                    continue
            try:
                vehicle_id, station_id, start, end = req[:4]
                st = self._validate(vehicle_id, station_id, start, end, now)
                if cap is not None:
                    n_open = len(self._by_vehicle.get(vehicle_id, ())) + provisional.get(vehicle_id, 0)
                    if n_open >= cap:
                        raise BookingError(
                            E_FORBIDDEN,
                            "vehicle %s already holds %d open reservations, the cap is %d;"
                            " cancel one first" % (vehicle_id, n_open, cap),
                        )
            except BookingError as exc:
                log.info("vehicle %s: reserve at station %s refused: %s", vehicle_id, station_id, exc.text)
                results[i] = exc
                continue
            except (TypeError, ValueError):
                results[i] = BookingError(E_BAD_FIELD, "a request is (vehicle_id, station_id, start, end)")
                continue
            conn = self._fit(st, start, end, now)
            if conn is None:
                alts = self.alternatives(st, start, end, now)
                log.debug(
                    "vehicle %s: station %s has no free connector for %s; %d alternatives",
                    vehicle_id,
                    station_id,
                    Window(start, end),
                    len(alts),
                )
                results[i] = ReserveResult(False, None, alts, "conflict: station %s is fully booked then" % station_id)
                continue
            r = Reservation(-(i + 1), vehicle_id, station_id, conn, start, end, "confirmed")
            self._hold(st, r)  # later requests of this batch must see it
            held.append((i, r, st, request_id))
            provisional[vehicle_id] = provisional.get(vehicle_id, 0) + 1
        if held:
            self._commit(held, results, now, STORE_RETRIES)
        for i, first in repeats:
            results[i] = results[first]
        _log_batch(results)
        # Every slot is filled by now (a result, a refusal, or a repeat's first answer), which mypy cannot
        # follow through the indices; proving it at run time would cost a pass over every batch.
        return results  # type: ignore[return-value]

    def _booked_before(self, vehicle_id: str, request_id: object) -> Optional[Outcome]:
        """The ReserveResult of an earlier RESERVE with this key, or None if the key is new."""
        if type(request_id) is not str or not 0 < len(request_id) <= MAX_ID_LEN:
            return BookingError(E_BAD_FIELD, "request_id must be 1..%d characters" % MAX_ID_LEN)
        row = self._store.reservation_for_request(vehicle_id, request_id)
        if row is None:
            return None
        log.info(
            "vehicle %s: reserve %s repeated, answered with reservation %d",
            vehicle_id,
            request_id,
            row["reservation_id"],
        )
        return ReserveResult(
            True,
            Reservation(
                row["reservation_id"],
                vehicle_id,
                row["station_id"],
                row["connector"],
                row["start"],
                row["end"],
                row["state"],
            ),
            [],
            None,
        )

    def _commit(self, held: list[_Held], results: list[Optional[Outcome]], now: float, retries: int) -> None:
        try:
            ids = self._store.insert_reservations(
                [(r.vehicle_id, r.station_id, r.connector, r.start, r.end, key) for _i, r, _st, key in held]
            )
        except DB_ERRORS + (OSError,) as exc:
            log.error("book: storing %d reservations failed, all refused: %s", len(held), exc)
            for i, r, st, _key in held:
                self._release(st, r.start, r.id)
                results[i] = BookingError(E_INTERNAL, "the reservation could not be stored; try again")
            return
        refused: list[_Held] = []
        for (i, tmp, st, key), rid in zip(held, ids):
            self._release(st, tmp.start, tmp.id)
            if isinstance(rid, StoreConflict):
                refused.append((i, tmp, st, key))
                continue
            r = tmp._replace(id=rid)
            self._hold(st, r)
            self._events.append(("reserved", r))
            log.debug(
                "vehicle %s: reservation %d confirmed at station %s connector %d %s",
                r.vehicle_id,
                rid,
                r.station_id,
                r.connector,
                Window(r.start, r.end),
            )
            results[i] = ReserveResult(True, r, [], None)

        if refused:
            self._after_refusal(refused, results, now, retries)

    def _after_refusal(self, refused: list[_Held], results: list[Optional[Outcome]], now: float, retries: int) -> None:
        """The database refused some rows (PostgreSQL: another hub confirmed an overlapping window on
        that connector first). Learn the station's confirmed windows from the store, then decide
        those requests again: another connector if one is free (at most `retries` rounds), else a
        conflict with alternatives, as for any full station."""
        for st_id in {st.id for _i, _r, st, _k in refused}:
            st = self._stations[st_id]
            for row in self._store.load_open_reservations(st_id):
                if row["id"] not in self._by_id:
                    learned = Reservation(*(row[f] for f in Reservation._fields))
                    self._hold(st, learned)
                    # Told like any new reservation: this hub may hold the station's link, and the news
                    # of it, arriving later, will find memory already agreeing and say nothing.
                    self._events.append(("reserved", learned))
        again = []
        for i, tmp, st, key in refused:
            if key is not None:
                results[i] = self._booked_before(tmp.vehicle_id, key)  # a retry stored on another hub
                if results[i] is not None:
                    continue
            conn = self._fit(st, tmp.start, tmp.end, now) if retries > 0 else None
            if conn is None:
                alts = self.alternatives(st, tmp.start, tmp.end, now)
                log.info(
                    "vehicle %s: station %s %s was taken by another writer; %d alternatives",
                    tmp.vehicle_id,
                    st.id,
                    Window(tmp.start, tmp.end),
                    len(alts),
                )
                results[i] = ReserveResult(False, None, alts, "conflict: station %s is fully booked then" % st.id)
                continue
            r = tmp._replace(connector=conn)
            self._hold(st, r)
            again.append((i, r, st, key))
        if again:
            self._commit(again, results, now, retries - 1)


def _log_batch(results: Sequence[Optional[Outcome]]) -> None:
    """One INFO line per batch: at thousands of reservations a second a line per reservation costs
    the book a fifth of its time (each one is at DEBUG, and in the store)."""
    confirmed = [r.reservation.id for r in results if isinstance(r, ReserveResult) and r.ok and r.reservation]
    conflicts = sum(1 for r in results if isinstance(r, ReserveResult) and not r.ok)
    if not confirmed:
        if conflicts:
            log.info("book: %d requests met a fully booked window, none confirmed", conflicts)
    elif len(confirmed) <= 3:
        log.info("book: reservation %s confirmed, %d conflicts", ", ".join(map(str, confirmed)), conflicts)
    else:
        log.info(
            "book: %d reservations confirmed (ids %d..%d), %d conflicts",
            len(confirmed),
            min(confirmed),
            max(confirmed),
            conflicts,
        )

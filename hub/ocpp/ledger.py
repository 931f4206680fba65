"""What the OCPP central system must remember across reconnects and restarts, in the hub's store.

- ``ocpp_transactions``: the transaction ids the central system issued (OCPP 1.6: the central
  system issues them, evhub's stations issue their own session ids). A StartTransaction a charger
  replays after a reconnect (or sends late from its offline queue) finds its row by
  (station, connector, timestamp, meterStart) and gets the same id back; a replayed
  StopTransaction finds the row already stopped. Each is recorded exactly once.
- ``ocpp_id_tags``: idTag (upper case: idTags compare case-insensitively) -> vehicle. Provisioned
  tags (RFID cards) and the tags the central system made up for vehicles it starts remotely.
"""

from __future__ import annotations

from typing import NamedTuple

from hub.ocpp.mapping import app_id_tag, normal_id_tag
from hub.store import ledger as sql
from hub.store.store import Store


class Transaction(NamedTuple):
    transaction_id: int
    station_id: str
    connector: int
    id_tag: str
    vehicle_id: str | None
    reservation_id: int | None
    meter_start: int
    started: int
    meter_stop: int | None
    stopped: int | None
    reason: str | None


class Ledger:
    def __init__(self, path: str) -> None:
        # Its own Store (SQLite file or PostgreSQL URL), used from the OCPP server's event loop;
        # shared: the CLI and the server may call it from a thread other than the opener's.
        self._store = Store(path, shared=True)

    def close(self) -> None:
        self._store.close()

    def start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        vehicle_id: str | None,
        reservation_id: int | None,
        meter_start: int,
        started: int,
    ) -> tuple[Transaction, bool]:
        """(the transaction, whether this call created it): a replay gets the first one back."""
        row, created = sql.start_transaction(
            self._store, (station_id, connector, id_tag, vehicle_id, reservation_id, meter_start, started)
        )
        return Transaction(*row), created

    def get(self, transaction_id: int) -> Transaction | None:
        row = sql.get_transaction(self._store, transaction_id)
        return None if row is None else Transaction(*row)

    def stop(self, transaction_id: int, meter_stop: int, stopped: int, reason: str) -> bool:
        """Record the end once; False when it was already recorded (a replayed StopTransaction)."""
        return sql.stop_transaction(self._store, transaction_id, meter_stop, stopped, reason)

    def vehicle_for(self, id_tag: str) -> str | None:
        return sql.tag_holder(self._store, normal_id_tag(id_tag))

    def add_tag(self, id_tag: str, vehicle_id: str) -> None:
        """Provision an idTag (an RFID card) for a vehicle; ValueError if another vehicle holds it."""
        tag = normal_id_tag(id_tag)
        holder = self.vehicle_for(tag)
        if holder is not None and holder != vehicle_id:
            raise ValueError("idTag %s already belongs to %s" % (tag, holder))
        sql.add_tag(self._store, tag, vehicle_id)

    def tag_for(self, vehicle_id: str) -> str:
        """The idTag a remote start for `vehicle_id` carries: one provisioned for it, else its app tag."""
        tag = sql.first_tag(self._store, vehicle_id)
        if tag is not None:
            return tag
        tag = app_id_tag(vehicle_id)
        self.add_tag(tag, vehicle_id)
        return tag

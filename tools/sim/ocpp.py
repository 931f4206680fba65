"""Simulated OCPP 1.6J chargers for `evhub sim --ocpp-share`: the `ocpp` library's charge-point side,
over real WebSockets to the hub's central system (`evhub serve --ocpp`), in one asyncio thread.

A charger behaves as a commercial one does: it boots, reports its connectors, accepts reservations
and remote starts for a free (or its reserved) connector, runs the transaction itself (Preparing,
StartTransaction, MeterValues each simulated minute, SuspendedEV when the car has taken what it
wanted, then StopTransaction), and stops early on RemoteStopTransaction. OCPP tells a charger
nothing about the car, so the simulated car takes 8..40 kWh (from the seed), at the charger's
power. Time is the simulation's: HubClock(speedup, epoch0), as the hub and the boards use.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import threading
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect

from hub.clock import HubClock
from hub.ocpp.mapping import iso

log = logging.getLogger(__name__)

METER_EVERY_S = 60  # simulated seconds between MeterValues
CONNECT_TIMEOUT_S = 20


class SimCharger(ChargePoint):
    def __init__(self, station: Any, ws: Any, fleet: OcppFleet) -> None:
        super().__init__(station.id, ws, response_timeout=30)
        self.station = station
        self.fleet = fleet
        self.register_wh = {c: 0 for c in range(1, station.connectors + 1)}  # each connector's meter
        self.busy: dict[int, asyncio.Task[None]] = {}
        self.stopping: set[int] = set()  # connectors whose transaction the central system asked to stop
        self.reserved: dict[int, int] = {}  # connector -> reservation id
        self.transactions: dict[int, int] = {}  # transaction id -> connector
        self.rng = random.Random("ocpp:%s:%s" % (fleet.seed, station.id))

    # --- the central system's calls ---------------------------------------------------------------

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        free = [c for c in self.register_wh if c not in self.busy]
        connector = connector_id if connector_id in free else (free[0] if free and connector_id is None else None)
        if connector is None:
            return call_result.RemoteStartTransaction(status="Rejected")
        self.busy[connector] = asyncio.get_running_loop().create_task(self._transaction(connector, id_tag))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> Any:
        connector = self.transactions.get(transaction_id)
        if connector is None:
            return call_result.RemoteStopTransaction(status="Rejected")
        self.stopping.add(connector)
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int, **_: Any) -> Any:
        connector = connector_id or next((c for c in self.register_wh if c not in self.busy), 0)
        if connector == 0 or connector in self.busy:
            return call_result.ReserveNow(status="Occupied")
        self.reserved[connector] = reservation_id
        return call_result.ReserveNow(status="Accepted")

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int) -> Any:
        for c, rid in list(self.reserved.items()):
            if rid == reservation_id:
                del self.reserved[c]
                return call_result.CancelReservation(status="Accepted")
        return call_result.CancelReservation(status="Rejected")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> Any:
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.trigger_message)
    def on_trigger(self, requested_message: str, **_: Any) -> Any:
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        known = {
            "NumberOfConnectors": str(self.station.connectors),
            "ReserveConnectorZeroSupported": "false",
            "HeartbeatInterval": "60",
            "MeterValueSampleInterval": str(METER_EVERY_S),
        }
        asked = key or list(known)
        return call_result.GetConfiguration(
            configuration_key=[{"key": k, "readonly": True, "value": known[k]} for k in asked if k in known],
            unknown_key=[k for k in asked if k not in known] or None,
        )

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> Any:
        return call_result.ChangeConfiguration(status="Accepted")

    # --- what the charger does by itself ----------------------------------------------------------

    async def boot(self) -> None:
        await self.call(
            call.BootNotification(
                charge_point_vendor="SimCharge",
                charge_point_model="AC %g" % self.station.max_kw,
                firmware_version="sim",
            )
        )
        for c in self.register_wh:
            await self._status(c, "Available")

    async def _status(self, connector: int, status: str) -> None:
        await self.call(
            call.StatusNotification(
                connector_id=connector, error_code="NoError", status=status, timestamp=iso(int(self.fleet.clock()))
            )
        )

    async def _transaction(self, connector: int, id_tag: str) -> None:
        try:
            await self._run_transaction(connector, id_tag)
        except Exception as exc:  # the link dropped mid-transaction: the fleet counts it, the books will say
            self.fleet.failures.append("%s: %s" % (self.id, exc))
            log.warning("sim charger %s: transaction on connector %d: %s", self.id, connector, exc)
        finally:
            self.busy.pop(connector, None)
            self.stopping.discard(connector)

    async def _run_transaction(self, connector: int, id_tag: str) -> None:
        fleet = self.fleet
        want_wh = self.rng.randint(8_000, 40_000)
        power_w = int(self.station.max_kw * 1000)
        await self._status(connector, "Preparing")
        start_wh = self.register_wh[connector]
        t0 = int(fleet.clock())
        started = await self.call(
            call.StartTransaction(
                connector_id=connector,
                id_tag=id_tag,
                meter_start=start_wh,
                timestamp=iso(t0),
                reservation_id=self.reserved.pop(connector, None),
            )
        )
        tx = started.transaction_id
        self.transactions[tx] = connector
        await self._status(connector, "Charging")
        delivered = 0
        while delivered < want_wh and connector not in self.stopping:
            await asyncio.sleep(METER_EVERY_S / fleet.speedup)
            delivered = min(want_wh, delivered + power_w * METER_EVERY_S // 3600)
            self.register_wh[connector] = start_wh + delivered
            await self.call(
                call.MeterValues(
                    connector_id=connector,
                    transaction_id=tx,
                    meter_value=[
                        {
                            "timestamp": iso(int(fleet.clock())),
                            "sampledValue": [
                                {"value": str(start_wh + delivered), "unit": "Wh"},
                                {"value": str(power_w), "unit": "W", "measurand": "Power.Active.Import"},
                            ],
                        }
                    ],
                )
            )
        remote = connector in self.stopping
        if not remote:
            await self._status(connector, "SuspendedEV")  # the car has what it wanted
        await self.call(
            call.StopTransaction(
                meter_stop=start_wh + delivered,
                timestamp=iso(int(fleet.clock())),
                transaction_id=tx,
                reason="Remote" if remote else "EVDisconnected",
            )
        )
        del self.transactions[tx]
        await self._status(connector, "Finishing")
        await asyncio.sleep(30 / fleet.speedup)  # the driver unplugs and leaves
        await self._status(connector, "Available")


class OcppFleet:
    """The simulation's OCPP chargers, each on its own WebSocket, all in one thread's event loop."""

    def __init__(
        self, stations: list[Any], keys: dict[str, str], url: str, speedup: float, epoch0: float, seed: int
    ) -> None:
        self.stations, self.keys, self.url, self.seed = stations, keys, url, seed
        self.speedup = float(speedup)
        self.clock = HubClock(speedup, epoch0)
        self.chargers: dict[str, SimCharger] = {}
        self.failures: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="ocpp-chargers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        """Close every charger's connection; safe to call twice (the simulation's stop path does)."""
        if self._thread is None or not self._thread.is_alive():
            return
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop has just finished
                pass
        self._thread.join(timeout)

    def pending(self) -> int:
        """Transactions running or not yet recorded: the books wait for them at the wind-down."""
        return sum(len(c.busy) for c in self.chargers.values())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks = [asyncio.create_task(self._run(s)) for s in self.stations]
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, station: Any) -> None:
        auth = base64.b64encode(("%s:%s" % (station.id, self.keys[station.id])).encode()).decode()
        try:
            async with connect(
                "%s/%s" % (self.url, station.id),
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": "Basic " + auth},
                open_timeout=CONNECT_TIMEOUT_S,
            ) as ws:
                charger = SimCharger(station, ws, self)
                self.chargers[station.id] = charger
                runner = asyncio.create_task(charger.start())
                await charger.boot()
                await runner
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures.append("%s: %s" % (station.id, exc))
            log.error("sim charger %s: %s", station.id, exc)

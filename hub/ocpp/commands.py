"""What the hub asks of an OCPP charger: each hub request (REMOTE_START, REMOTE_STOP, RESERVE_NOW,
CANCEL_RESERVATION, CHANGE_AVAILABILITY, TRIGGER) as its OCPP call, and the hub's future windows
held until ReserveNow is due (OCPP reserves from now until an expiry, not a window ahead).

Mixed into OcppStation (hub/ocpp/central.py), which handles what the charger sends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from ocpp.v16.enums import (
    AvailabilityType,
    CancelReservationStatus,
    MessageTrigger,
    RemoteStartStopStatus,
)
from websockets.exceptions import ConnectionClosed

from hub.io.logsafe import wire_text
from hub.ocpp import mapping as M
from hub.ocpp.upstream import Upstream, UpstreamError
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_INVALID_STATE, E_NOT_FOUND, E_TIMEOUT

if TYPE_CHECKING:
    from hub.ocpp.server import OcppCentral

log = logging.getLogger("hub.ocpp.central")  # one logger for a charger's both directions

RESERVE_LEAD_S = 0  # ReserveNow at the window's start: a walk-in keeps the connector until then
NO_SHOW_GRACE_S = 600
_TRIGGERS = {
    "boot": MessageTrigger.boot_notification,
    "status": MessageTrigger.status_notification,
    "meter": MessageTrigger.meter_values,
}


class HubCommands:
    """Mixed into OcppStation: the hub -> charger direction."""

    if TYPE_CHECKING:  # what OcppStation provides
        id: str
        central: OcppCentral
        upstream: Upstream | None
        _held: dict[int, asyncio.TimerHandle]
        _last_status: dict[int, str]
        reserve_connector_zero: bool

        async def call(self, payload: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def from_hub(self, kind: int, seq: int, fields: list[Any]) -> None:
        """A hub request (REMOTE_START, RESERVE_NOW, ...) as an OCPP call; the hub gets ACK or ERROR."""
        upstream = self.upstream
        assert upstream is not None
        try:
            error = await self._call_for(kind, fields)
        except asyncio.TimeoutError:
            error = (E_TIMEOUT, "the charger did not answer %s" % K.kind_name(kind))
        except OCPPError as exc:
            error = (E_INVALID_STATE, "the charger refused %s: %s" % (K.kind_name(kind), exc))
        except ConnectionClosed:
            return  # the charger went away; the hub sees the link close
        upstream.reply(seq, error)

    async def _call_for(self, kind: int, fields: list[Any]) -> tuple[int, str] | None:
        if kind == K.REMOTE_START:
            connector, vehicle_id, _reservation_id, _ev = fields
            tag = self.central.ledger.tag_for(vehicle_id)
            res = await self.call(
                call.RemoteStartTransaction(id_tag=tag, connector_id=connector or None), suppress=False
            )
            return (
                None
                if res.status == RemoteStartStopStatus.accepted
                else (E_INVALID_STATE, "the charger rejected the start")
            )
        if kind == K.REMOTE_STOP:
            tx = M.transaction_id(self.id, fields[0])
            if tx is None:
                return (E_NOT_FOUND, "session %s is not one of %s's transactions" % (wire_text(fields[0]), self.id))
            res = await self.call(call.RemoteStopTransaction(transaction_id=tx), suppress=False)
            return (
                None
                if res.status == RemoteStartStopStatus.accepted
                else (E_INVALID_STATE, "the charger rejected the stop")
            )
        if kind == K.RESERVE_NOW:
            reservation_id, connector, vehicle_id, start, end = fields
            send_at, expiry = M.reserve_now_plan(start, end, NO_SHOW_GRACE_S, RESERVE_LEAD_S)
            if self.central.clock() < send_at:
                self._hold(*fields)
                return None  # held: ReserveNow goes out when the window opens
            # The window is open (booked for now, or the charger came back inside it): the charger's
            # answer is the hub's answer, so an Occupied connector reaches the hub (and its vehicle).
            status = await self._reserve_now(reservation_id, connector, vehicle_id, expiry)
            return None if status == "Accepted" else (E_INVALID_STATE, "the charger answered ReserveNow: %s" % status)
        if kind == K.CANCEL_RESERVATION:
            timer = self._held.pop(fields[0], None)
            if timer is not None:
                timer.cancel()
                return None
            res = await self.call(call.CancelReservation(reservation_id=fields[0]), suppress=False)
            return (
                None
                if res.status == CancelReservationStatus.accepted
                else (E_NOT_FOUND, "the charger has no such reservation")
            )
        if kind == K.CHANGE_AVAILABILITY:
            kind_ = AvailabilityType.operative if fields[1] else AvailabilityType.inoperative
            res = await self.call(call.ChangeAvailability(connector_id=fields[0], type=kind_), suppress=False)
            return None if res.status in ("Accepted", "Scheduled") else (E_INVALID_STATE, "the charger rejected it")
        if kind == K.TRIGGER:
            trigger = _TRIGGERS.get(fields[0])
            if trigger is None:
                return (E_BAD_FIELD, "cannot trigger %r on an OCPP charger" % (fields[0],))
            await self.call(call.TriggerMessage(requested_message=trigger), suppress=False)
            return None
        if kind == K.CONFIGURE:
            key = {"heartbeat_s": "HeartbeatInterval", "meter_interval_s": "MeterValueSampleInterval"}.get(fields[0])
            if key is None:
                return (E_BAD_FIELD, "%s has no OCPP configuration key" % wire_text(str(fields[0])))
            res = await self.call(call.ChangeConfiguration(key=key, value=str(fields[1])), suppress=False)
            return None if res.status == "Accepted" else (E_INVALID_STATE, "the charger answered %s" % res.status)
        return (E_BAD_FIELD, "%s is not for an OCPP charger" % K.kind_name(kind))

    async def _reserve_now_later(self, reservation_id: int, connector: int, vehicle_id: str, expiry: int) -> None:
        """The timer's ReserveNow: the hub took our ACK long ago, so a refusal goes back to it as a
        RESERVATION_REFUSED record (it moves the reservation, or cancels it and tells the vehicle)."""
        status = await self._reserve_now(reservation_id, connector, vehicle_id, expiry)
        if status == "Accepted" or self.upstream is None:
            return
        try:
            await self.upstream.request(
                K.RESERVATION_REFUSED, reservation_id, E_INVALID_STATE, "the charger answered ReserveNow: %s" % status
            )
        except UpstreamError as exc:
            log.warning(
                "station %s: could not tell the hub that reservation %d was refused: %s",
                self.id,
                reservation_id,
                exc.text,
            )

    def _hold(self, reservation_id: int, connector: int, vehicle_id: str, start: int, end: int) -> None:
        send_at, expiry = M.reserve_now_plan(start, end, NO_SHOW_GRACE_S, RESERVE_LEAD_S)
        old = self._held.pop(reservation_id, None)
        if old is not None:
            old.cancel()
        now = self.central.clock()
        if now >= expiry:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, (send_at - now) / self.central.speedup)  # hub time may run faster (the simulation)
        self._held[reservation_id] = loop.call_later(
            delay, lambda: loop.create_task(self._reserve_now_later(reservation_id, connector, vehicle_id, expiry))
        )

    async def _reserve_now(self, reservation_id: int, connector: int, vehicle_id: str, expiry: int) -> str:
        self._held.pop(reservation_id, None)
        tag = self.central.ledger.tag_for(vehicle_id)
        if connector == 0 and not self.reserve_connector_zero:
            # "Any connector": OCPP needs ReserveConnectorZeroSupported for that (read after boot), which
            # many chargers lack; then the first connector the charger does not report busy.
            busy = {c for c, status in self._last_status.items() if status not in ("Available", "Reserved")}
            st = self.central.store.get_station(self.id) or {}
            connector = next((c for c in range(1, int(st.get("connectors", 1)) + 1) if c not in busy), 1)
        try:
            res = await self.call(
                call.ReserveNow(
                    connector_id=connector, expiry_date=M.iso(expiry), id_tag=tag, reservation_id=reservation_id
                ),
                suppress=False,
            )
            status = res.status
        except (asyncio.TimeoutError, OCPPError, ConnectionClosed) as exc:
            status = "no answer (%s)" % (exc,)
        if status != "Accepted":
            # Occupied at the window's start is a walk-in holding the connector: said, not hidden.
            log.warning("station %s: ReserveNow %d for %s: %s", self.id, reservation_id, vehicle_id, status)
        else:
            log.info(
                "station %s: ReserveNow %d for %s accepted until %s", self.id, reservation_id, vehicle_id, M.iso(expiry)
            )
        return str(status)

    def drop(self) -> None:
        for timer in self._held.values():
            timer.cancel()
        self._held.clear()

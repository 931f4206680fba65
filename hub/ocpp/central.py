"""The OCPP 1.6J central system: commercial chargers join the hub beside our own boards.

One WebSocket server (subprotocol ``ocpp1.6``; the ``ocpp`` library frames, routes and validates
against the 1.6 JSON schemas, both directions). A charger connects at ``/<station id>`` and proves
itself with HTTP Basic (the station id and its key from ``evhub stations add``) at the upgrade;
an unknown id, a wrong key or a missing subprotocol is refused there, with a log line. Profile 2
is TLS (``wss://``) plus Basic; Profile 1 (plain ``ws://`` plus Basic) only when explicitly allowed.

Each charger gets an ``OcppStation``: the ``ocpp`` ChargePoint for the charger side and an
``Upstream`` (hub/ocpp/upstream.py), the same station on evhub's protocol, toward the hub. The
translation (hub/ocpp/mapping.py, meter.py) and the remembered state (hub/ocpp/ledger.py:
transaction ids, idTags) are here; nothing in the hub's core knows about OCPP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import FormatViolationError, OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    AvailabilityType,
    CancelReservationStatus,
    DataTransferStatus,
    MessageTrigger,
    RegistrationStatus,
    RemoteStartStopStatus,
)
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from hub.io.logsafe import wire_text
from hub.ocpp import mapping as M
from hub.ocpp.ledger import Transaction
from hub.ocpp.meter import latest
from hub.ocpp.upstream import Upstream, UpstreamError
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_INVALID_STATE, E_NOT_FOUND, E_TIMEOUT

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hub.ocpp.server import OcppCentral

SUBPROTOCOL = "ocpp1.6"
MAX_MESSAGE = 64 * 1024  # bytes; OCPP 1.6 messages are small (a MeterValues with many samples is a few KB)
CALLS_PER_S = 20  # sustained, per charger; a burst of BURST is allowed (a charger sends a few a second)
BURST = 60
HEARTBEAT_S = 60
CALL_TIMEOUT_S = 10  # a charger's answer to our call; under the hub's request timeout, so the hub hears why
RESERVE_LEAD_S = 0  # ReserveNow at the window's start: a walk-in keeps the connector until then
NO_SHOW_GRACE_S = 600
_TRIGGERS = {
    "boot": MessageTrigger.boot_notification,
    "status": MessageTrigger.status_notification,
    "meter": MessageTrigger.meter_values,
}


class OcppStation(ChargePoint):
    """One connected charger: its OCPP side (the ``@on`` handlers) and its evhub side (upstream)."""

    def __init__(self, station_id: str, connection: ServerConnection, central: OcppCentral) -> None:
        super().__init__(station_id, connection, response_timeout=CALL_TIMEOUT_S)
        self.central = central
        self.connection = connection
        self.upstream: Upstream | None = None
        self._held: dict[int, asyncio.TimerHandle] = {}  # reservation id -> ReserveNow not sent yet
        self._last_status: dict[int, str] = {}  # connector -> the charger's last StatusNotification
        self.reserve_connector_zero = False  # from GetConfiguration after boot
        self._tokens = float(BURST)
        self._refill = time.monotonic()

    # --- limits and the 1.6 error names ----------------------------------------------------------

    async def route_message(self, raw_msg: str | bytes) -> None:
        now = time.monotonic()
        self._tokens = min(float(BURST), self._tokens + (now - self._refill) * CALLS_PER_S)
        self._refill = now
        if self._tokens < 1:
            # A flood: the same philosophy as the msgpack links' message rate limit (the link is dropped).
            log.warning("station %s: more than %d OCPP messages/s: connection closed", self.id, CALLS_PER_S)
            # The flood fills the receive queue, so the peer's closing frame may never be read: do not
            # wait the usual 10 s for it.
            self.connection.close_timeout = 1
            await self.connection.close(1008, "message rate limit")
            return
        self._tokens -= 1
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        await super()._send(_as_16_error(message))

    # --- charger -> central system ----------------------------------------------------------

    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **extra: Any) -> Any:
        # Position, connectors and power come from provisioning: BootNotification carries none.
        st = self.central.store.get_station(self.id) or {}
        firmware = "%s %s %s" % (charge_point_vendor, charge_point_model, extra.get("firmware_version", ""))
        await self._to_hub(
            K.BOOT,
            float(st.get("lat", 0.0)),
            float(st.get("lon", 0.0)),
            int(st.get("connectors", 1)),
            float(st.get("max_kw", 22.0)),
            firmware.strip()[:64],
        )
        return call_result.BootNotification(
            current_time=M.iso(int(self.central.clock())), interval=HEARTBEAT_S, status=RegistrationStatus.accepted
        )

    @after(Action.boot_notification)
    async def after_boot(self, **_: Any) -> None:
        """Read the configuration keys we rely on (never from inside a handler: the library would deadlock)."""
        try:
            res = await self.call(
                call.GetConfiguration(key=["NumberOfConnectors", "ReserveConnectorZeroSupported"]), suppress=False
            )
        except (asyncio.TimeoutError, OCPPError, ConnectionClosed) as exc:
            log.info(
                "station %s: no answer to GetConfiguration (%s): assuming no connector-0 reservations", self.id, exc
            )
            return
        values = {k.get("key"): k.get("value") for k in res.configuration_key or []}
        self.reserve_connector_zero = str(values.get("ReserveConnectorZeroSupported", "")).lower() == "true"
        provisioned = (self.central.store.get_station(self.id) or {}).get("connectors")
        reported = values.get("NumberOfConnectors")
        if reported is not None and str(reported) != str(provisioned):
            log.warning(
                "station %s: the charger reports %s connectors, provisioned %s (evhub stations update)",
                self.id,
                wire_text(str(reported)),
                provisioned,
            )

    @on(Action.heartbeat)
    def on_heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time=M.iso(int(self.central.clock())))

    @on(Action.status_notification)
    async def on_status(self, connector_id: int, error_code: str, status: str, **extra: Any) -> Any:
        if connector_id >= 1:  # connector 0 is the charger as a whole: evhub keeps connector statuses
            self._last_status[connector_id] = status
            ours = M.STATUS_FROM_OCPP.get(status, "Faulted")
            await self._to_hub(K.STATUS, connector_id, ours, M.status_info(error_code, extra.get("info")))
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        # Answered from the idTag table: a removed vehicle's card is Blocked. A tag nobody
        # provisioned still charges, as a local session with no vehicle.
        vehicle = self.central.ledger.vehicle_for(id_tag)
        blocked = vehicle is not None and self.central.store.get_vehicle_token(vehicle) is None
        status = AuthorizationStatus.blocked if blocked else AuthorizationStatus.accepted
        return call_result.Authorize(id_tag_info=IdTagInfo(status=status))

    @on(Action.start_transaction)
    async def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **extra: Any) -> Any:
        ledger = self.central.ledger
        vehicle = ledger.vehicle_for(id_tag)
        tx, new = ledger.start(
            self.id,
            connector_id,
            M.normal_id_tag(id_tag),
            vehicle,
            extra.get("reservation_id"),
            meter_start,
            _when(timestamp),
        )
        if new:
            log.info(
                "station %s: transaction %d started on connector %d (idTag %s, %s)",
                self.id,
                tx.transaction_id,
                connector_id,
                wire_text(id_tag),
                vehicle or "no vehicle",
            )
        # Replays too: the hub acknowledges a session it already has, and only then does the
        # charger get its transaction id (nothing acknowledged is lost).
        await self._to_hub(
            K.SESSION_START,
            M.session_id(self.id, tx.transaction_id),
            connector_id,
            _claimed(tx),
            tx.reservation_id,
            meter_start,
            tx.started,
        )
        return call_result.StartTransaction(
            transaction_id=tx.transaction_id, id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted)
        )

    @on(Action.meter_values)
    async def on_meter(self, connector_id: int, meter_value: list[dict[str, Any]], **extra: Any) -> Any:
        reading = latest(_camel_samples(meter_value))
        tx = self._own(extra.get("transaction_id"))
        if connector_id >= 1 and reading.energy_wh is not None:
            energy = reading.energy_wh - tx.meter_start if tx is not None else 0
            when = _when(reading.time) if reading.time else int(self.central.clock())
            if self.upstream is not None:  # an event, as the boards send it: the next one supersedes it
                self.upstream.event(
                    K.METER,
                    connector_id,
                    M.session_id(self.id, tx.transaction_id) if tx else None,
                    max(0, energy),
                    reading.power_w or 0,
                    when,
                )
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    async def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, **extra: Any) -> Any:
        ledger = self.central.ledger
        tx = self._own(transaction_id)
        if tx is None:
            log.warning(
                "station %s: StopTransaction for transaction %d, not one of its own: ignored", self.id, transaction_id
            )
            return call_result.StopTransaction()
        reason = M.end_reason(extra.get("reason"), self._last_status.get(tx.connector) == "SuspendedEV")
        if ledger.stop(transaction_id, meter_stop, _when(timestamp), reason):
            log.info(
                "station %s: transaction %d stopped (%s, %d Wh)",
                self.id,
                transaction_id,
                reason,
                meter_stop - tx.meter_start,
            )
        tx = ledger.get(transaction_id) or tx  # a replay forwards what was recorded the first time
        assert tx.meter_stop is not None and tx.stopped is not None and tx.reason is not None
        await self._to_hub(
            K.SESSION_END,
            M.session_id(self.id, transaction_id),
            tx.connector,
            _claimed(tx),
            tx.reservation_id,
            max(0, tx.meter_stop - tx.meter_start),
            tx.started,
            max(tx.stopped, tx.started),
            tx.reason,
        )
        return call_result.StopTransaction(id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **extra: Any) -> Any:
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str) -> Any:
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, status: str) -> Any:
        return call_result.DiagnosticsStatusNotification()

    def _own(self, transaction_id: Any) -> Transaction | None:
        """The transaction if this charger holds it: a charger never reads or ends another's."""
        if type(transaction_id) is not int:
            return None
        tx = self.central.ledger.get(transaction_id)
        return tx if tx is not None and tx.station_id == self.id else None

    async def _to_hub(self, kind: int, *fields: Any) -> None:
        """Forward a record to the hub and wait for its ACK; the charger's request fails (an OCPP
        CallError) when the hub refuses or is away, so the charger keeps it and sends it again."""
        if self.upstream is None:
            raise OCPPError("the hub link is not up yet")
        try:
            await self.upstream.request(kind, *fields)
        except UpstreamError as exc:
            log.warning("station %s: the hub did not take %s: %s", self.id, K.kind_name(kind), exc.text)
            raise _internal("hub: %s" % exc.text) from None

    # --- hub -> charger ---------------------------------------------------------------------

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


# The library (2.1) names some CallErrors as OCPP 2.0.1 does; a 1.6 charger expects the 1.6 names.
_ERRORS_16 = {"FormatViolation": "FormationViolation", "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}


def _as_16_error(message: str) -> str:
    if not message.startswith("[4,"):
        return message
    try:
        frame = json.loads(message)
    except ValueError:
        return message
    if isinstance(frame, list) and len(frame) >= 3 and frame[2] in _ERRORS_16:
        frame[2] = _ERRORS_16[frame[2]]
        return json.dumps(frame, separators=(",", ":"))
    return message


def _camel_samples(meter_value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The library hands handlers snake_case keys; meter.py reads OCPP's own names."""
    out = []
    for entry in meter_value:
        samples = entry.get("sampled_value") or entry.get("sampledValue") or []
        out.append({"timestamp": entry.get("timestamp"), "sampledValue": samples})
    return out


class _NoTracebackForRefusals(logging.Filter):
    """The ocpp library logs every handler exception with its traceback. A refusal we raise on
    purpose (the hub did not take a record: the charger keeps it and retries) is already logged
    as one WARNING line by us; its traceback would only bury it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], OCPPError):
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("ocpp").addFilter(_NoTracebackForRefusals())


def _claimed(tx: Transaction) -> str:
    """Who the session is for, as the station claims it: the idTag's vehicle, else the card itself
    ("idtag:04A2B3C4"). The hub attributes a session to a vehicle only when it asked for it (a
    remote start or a reservation), so an unknown card is a local session with its claim kept."""
    return tx.vehicle_id or "idtag:%s" % tx.id_tag


def _when(timestamp: Any) -> int:
    """An OCPP dateTime as epoch seconds; a charger's malformed one is its FormationViolation."""
    try:
        return M.epoch_s(timestamp)
    except ValueError as exc:
        raise FormatViolationError(description="timestamp: %s" % exc) from None


def _internal(text: str) -> OCPPError:
    from ocpp.exceptions import InternalError

    return InternalError(description=text)

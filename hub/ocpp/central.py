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
    DataTransferStatus,
    RegistrationStatus,
)
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from hub.io.logsafe import wire_text
from hub.ocpp import mapping as M
from hub.ocpp.ledger import Transaction
from hub.ocpp.meter import latest
from hub.ocpp.commands import HubCommands
from hub.ocpp.upstream import Upstream, UpstreamError
from transport import kinds as K

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hub.ocpp.server import OcppCentral

SUBPROTOCOL = "ocpp1.6"
MAX_MESSAGE = 64 * 1024  # bytes; OCPP 1.6 messages are small (a MeterValues with many samples is a few KB)
CALLS_PER_S = 20  # sustained, per charger; a burst of BURST is allowed (a charger sends a few a second)
BURST = 60
HEARTBEAT_S = 60
CALL_TIMEOUT_S = 10  # a charger's answer to our call; under the hub's request timeout, so the hub hears why


class OcppStation(HubCommands, ChargePoint):
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

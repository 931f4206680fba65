"""The fixed correspondences between OCPP 1.6J and evhub (see ../shared/designs/ocpp-bridge.md §2).

Pure functions; the central system applies them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from datetime import UTC, datetime

# --- connector statuses -------------------------------------------------------------------------

# OCPP 1.6 ChargePointStatus -> evhub's connector status: the same names (evhub took OCPP's),
# SuspendedEVSE (the charger, not the car, paused the energy) included; a station shows it as
# Occupied like the other busy ones.
STATUS_FROM_OCPP = {
    "Available": "Available",
    "Preparing": "Preparing",
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "Finishing": "Finishing",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}


def status_info(error_code: str | None, info: str | None) -> str | None:
    """evhub's ``info`` for a StatusNotification: the errorCode kept in front of the charger's text
    ("GroundFailure: relay 2"), nothing for NoError."""
    parts = [p for p in ((error_code if error_code and error_code != "NoError" else None), info) if p]
    return ": ".join(parts) if parts else None


# --- stop reasons --------------------------------------------------------------------------------

# StopTransaction.reason -> evhub's end reason. Absent means Local (1.6 §6.49: it "MAY only be
# omitted when the Reason is Local"). evhub's Complete and HubLost have no OCPP counterpart.
_REASONS = {
    "Local": "Local",
    "Remote": "Remote",
    "EVDisconnected": "EVDisconnected",
    "PowerLoss": "PowerLoss",
    "EmergencyStop": "Fault",
    "HardReset": "PowerLoss",
    "SoftReset": "PowerLoss",
    "Reboot": "PowerLoss",
    "UnlockCommand": "Remote",
    "DeAuthorized": "Remote",
    "Other": "Local",
}


def end_reason(ocpp_reason: str | None, ev_was_done: bool = False) -> str:
    """evhub's end reason. `ev_was_done`: the connector showed SuspendedEV (the car stopped drawing:
    full, or at its own target) before the stop. A car that was done and is then unplugged or
    stopped at the charger ended its charge, which evhub calls Complete; OCPP has no such reason."""
    reason = _REASONS.get(ocpp_reason or "Local", "Local")
    if ev_was_done and reason in ("EVDisconnected", "Local"):
        return "Complete"
    return reason


# --- time ----------------------------------------------------------------------------------------


def epoch_s(iso: str) -> int:
    """An OCPP dateTime ("2026-12-04T20:15:00Z", offsets and fractions allowed) as UTC epoch seconds.
    ValueError for anything else: the caller answers the charger with a FormationViolation."""
    if not isinstance(iso, str) or not iso:
        raise ValueError("not a dateTime: %r" % (iso,))
    text = iso[:-1] + "+00:00" if iso.endswith(("Z", "z")) else iso
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # chargers that omit the zone mean UTC (the spec asks for it)
    return int(moment.timestamp())


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- identifiers ---------------------------------------------------------------------------------

MAX_TRANSACTION_ID = 2**31 - 1  # a JSON integer chargers store in 32 bits
MAX_ID_TAG = 20  # CiString20Type


def session_id(station_id: str, transaction_id: int) -> str:
    """evhub's session id for the transaction id the central system issued to `station_id`."""
    return "%s:%d" % (station_id, transaction_id)


def transaction_id(station_id: str, sid: str) -> int | None:
    """The transaction id inside `sid` if it is one of `station_id`'s OCPP sessions, else None."""
    prefix = station_id + ":"
    if not sid.startswith(prefix):
        return None
    tail = sid[len(prefix) :]
    if not tail.isdigit() or len(tail) > 10:
        return None
    tx = int(tail)
    return tx if 0 < tx <= MAX_TRANSACTION_ID else None


def normal_id_tag(tag: str) -> str:
    """idTags compare case-insensitively (CiString): stored and looked up upper-cased.
    ValueError when it cannot be an idTag."""
    if not isinstance(tag, str) or not 0 < len(tag) <= MAX_ID_TAG or not tag.isprintable():
        raise ValueError("an idTag is 1..%d printable characters" % MAX_ID_TAG)
    return tag.upper()


def app_id_tag(vehicle_id: str) -> str:
    """A vehicle's idTag when none was provisioned for it: "EV" + 18 base32 characters of a hash
    of its id. Stable, 20 characters, upper case; the caller checks the table for a collision."""
    digest = hashlib.sha256(vehicle_id.encode()).digest()
    return "EV" + base64.b32encode(digest).decode()[: MAX_ID_TAG - 2]


KEY_LENGTH = 20  # the Basic-auth password (AuthorizationKey): 16..20 bytes in the 1.6 security whitepaper
_KEY_ALPHABET = string.ascii_letters + string.digits


def new_ocpp_key() -> str:
    """A station key an OCPP charger can hold: 20 characters of [A-Za-z0-9] (~119 bits) from the OS CSPRNG."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(KEY_LENGTH))


# --- reservations --------------------------------------------------------------------------------


def reserve_now_plan(start: int, end: int, grace_s: int, lead_s: int) -> tuple[int, int]:
    """(when to send ReserveNow, its expiryDate) for evhub's window [start, end).

    OCPP 1.6 ReserveNow reserves from the moment it arrives until expiryDate (§5.13); evhub books
    future windows. So the central system holds the window and sends ReserveNow `lead_s` before
    it starts (blocking walk-ins no earlier than that), expiring when a no-show would be released
    (start + grace) or at the window's end, whichever is first."""
    if end <= start:
        raise ValueError("a window ends after it starts")
    return start - max(0, lead_s), min(end, start + max(0, grace_s))

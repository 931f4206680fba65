"""The hub's named states: what a connector reports, what a driver sees, where a reservation is.

StrEnums, so a member equals the text on the wire, in the store and in the API ("Available" ==
ConnectorStatus.AVAILABLE): the hub compares against names, and nothing else changes shape.
transport.kinds.CONNECTOR_STATUSES / STATION_STATUSES are the wire's lists (the board keeps its own
copies in firmware/connector.py); tests/test_states.py holds all three in step.
"""

from enum import StrEnum


class ConnectorStatus(StrEnum):
    """A connector's status as a station reports it (OCPP 1.6 meanings)."""

    AVAILABLE = "Available"
    RESERVED = "Reserved"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"  # the charger paused the energy: only OCPP chargers send it
    FINISHING = "Finishing"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class StationStatus(StrEnum):
    """The one word a driver sees for a whole station."""

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    OFFLINE = "Offline"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ReservationState(StrEnum):
    """A reservation's life: confirmed, then exactly one of the three ends."""

    CONFIRMED = "confirmed"
    FULFILLED = "fulfilled"  # the vehicle charged in its window
    CANCELLED = "cancelled"  # by the vehicle, the operator, or a station that could not hold it
    EXPIRED = "expired"  # a no-show past the grace


# A station that cannot charge anyone now, whatever its reservations say.
CANNOT_CHARGE = (StationStatus.OFFLINE, StationStatus.FAULTED, StationStatus.UNAVAILABLE)

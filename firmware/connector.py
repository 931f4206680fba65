"""One connector: its status (OCPP 1.6 meanings), the legal transitions, and its running session.

The connector refuses an illegal transition with ``Refused(E_INVALID_STATE, ...)``;
the charge point decides *which* transition an event asks for. The session fields
live here so a connector is the one place to look for what it is doing.
"""

import sys

from transport.errors import E_INVALID_STATE, EvhubError

AVAILABLE = "Available"
RESERVED = "Reserved"
PREPARING = "Preparing"
CHARGING = "Charging"
SUSPENDED_EV = "SuspendedEV"
FINISHING = "Finishing"
UNAVAILABLE = "Unavailable"
FAULTED = "Faulted"

# status: the statuses it may move to (on CPython also TRANSITIONS, status -> tuple, for tools and tests)
_MOVES = """
Available: Reserved Preparing Unavailable Faulted
Reserved: Available Preparing Unavailable Faulted
Preparing: Charging Available Reserved Faulted
Charging: SuspendedEV Finishing Available Faulted
SuspendedEV: Charging Finishing Available Faulted
Finishing: Available Reserved Preparing Unavailable Faulted
Unavailable: Available Reserved Faulted
Faulted: Available Unavailable Reserved
"""


def moves(status):
    """The statuses `status` may move to (a list, empty for an unknown status)."""
    i = _MOVES.find("\n%s:" % status)
    if i < 0:
        return []
    return _MOVES[_MOVES.find(" ", i) + 1 : _MOVES.find("\n", i + 1)].split(" ")


if sys.implementation.name != "micropython":  # tools and tests
    TRANSITIONS = {line.split(":")[0]: tuple(moves(line.split(":")[0])) for line in _MOVES.split("\n") if line}


# Statuses with a session in progress.
BUSY = (PREPARING, CHARGING, SUSPENDED_EV, FINISHING)


class Refused(EvhubError):
    """An event the station will not act on (code, text)."""


class Connector:
    def __init__(self, number):
        self.number = number
        self.status = AVAILABLE
        self.info = None  # STATUS info (fault text)
        self.changed = True  # status not yet reported to the hub on this link
        self.vehicle = None  # vehicle plugged in (or authorised by REMOTE_START)
        self.remote = False  # the vehicle came with REMOTE_START, not plug(): it leaves by itself
        self.hold = None  # the Reservation this connector shows Reserved for
        self.pending_unavailable = False  # CHANGE_AVAILABILITY(False) waiting for the session to end
        self.auto_leave_at = None  # wall time a simulated vehicle unplugs after Finishing
        self.clear_session()

    def clear_session(self):
        self.session_id = None
        self.reservation_id = None
        self.meter_start_wh = 0
        self.started = 0
        self.charge = None  # charging.Charge
        self.last_t = 0  # wall time the charge was last advanced
        self.next_meter = 0  # wall time of the next METER
        self.next_checkpoint = 0  # wall time the energy is next saved in the journal

    def go(self, status, info=None):
        """Move to `status`; raises Refused(E_INVALID_STATE) if the table forbids it."""
        if status != self.status and status not in moves(self.status):
            raise Refused(E_INVALID_STATE, "connector %d: %s -> %s not allowed" % (self.number, self.status, status))
        if status != self.status or info != self.info:
            self.status = status
            self.info = info
            self.changed = True

    @property
    def free(self):
        """Available for any vehicle right now."""
        return self.status == AVAILABLE and self.hold is None

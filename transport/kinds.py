"""The one table of message kinds, used by hub, tools and firmware.

A message on the wire is a msgpack array ``[kind, seq, field1, field2, ...]``.
``seq`` is a fresh integer (1..2**32-1) on every request; a reply echoes the
request's seq; an unsolicited event carries seq 0.

Each entry of KINDS is ``kind: (name, direction, fields)`` where ``fields`` is a
tuple of ``(field_name, type)``. Types are the T_* codes below; ``| OPT`` allows
None. Extra trailing fields are ignored (so a newer peer may append fields);
missing fields are refused. docs/PROTOCOL.md in this package is checked against
this table by the test suite.
"""

from transport.compat import const

PROTOCOL_VERSION = const(1)

# Field types.
T_INT = const(1)  # integer (never bool)
T_NUM = const(2)  # int or float
T_STR = const(3)  # UTF-8 string
T_BIN = const(4)  # bytes
T_BOOL = const(5)
T_LIST = const(6)
T_MAP = const(7)
T_ANY = const(8)  # any msgpack value
OPT = const(0x10)  # flag: None is also accepted

TYPE_NAMES = {
    T_INT: "int",
    T_NUM: "num",
    T_STR: "str",
    T_BIN: "bin",
    T_BOOL: "bool",
    T_LIST: "list",
    T_MAP: "map",
    T_ANY: "any",
}

# Who sends a kind. "any" kinds are legal in both directions on every link.
ANY = "any"
STATION_TO_HUB = "station>hub"
HUB_TO_STATION = "hub>station"
VEHICLE_TO_HUB = "vehicle>hub"
HUB_TO_VEHICLE = "hub>vehicle"
OPERATOR_TO_HUB = "operator>hub"
HUB_TO_OPERATOR = "hub>operator"

ROLES = ("station", "vehicle", "operator")

# --- session ---------------------------------------------------------------
HELLO = const(1)
CHALLENGE = const(2)
AUTH = const(3)
WELCOME = const(4)
PING = const(5)
PONG = const(6)
ERROR = const(7)
ACK = const(8)
# --- station -> hub --------------------------------------------------------
BOOT = const(20)
STATUS = const(21)
METER = const(22)
SESSION_START = const(23)
SESSION_END = const(24)
# --- hub -> station --------------------------------------------------------
RESERVE_NOW = const(40)
CANCEL_RESERVATION = const(41)
REMOTE_START = const(42)
REMOTE_STOP = const(43)
CHANGE_AVAILABILITY = const(44)
CONFIGURE = const(45)
TRIGGER = const(46)
# --- vehicle <-> hub -------------------------------------------------------
POSITION = const(60)
NEAREST = const(61)
NEAREST_RESULT = const(62)
RESERVE = const(63)
RESERVE_RESULT = const(64)
CANCEL = const(65)
LIST_RESERVATIONS = const(66)
RESERVATIONS = const(67)
START_CHARGE = const(68)
STOP_CHARGE = const(69)
CHARGE_PROGRESS = const(70)
COMPLETE = const(71)
SESSION_STARTED = const(72)
# --- operator <-> hub ------------------------------------------------------
STATIONS_LIST = const(90)
STATIONS = const(91)
HUB_STATS = const(92)
STATS = const(93)

KINDS = {
    # session: hello -> challenge -> auth(proof) -> welcome; heartbeat; errors
    HELLO: ("hello", ANY, (("proto", T_INT), ("role", T_STR), ("id", T_STR), ("nonce", T_BIN))),
    CHALLENGE: ("challenge", ANY, (("nonce", T_BIN),)),
    AUTH: ("auth", ANY, (("proof", T_BIN),)),
    WELCOME: ("welcome", ANY, (("time", T_INT), ("heartbeat_s", T_INT))),
    PING: ("ping", ANY, (("time", T_INT),)),
    PONG: ("pong", ANY, (("time", T_INT),)),
    ERROR: ("error", ANY, (("code", T_INT), ("text", T_STR))),
    ACK: ("ack", ANY, ()),
    # station -> hub
    BOOT: (
        "boot",
        STATION_TO_HUB,
        (("lat", T_NUM), ("lon", T_NUM), ("connectors", T_INT), ("max_kw", T_NUM), ("firmware", T_STR)),
    ),
    STATUS: ("status", STATION_TO_HUB, (("connector", T_INT), ("status", T_STR), ("info", T_STR | OPT))),
    METER: (
        "meter",
        STATION_TO_HUB,
        (
            ("connector", T_INT),
            ("session_id", T_STR | OPT),
            ("energy_wh", T_INT),
            ("power_w", T_INT),
            ("time", T_INT),
        ),
    ),
    SESSION_START: (
        "session_start",
        STATION_TO_HUB,
        (
            ("session_id", T_STR),
            ("connector", T_INT),
            ("vehicle_id", T_STR),
            ("reservation_id", T_INT | OPT),
            ("meter_start_wh", T_INT),
            ("time", T_INT),
        ),
    ),
    SESSION_END: (
        "session_end",
        STATION_TO_HUB,
        (
            ("session_id", T_STR),
            ("connector", T_INT),
            ("vehicle_id", T_STR),
            ("reservation_id", T_INT | OPT),
            ("energy_wh", T_INT),
            ("started", T_INT),
            ("ended", T_INT),
            ("reason", T_STR),
        ),
    ),
    # hub -> station
    RESERVE_NOW: (
        "reserve_now",
        HUB_TO_STATION,
        (
            ("reservation_id", T_INT),
            ("connector", T_INT),
            ("vehicle_id", T_STR),
            ("start", T_INT),
            ("end", T_INT),
        ),
    ),
    CANCEL_RESERVATION: ("cancel_reservation", HUB_TO_STATION, (("reservation_id", T_INT),)),
    REMOTE_START: (
        "remote_start",
        HUB_TO_STATION,
        (("connector", T_INT), ("vehicle_id", T_STR), ("reservation_id", T_INT | OPT), ("ev", T_MAP | OPT)),
    ),
    REMOTE_STOP: ("remote_stop", HUB_TO_STATION, (("session_id", T_STR),)),
    CHANGE_AVAILABILITY: ("change_availability", HUB_TO_STATION, (("connector", T_INT), ("available", T_BOOL))),
    CONFIGURE: ("configure", HUB_TO_STATION, (("key", T_STR), ("value", T_ANY))),
    TRIGGER: ("trigger", HUB_TO_STATION, (("what", T_STR),)),
    # vehicle <-> hub
    POSITION: ("position", VEHICLE_TO_HUB, (("lat", T_NUM), ("lon", T_NUM), ("time", T_INT), ("soc", T_NUM | OPT))),
    NEAREST: ("nearest", VEHICLE_TO_HUB, (("lat", T_NUM), ("lon", T_NUM), ("k", T_INT), ("filters", T_MAP | OPT))),
    NEAREST_RESULT: ("nearest_result", HUB_TO_VEHICLE, (("stations", T_LIST),)),
    RESERVE: ("reserve", VEHICLE_TO_HUB, (("station_id", T_STR), ("start", T_INT), ("end", T_INT))),
    RESERVE_RESULT: (
        "reserve_result",
        HUB_TO_VEHICLE,
        (("ok", T_BOOL), ("reservation_id", T_INT | OPT), ("alternatives", T_LIST), ("reason", T_STR | OPT)),
    ),
    CANCEL: ("cancel", VEHICLE_TO_HUB, (("reservation_id", T_INT),)),
    LIST_RESERVATIONS: ("list_reservations", VEHICLE_TO_HUB, ()),
    RESERVATIONS: ("reservations", HUB_TO_VEHICLE, (("reservations", T_LIST),)),
    START_CHARGE: (
        "start_charge",
        VEHICLE_TO_HUB,
        (("station_id", T_STR), ("reservation_id", T_INT | OPT), ("ev", T_MAP | OPT)),
    ),
    STOP_CHARGE: ("stop_charge", VEHICLE_TO_HUB, (("session_id", T_STR),)),
    CHARGE_PROGRESS: (
        "charge_progress",
        HUB_TO_VEHICLE,
        (("session_id", T_STR), ("station_id", T_STR), ("energy_wh", T_INT), ("power_w", T_INT)),
    ),
    COMPLETE: (
        "complete",
        HUB_TO_VEHICLE,
        (
            ("session_id", T_STR),
            ("station_id", T_STR),
            ("energy_wh", T_INT),
            ("duration_s", T_INT),
            ("reason", T_STR),
        ),
    ),
    SESSION_STARTED: (
        "session_started",
        HUB_TO_VEHICLE,
        (("session_id", T_STR), ("station_id", T_STR), ("connector", T_INT)),
    ),
    # operator <-> hub
    STATIONS_LIST: ("stations_list", OPERATOR_TO_HUB, ()),
    STATIONS: ("stations", HUB_TO_OPERATOR, (("stations", T_LIST),)),
    HUB_STATS: ("hub_stats", OPERATOR_TO_HUB, ()),
    STATS: ("stats", HUB_TO_OPERATOR, (("stats", T_MAP),)),
}

# Connector statuses a station reports (OCPP 1.6 meanings).
CONNECTOR_STATUSES = (
    "Available",
    "Reserved",
    "Preparing",
    "Charging",
    "SuspendedEV",
    "Finishing",
    "Unavailable",
    "Faulted",
)

# Station statuses the hub shows to vehicles and operators.
STATION_STATUSES = ("Available", "Occupied", "Reserved", "Offline", "Unavailable", "Faulted")

# Why a session ended (SESSION_END.reason / COMPLETE.reason).
END_REASONS = ("Complete", "Local", "Remote", "EVDisconnected", "HubLost", "PowerLoss", "Fault")

# Sent by a role; the hub refuses kinds a role may not send with E_FORBIDDEN.
SENDS = {
    "station": (STATION_TO_HUB,),
    "vehicle": (VEHICLE_TO_HUB,),
    "operator": (OPERATOR_TO_HUB,),
}


def kind_name(kind):
    entry = KINDS.get(kind)
    return entry[0] if entry else "kind-%s" % (kind,)


def may_send(role, kind):
    """Whether a peer with `role` may send `kind` to the hub."""
    entry = KINDS.get(kind)
    if entry is None:
        return False
    direction = entry[1]
    return direction == ANY or direction in SENDS.get(role, ())

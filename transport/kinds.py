"""The one table of message kinds, used by hub, tools and firmware.

A message on the wire is a msgpack array ``[kind, seq, field1, field2, ...]``.
``seq`` is a fresh integer (1..2**32-1) on every request; a reply echoes the
request's seq; an unsolicited event carries seq 0.

The table (``_TABLE`` below) is one line per kind::

    number name direction types field1 field2 ...

``direction`` is ``*`` (either way, every role) or ``<sender>><receiver>`` by
initial: ``s`` station, ``v`` vehicle, ``o`` operator, ``h`` hub. ``types`` has
one character per field: ``i`` int (never a bool), ``n`` num (int or float),
``s`` str, ``b`` bin, ``t`` bool, ``l`` list, ``m`` map, ``a`` any msgpack value;
upper case also accepts nil. A kind without fields has no types column.
Extra trailing fields are ignored (so a newer peer may append fields); a missing
field is refused unless it is at the end and may be nil, then it reads as nil
(so an older peer may leave out a field appended later, as ``reserve``'s
request_id). ``PROTOCOL.md`` in this package is checked against this table by
the test suite.

Each kind is also a module attribute named after it in upper case:
``kinds.BOOT == 20``. They come from the table too: on CPython all of them at
import, on the board read from the table at each use (so the ~40 names cost no
heap; board modules that use a kind often fold it into a private ``const()``).

The table is one string so that importing it on the board builds one object, not
hundreds of tuples: ``spec(kind)`` reads a kind's line when asked (and caches it
on CPython, where the hub asks for every message). ``KINDS`` (kind -> ``(name,
direction, ((field, type), ...))`` with long names such as ``"station>hub"`` and
``"int?"``), ``TYPE_NAMES``, ``CONNECTOR_STATUSES`` and ``STATION_STATUSES`` are
built on first use, for tools and tests, by ``transport.tableviews``.
"""

import sys

from transport.compat import const

PROTOCOL_VERSION = const(2)
# Limits both ends hold to, so a station the hub accepts can run the firmware. Connectors: 8,
# what an ESP32 station can drive: one control-pilot sense per connector on ADC1 (8 channels;
# ADC2 is unusable while Wi-Fi runs), and per-connector state in a 64 KB heap. Reservations: the
# rows of a station's table (firmware/reservations.py); the hub sends a station no more open
# windows than this (hub/station_sync.py).
MAX_CONNECTORS = const(8)
MAX_RESERVATIONS = const(16)

# number name direction types fields... (see the module docstring)
_TABLE = """
1 hello * issb proto role id nonce
2 challenge * b nonce
3 auth * b proof
4 welcome * iib time heartbeat_s proof
5 ping * i time
6 pong * i time
7 error * is code text
8 ack *
20 boot s>h nnins lat lon connectors max_kw firmware
21 status s>h isS connector status info
22 meter s>h iSiii connector session_id energy_wh power_w time
23 session_start s>h sisIii session_id connector vehicle_id reservation_id meter_start_wh time
24 session_end s>h sisIiiis session_id connector vehicle_id reservation_id energy_wh started ended reason
40 reserve_now h>s iisii reservation_id connector vehicle_id start end
41 cancel_reservation h>s i reservation_id
42 remote_start h>s isIM connector vehicle_id reservation_id ev
43 remote_stop h>s s session_id
44 change_availability h>s it connector available
45 configure h>s sa key value
46 trigger h>s s what
60 position v>h nniN lat lon time soc
61 nearest v>h nniM lat lon k filters
62 nearest_result h>v l stations
63 reserve v>h siiS station_id start end request_id
64 reserve_result h>v tIlS ok reservation_id alternatives reason
65 cancel v>h i reservation_id
66 list_reservations v>h
67 reservations h>v l reservations
68 start_charge v>h sIM station_id reservation_id ev
69 stop_charge v>h s session_id
70 charge_progress h>v ssii session_id station_id energy_wh power_w
71 complete h>v ssiis session_id station_id energy_wh duration_s reason
72 session_started h>v ssi session_id station_id connector
73 list_sessions v>h
74 sessions h>v l sessions
75 reservation_history v>h
90 stations_list o>h
91 stations h>o l stations
92 hub_stats o>h
93 stats h>o m stats
"""

ROLES = ("station", "vehicle", "operator")

# Why a session ended (SESSION_END.reason / COMPLETE.reason).
END_REASONS = ("Complete", "Local", "Remote", "EVDisconnected", "HubLost", "PowerLoss", "Fault")

# CPython (the hub parses every message): kind -> spec, filled on first use. The board reads
# the line again each time rather than keep a copy of every kind it has seen.
_CACHE = None if sys.implementation.name == "micropython" else {}


def spec(kind):
    """``(name, direction, types, field_names)`` of `kind`, or None if the table lacks it.

    ``direction`` and ``types`` are the table's short codes (``"s>h"``, ``"isS"``)."""
    if _CACHE is not None:
        s = _CACHE.get(kind)
        if s is not None:
            return s
    if type(kind) is not int:
        return None
    i = _TABLE.find("\n%d " % kind)
    if i < 0:
        return None
    words = _TABLE[i + 1 : _TABLE.find("\n", i + 1)].split(" ")
    s = (words[1], words[2], words[3] if len(words) > 3 else "", tuple(words[4:]))
    if _CACHE is not None:
        _CACHE[kind] = s
    return s


def number(name):
    """The kind called `name` (``"boot"``) in the table, or None."""
    key = " %s " % name
    i = _TABLE.find(key)
    while i >= 0:
        j = _TABLE.rfind("\n", 0, i) + 1
        if _TABLE[j:i].isdigit():  # the name column, not a field of the same name
            return int(_TABLE[j:i])
        i = _TABLE.find(key, i + 1)
    return None


def kind_name(kind):
    s = spec(kind)
    return s[0] if s else "kind-%s" % (kind,)


def may_send(role, kind):
    """Whether a peer with `role` may send `kind` to the hub."""
    s = spec(kind)
    if s is None:
        return False
    d = s[1]
    return d == "*" or (d[2] == "h" and role in ROLES and role[0] == d[0])


def type_name(code):
    """``"int"``, ``"str?"`` ... for a type character of the table."""
    name = "int num str bin bool list map any".split(" ")["insbtlma".index(code.lower())]
    return name + "?" if code.isupper() else name


def __getattr__(name):
    # Kind constants on the board: read from the table at each use, never stored. Storing them
    # would grow this module's dict at run time, an allocation that can fail on a fragmented
    # heap (it did, at the first BOOT, in a 64 KB heap). The long-form views (KINDS ...) are
    # for tools and tests, from transport.tableviews (CPython only), built once.
    if name.isupper():
        value = number(name.lower())
        if value is not None:
            return value
    try:
        from transport.tableviews import kinds_view
    except ImportError:  # the board: its bundle leaves the CPython views out
        raise AttributeError(name)
    value = kinds_view(name)
    globals()[name] = value
    return value


if _CACHE is not None:  # CPython (tools, tests, the hub): never needed on the board

    def kinds():
        """Every kind number in the table, in table order."""
        return [int(line.split(" ", 1)[0]) for line in _TABLE.split("\n") if line]

    globals().update((spec(k)[0].upper(), k) for k in kinds())  # every kind constant, now

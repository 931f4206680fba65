"""Charge-point configuration: the documented keys, their defaults and their checks.

A config is a plain dict (on the board it is ``config.json``). ``normalize`` returns a
checked copy with every default filled in, or raises ValueError with a message that
names the key. Keys:

=================  ======================================================================
id                 station id as provisioned in the hub (required, 1..64 characters)
key                the station's secret key (hex string from ``evhub stations add``)
hub                TCP hub: ``{"host": "192.168.1.10", "port": 7878}``, TLS: add ``"tls": true, "ca": "hub-ca.pem"``
                   (no ``ca`` is refused unless ``"tls_insecure": true``: nothing checks the hub then)
uart               serial hub link on the board: ``{"id": 1, "tx": 17, "rx": 16, "baud": 115200}``
serial             serial hub link on the unix port / CPython: a tty path or pyserial URL
wifi               ``{"ssid": "...", "password": "..."}`` (board only)
lat, lon           WGS-84 position (degrees)
connectors         number of connectors (1..8)
max_kw             station power limit per connector (kW)
heartbeat_s        ping interval before the hub's WELCOME overrides it
meter_interval_s   METER period while charging, in (possibly simulated) wall seconds
offline_policy     "reduce": finish running sessions at offline_power_kw; "stop": end them (HubLost)
offline_power_kw   the reduced power for "reduce"
offline_after_s    disconnected this long (monotonic s) counts as offline; PeerSilent is immediate
hold_before_s      a reservation shows Reserved this long before its start
grace_s            a reservation with no session expires this long after its start
finishing_s        a remotely started session's vehicle leaves this long after the end (sim)
checkpoint_s       a running session's energy is saved to the journal this often (power loss)
request_timeout_s  a request (BOOT, STATUS, session records) unanswered this long is sent again
relay_pins         GPIO per connector driving the contactor relay (board only)
evse               control pilot, S0 meter, button (board): ``{"adc": [34], "pwm": [25]}`` and optional
                   "mv", "max_a", "volts", "phases", "meter", "imp_kwh", "button" (firmware/pilot.py
                   checks them; firmware/README.md); needs relay_pins. With a pilot, REMOTE_START
                   needs a vehicle plugged in (firmware/hubrequests.py). Not in the table below:
                   absent unless given (one more key in every board's config dict costs heap)
sync_time          adopt the hub's clock from WELCOME/PONG (board: its RTC is not set)
journal            path of the session journal file (board default "journal.log")
=================  ======================================================================
"""

import json
import sys

from transport.compat import const
from transport.kinds import MAX_CONNECTORS as _MAX_CONNECTORS  # one limit with the hub

_MAX_HUBS = const(4)  # hubs a station may list (several hubs on one PostgreSQL)

# One line per key: name, default (JSON), and for a number its inclusive range (JSON). A "*" after
# the name marks the keys the hub may change at run time with CONFIGURE. Read a line at a time
# (a config is checked at boot and on CONFIGURE), so the board keeps no table of it in RAM;
# DEFAULTS and RUNTIME_KEYS, for tools and tests, exist on CPython only.
_TABLE = """
id null
key null
hub null
uart null
serial null
wifi null
lat 0.0 -90 90
lon 0.0 -180 180
connectors 1
max_kw* 22.0 0.1 1000
heartbeat_s* 30 1 86400
meter_interval_s* 60 1 86400
offline_policy* "reduce"
offline_power_kw* 3.7 0.1 1000
offline_after_s* 90 1 86400
hold_before_s* 600 0 86400
grace_s* 600 0 86400
finishing_s* 30 0 86400
checkpoint_s 300 1 86400
request_timeout_s 10 1 300
relay_pins null
sync_time false
journal "journal.log"
"""


def _line(key):
    """The table line of `key` split in words (its name without the "*"), or None."""
    for sep in (" ", "* "):
        i = _TABLE.find("\n%s%s" % (key, sep))
        if i >= 0:
            return _TABLE[i + 1 : _TABLE.find("\n", i + 1)].split(" ")
    return None


def keys():
    """Every config key, in table order."""
    return [line.split(" ", 1)[0].rstrip("*") for line in _TABLE.split("\n") if line]


def runtime_keys():
    """The keys the hub may change with CONFIGURE."""
    return [line.split(" ", 1)[0][:-1] for line in _TABLE.split("\n") if line.split(" ", 1)[0][-1:] == "*"]


if sys.implementation.name != "micropython":  # tools and tests
    DEFAULTS = {k: json.loads(_line(k)[1]) for k in keys()}  # key -> default
    RUNTIME_KEYS = tuple(runtime_keys())


def check(key, value):
    """Checks one key's value; returns the value to store or raises ValueError naming the key."""
    line = _line(key)
    if line is not None and len(line) > 2:
        lo = json.loads(line[2])
        hi = json.loads(line[3])
        t = type(value)
        if (t is not int and t is not float) or value < lo or value > hi:
            raise ValueError("%s must be a number in %s..%s" % (key, lo, hi))
        if key[-2:] == "_s" and t is not int:  # times are ints on the board (no float32 clocks)
            if value != int(value):
                raise ValueError("%s must be a whole number of seconds" % key)
            value = int(value)
        return value
    bad = None
    if key == "offline_policy":
        if value != "reduce" and value != "stop":
            bad = "one of reduce, stop"
    elif key == "connectors":
        if type(value) is not int or value < 1 or value > _MAX_CONNECTORS:
            bad = "an integer in 1..%d" % _MAX_CONNECTORS
    elif key == "id":
        if type(value) is not str or not value or len(value) > 64:
            bad = "a string of 1..64 characters"
    elif key == "key":
        if type(value) is not str or not value:
            bad = "a non-empty string"
    elif key == "sync_time":
        if type(value) is not bool:
            bad = "true or false"
    elif value is None:
        pass  # hub, uart, relay_pins: optional
    elif key == "hub":
        # One hub, or a list of hubs sharing one PostgreSQL: the link tries them in turn.
        for one in value if type(value) is list and 0 < len(value) <= _MAX_HUBS else [value]:
            if (
                type(one) is not dict
                or type(one.get("host")) is not str
                or type(one.get("port")) is not int
                or not 0 < one["port"] < 65536
            ):
                bad = '{"host": str, "port": 1..65535}, or a list of 1..%d of them' % _MAX_HUBS
            elif one.get("tls") and not one.get("ca") and one.get("tls_insecure") is not True:
                # TLS that checks no certificate talks to whoever answers: say so explicitly, or give the CA.
                bad = 'given a "ca" with "tls": true (or "tls_insecure": true to skip the certificate check)'
    elif key == "uart":
        if (
            type(value) is not dict
            or type(value.get("tx")) is not int
            or type(value.get("rx")) is not int
            or type(value.get("baud")) is not int
        ):
            bad = '{"id": int, "tx": int, "rx": int, "baud": int}'
    elif key == "relay_pins":
        if type(value) is not list or not all(type(p) is int for p in value):
            bad = "a list of GPIO numbers"
    if bad is not None:
        raise ValueError("%s must be %s" % (key, bad))
    return value


def normalize(config):
    """A checked copy of `config` with defaults filled in; ValueError names the bad key."""
    out = {}
    for k in keys():
        out[k] = json.loads(_line(k)[1])
    for k in config:
        out[k] = config[k]
    for k in keys():
        out[k] = check(k, out[k])
    pins = out["relay_pins"]
    if pins is not None and len(pins) != out["connectors"]:
        raise ValueError("relay_pins needs one pin per connector (%d)" % out["connectors"])
    # The pilot's other checks are firmware/pilot.py check_config: loaded only by a board with a
    # pilot (every string in a board module is interned in RAM).
    return out

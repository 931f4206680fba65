"""Charge-point configuration: the documented keys, their defaults and their checks.

A config is a plain dict (on the board it is ``config.json``). ``normalize`` returns a
checked copy with every default filled in, or raises ValueError with a message that
names the key. Keys:

=================  ======================================================================
id                 station id as provisioned in the hub (required, 1..64 characters)
key                the station's secret key (hex string from ``evhub stations add``)
hub                TCP hub: ``{"host": "192.168.1.10", "port": 7878}``
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
relay_pins         GPIO per connector driving the contactor relay (board only)
sync_time          adopt the hub's clock from WELCOME/PONG (board: its RTC is not set)
journal            path of the session journal file (board default "journal.log")
=================  ======================================================================
"""

DEFAULTS = {
    "id": None,
    "key": None,
    "hub": None,
    "uart": None,
    "serial": None,
    "wifi": None,
    "lat": 0.0,
    "lon": 0.0,
    "connectors": 1,
    "max_kw": 22.0,
    "heartbeat_s": 30,
    "meter_interval_s": 60,
    "offline_policy": "reduce",
    "offline_power_kw": 3.7,
    "offline_after_s": 90,
    "hold_before_s": 600,
    "grace_s": 600,
    "finishing_s": 30,
    "relay_pins": None,
    "sync_time": False,
    "journal": "journal.log",
}

MAX_CONNECTORS = 8
OFFLINE_POLICIES = ("reduce", "stop")

# Keys the hub may change at run time with CONFIGURE.
RUNTIME_KEYS = (
    "max_kw",
    "heartbeat_s",
    "meter_interval_s",
    "offline_policy",
    "offline_power_kw",
    "offline_after_s",
    "hold_before_s",
    "grace_s",
    "finishing_s",
)


def _num(value):
    t = type(value)
    return t is int or t is float


def check(key, value):
    """Checks one key's value; returns the value to store or raises ValueError."""
    if key in ("max_kw", "offline_power_kw"):
        if not _num(value) or value <= 0 or value > 1000:
            raise ValueError("%s must be a number in (0, 1000] kW" % key)
        return float(value)
    if key in ("heartbeat_s", "meter_interval_s", "offline_after_s"):
        if not _num(value) or value < 1 or value > 86400:
            raise ValueError("%s must be a number of seconds in 1..86400" % key)
        return value
    if key in ("hold_before_s", "grace_s", "finishing_s"):
        if not _num(value) or value < 0 or value > 86400:
            raise ValueError("%s must be a number of seconds in 0..86400" % key)
        return value
    if key == "offline_policy":
        if value not in OFFLINE_POLICIES:
            raise ValueError("offline_policy must be one of %s" % ", ".join(OFFLINE_POLICIES))
        return value
    if key == "connectors":
        if type(value) is not int or value < 1 or value > MAX_CONNECTORS:
            raise ValueError("connectors must be an integer in 1..%d" % MAX_CONNECTORS)
        return value
    if key == "lat":
        if not _num(value) or value < -90 or value > 90:
            raise ValueError("lat must be a number in -90..90")
        return float(value)
    if key == "lon":
        if not _num(value) or value < -180 or value > 180:
            raise ValueError("lon must be a number in -180..180")
        return float(value)
    if key == "id":
        if type(value) is not str or not value or len(value) > 64:
            raise ValueError("id must be a string of 1..64 characters")
        return value
    if key == "key":
        if type(value) is not str or not value:
            raise ValueError("key must be a non-empty string")
        return value
    if key == "hub":
        if value is None:
            return None
        if type(value) is not dict or type(value.get("host")) is not str or type(value.get("port")) is not int:
            raise ValueError('hub must be {"host": str, "port": int}')
        if not 0 < value["port"] < 65536:
            raise ValueError("hub port must be in 1..65535")
        return value
    if key == "uart":
        if value is None:
            return None
        if type(value) is not dict:
            raise ValueError('uart must be {"id": int, "tx": int, "rx": int, "baud": int}')
        for k in ("tx", "rx", "baud"):
            if type(value.get(k)) is not int:
                raise ValueError("uart.%s must be an integer" % k)
        return value
    if key == "relay_pins":
        if value is None:
            return None
        if type(value) is not list or not all(type(p) is int for p in value):
            raise ValueError("relay_pins must be a list of GPIO numbers")
        return value
    if key == "sync_time":
        if type(value) is not bool:
            raise ValueError("sync_time must be true or false")
        return value
    return value


def normalize(config):
    """A checked copy of `config` with defaults filled in; ValueError names the bad key."""
    out = {}
    for k in DEFAULTS:
        out[k] = DEFAULTS[k]
    for k in config:
        out[k] = config[k]
    for k in ("id", "key", "connectors", "lat", "lon", "hub", "uart", "relay_pins", "sync_time") + RUNTIME_KEYS:
        out[k] = check(k, out[k])
    pins = out["relay_pins"]
    if pins is not None and len(pins) != out["connectors"]:
        raise ValueError("relay_pins needs one pin per connector (%d)" % out["connectors"])
    return out

"""Hub settings: defaults, overridden by a TOML file, overridden by command-line flags."""

import tomllib
from typing import Any

DEFAULTS: "dict[str, Any]" = {
    "listen": "tcp://127.0.0.1:7878",
    "db": "evhub.db",
    "hub_id": None,  # this hub among several on one PostgreSQL; default host:port
    "heartbeat_s": 30,  # stations ping this often; 3 missed = Offline
    "request_timeout_s": 15,
    "max_links": 20000,
    "max_outbox_bytes": 1 << 20,  # a link whose unsent bytes exceed this is a slow reader: cut off
    "max_frame": 1 << 20,  # largest frame the hub writes (a STATIONS or NEAREST_RESULT reply)
    "max_in_frame": 8192,  # largest frame the hub reads; each kind has a smaller limit (hub/io/framelimits.py)
    "handshake_timeout_s": 5,  # a link that has not authenticated by then is closed (slow-loris)
    "max_unauth_links": 256,  # TCP links not yet authenticated (at most RLIMIT_NOFILE/4); when full the oldest is closed
    "max_bad_messages": 20,  # protocol errors tolerated on one link before it is dropped
    "max_msgs_per_s": 20000,  # per link, sustained; a burst of twice this is allowed
    "login_failures_free": 5,  # failed handshakes per (address, id) before that pair must wait (doubling, max 300 s)
    "login_failures_per_s": 50,  # failed handshakes paid for per second, hub-wide; past it, failed pairs wait
    "no_show_grace_s": 600,
    "max_open_reservations_per_vehicle": 3,  # confirmed, not yet fulfilled/cancelled/expired; more is refused
    "max_waiting_reservations_per_vehicle": 10,  # requests one vehicle may have waiting for the book (fair share)
    "session_estimate_min": 45,  # expected length of a session with no reservation, for "Free in X min"
    "open_loopback_reads": True,  # HTTP reads without a token from 127.0.0.1 (the operator link needs its key)
    "speedup": 1.0,  # simulated time runs this many times faster (the laptop simulation)
    "epoch0": None,  # simulated time origin shared by every process of a simulation
    "tls_cert": "",  # PEM certificate chain: with tls_key, the TCP listener speaks TLS (clients use tls://)
    "tls_key": "",
    "http": "",  # HOST:PORT of the HTTP API and dashboard (e.g. 127.0.0.1:8080); empty = off
    "http_token": "",  # bearer token for HTTP writes (reservations); empty = HTTP writes refused
    "log_file": "",  # also write the log here (SIGHUP reopens it, for logrotate); empty = stderr only
    "serial": [],  # serial lines with charge points: pyserial URLs (/dev/ttyUSB0, socket://..., a pty path)
    "ocpp": "",  # ws://HOST:PORT or wss://HOST:PORT (TLS from tls_cert/tls_key) for OCPP 1.6J chargers; empty = off
    "ocpp_allow_profile1": False,  # serve plain ws:// (OCPP Security Profile 1: the key crosses in clear)
}


class ConfigError(ValueError):
    pass


def load(path=None, overrides=None):
    cfg = dict(DEFAULTS)
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError("cannot read config %s: %s" % (path, exc.strerror)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config %s is not valid TOML: %s" % (path, exc)) from None
        data = data.get("hub", data)
        if not isinstance(data, dict):
            raise ConfigError("config %s: [hub] must be a table of settings" % path)
        unknown = sorted(set(data) - set(DEFAULTS) - {"epoch0"})
        if unknown:
            raise ConfigError("config %s: unknown settings %s" % (path, ", ".join(unknown)))
        for key, value in data.items():
            if key in ("epoch0", "speedup") and type(value) in (int, float):
                pass  # numbers, whatever their default (epoch0 defaults to None)
            elif key == "hub_id" and type(value) is str:
                pass  # a name, where the default is None (host:port)
            elif key == "serial" and (type(value) is not list or not all(type(u) is str and u for u in value)):
                raise ConfigError("config %s: serial must be a list of port URLs" % path)
            elif type(value) is not type(DEFAULTS[key]):
                raise ConfigError("config %s: %s must be %s" % (path, key, type(DEFAULTS[key]).__name__))
            cfg[key] = value
    cfg["serial"] = list(cfg["serial"])  # never the shared default list
    for key, value in (overrides or {}).items():
        if value is not None:
            cfg[key] = value
    if cfg["hub_id"] is not None and not _good_hub_id(cfg["hub_id"]):
        raise ConfigError(
            "hub_id must be 1..%d printable characters without spaces (got %r)" % (MAX_HUB_ID, cfg["hub_id"])
        )
    for key, low in POSITIVE.items():
        if not cfg[key] >= low:  # "not >=" so that NaN fails too
            raise ConfigError("%s must be at least %s (got %r)" % (key, low, cfg[key]))
    return cfg


MAX_HUB_ID = 64  # as ids on the wire


def _good_hub_id(value):
    """A hub's name goes into cluster notifications as one space-separated word."""
    return type(value) is str and 0 < len(value) <= MAX_HUB_ID and value.isprintable() and " " not in value


# Settings that must be positive for the hub to work at all (0 links, 0 messages/s... are mistakes).
POSITIVE = {
    "heartbeat_s": 1,
    "request_timeout_s": 1,
    "max_links": 1,
    "max_unauth_links": 1,
    "max_outbox_bytes": 1024,
    "max_frame": 64,
    "max_in_frame": 64,
    "handshake_timeout_s": 1,
    "max_bad_messages": 1,
    "max_msgs_per_s": 1,
    "login_failures_free": 1,
    "login_failures_per_s": 1,
    "no_show_grace_s": 0,
    "session_estimate_min": 1,
    "speedup": 0.001,
    "max_open_reservations_per_vehicle": 1,
    "max_waiting_reservations_per_vehicle": 1,
}

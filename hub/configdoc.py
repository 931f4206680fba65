"""`evhub serve --print-config`: the hub's settings as a commented hub.toml.

Every setting in hub.config.DEFAULTS has a line of help here (a test holds them together), so the
printed file is the documentation of what a hub.toml may say. hub/deploy/hub.toml is this output
for the defaults, kept equal to it by the test suite.
"""

from __future__ import annotations

import json
from typing import Any

from hub.store.backend import mask

# (setting, help), in the order the file shows them; a blank name starts a new group.
DOCS: tuple[tuple[str, str], ...] = (
    ("", "Where the hub listens and keeps its state"),
    ("listen", "TCP address for charge points, vehicles and operators: tcp://HOST:PORT"),
    ("serial", "serial lines with charge points: pyserial URLs (/dev/ttyUSB0, socket://host:port, a pty path)"),
    ("db", "the store: a SQLite file (one hub per file; keep it 0600) or postgresql://... (several hubs)"),
    ("hub_id", "this hub's name among several on one PostgreSQL; empty = host:port"),
    ("log_file", "also write the log here; SIGHUP reopens it (logrotate). Empty: stderr only"),
    ("", "TLS on the TCP listener (clients then use tls://)"),
    ("tls_cert", "PEM certificate chain; empty = plain TCP"),
    ("tls_key", "the certificate's private key, if not in tls_cert"),
    ("", "OCPP 1.6J chargers (commercial wallboxes and DC chargers) beside our own boards"),
    ("ocpp", "ws://HOST:PORT or wss://HOST:PORT (TLS with tls_cert/tls_key: Security Profile 2); empty = off"),
    ("ocpp_allow_profile1", "allow plain ws:// (Security Profile 1: Basic auth without TLS; a VPN or a lab only)"),
    ("", "HTTP API, event stream, metrics and dashboard"),
    ("http", "HOST:PORT to serve them on (e.g. 127.0.0.1:8080); empty = off"),
    ("http_token", "bearer token for HTTP writes; better given by $EVHUB_HTTP_TOKEN than written here"),
    ("", "Links and their limits"),
    ("heartbeat_s", "seconds between station heartbeats; 3 missed = Offline"),
    ("request_timeout_s", "seconds a request to a station may go unanswered"),
    ("handshake_timeout_s", "seconds a new link has to authenticate before it is closed"),
    ("max_links", "links open at once (all kinds)"),
    (
        "max_unauth_links",
        "TCP links not yet authenticated (at most a quarter of the open-file limit); the oldest is closed past it",
    ),
    ("max_frame", "largest frame the hub writes on a TCP link (its stations/nearest replies), bytes"),
    ("max_in_frame", "largest frame the hub reads, bytes; each kind has a smaller limit (hub/io/framelimits.py)"),
    ("max_outbox_bytes", "unsent bytes one link may hold before it is cut off as a slow reader"),
    ("max_bad_messages", "protocol errors tolerated on one link before it is dropped"),
    ("max_msgs_per_s", "messages per second one link may send, sustained (bursts of twice that)"),
    (
        "login_failures_free",
        "failed logins per (address, id) tolerated before that pair must wait (doubling, up to 300 s)",
    ),
    ("login_failures_per_s", "failed logins per second hub-wide; past it, pairs that already failed wait"),
    ("open_loopback_reads", "HTTP reads from 127.0.0.1 without a token (the operator link always needs its key)"),
    ("", "Reservations and status"),
    ("no_show_grace_s", "seconds after a window starts before an unused reservation expires"),
    ("session_estimate_min", 'expected minutes of a session with no reservation, for "Free in X min"'),
    ("max_open_reservations_per_vehicle", "open (confirmed) reservations one vehicle may hold; more are refused"),
    ("max_waiting_reservations_per_vehicle", "reservation requests one vehicle may have waiting for the book"),
    ("", "Simulation only"),
    ("speedup", "simulated time runs this many times faster than real time"),
    ("epoch0", "simulated time origin shared by the processes of one simulation"),
)

SECRETS = frozenset({"http_token"})


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are valid TOML escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError("no TOML form for %r" % (value,))


def render_toml(cfg: dict[str, Any]) -> str:
    """`cfg` as a hub.toml that `evhub serve --config` reads back to the same settings."""
    out = ["# evhub hub settings (evhub serve --config hub.toml). Command-line flags override them.", "[hub]"]
    for name, text in DOCS:
        if not name:
            out += ["", "# --- %s ---" % text]
            continue
        value = cfg.get(name)
        if name == "db" and value:
            value = mask(value)  # a password in a postgresql:// URL is never printed
        out.append("# %s" % text)
        if name in SECRETS and value:
            out.append("# %s = (set; not printed)" % name)
        elif value is None:
            out.append("# %s =" % name)
        else:
            out.append("%s = %s" % (name, _toml(value)))
    return "\n".join(out) + "\n"

"""Board glue for the ESP32 (boot.py, main.py, board.py, config.json) and the list of what goes on a board.

``bundle_files()`` is the one list the bundle tool and the mpy-cross test share: pairs of
(path in this repository, path on the board's filesystem). The board's filesystem is flat:
boot.py, main.py, board.py and config.json at the top, the ``transport`` and ``firmware``
packages beside them. Modules a station never loads are not on it: the CPython adapters
(runner), transport.huburl (hub address parsing), transport.tableviews (CPython views of the tables),
transport.serversession (the hub's end of a session) and the unix port's pty link (UNIX_FILES).
Nothing here runs at import on CPython.
"""

TRANSPORT_MODULES = ("__init__", "compat", "errors", "kinds", "messages", "session", "purepack", "codec", "framing")
FIRMWARE_MODULES = (
    "__init__",
    "connector",
    "charging",
    "config",
    "reservations",
    "journal",
    "link",
    "hubrequests",
    "station",
    "chargepoint",
    "pilot",
    "evse",
    "tls",
)
# Loaded only by a board with a control pilot (board.py imports them when the config has "evse").
PILOT_MODULES = ("firmware.pilot", "firmware.evse")
# Loaded only by a board whose hub link is TLS (board.py imports it when the hub says "tls": true).
TLS_MODULES = ("firmware.tls",)
TOP_FILES = ("boot.py", "main.py", "board.py", "config.json")
# The unix port's extras, never on an ESP32: ptylink.py, the serial link over a pty path that board.py
# opens for "serial" (the unix-port tests against a real hub over a pty pair; a board has a UART).
UNIX_FILES = ("ptylink.py",)
# Run as scripts on the board (boot.py, main.py): never compiled to .mpy.
SCRIPTS = ("boot.py", "main.py")


def bundle_files(unix=False):
    """[(source relative to the repo root, destination relative to the board's root), ...];
    `unix`: for the MicroPython unix port (UNIX_FILES too)."""
    out = []
    for name in TOP_FILES + (UNIX_FILES if unix else ()):
        out.append(("firmware/micropython/" + name, name))
    for m in TRANSPORT_MODULES:
        out.append(("transport/%s.py" % m, "transport/%s.py" % m))
    for m in FIRMWARE_MODULES:
        out.append(("firmware/%s.py" % m, "firmware/%s.py" % m))
    return out


def board_modules(unix=False):
    """Repo-relative paths of every Python file that runs on the board (all must pass mpy-cross)."""
    return [src for src, _dst in bundle_files(unix) if src.endswith(".py")]

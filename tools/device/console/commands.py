"""The console's commands, in one table: `help`, `--help` and the dispatch all read it.

Each row is (name, usage, what it does, the ends it is for). An end (tools/device/console/endpoint.py)
implements a row as its method ``do_<name>``.
"""

from typing import NamedTuple

ROLES = ("hub", "station", "monitor")


class Command(NamedTuple):
    name: str
    usage: str
    text: str
    roles: tuple[str, ...]


TABLE = [
    Command("status", "status", "last known connector statuses, and TRIGGER status", ("hub",)),
    Command("trigger", "trigger boot|status|meter", "ask the station to send BOOT / STATUS / METER now", ("hub",)),
    Command(
        "reserve",
        "reserve ID CONNECTOR VEHICLE [START] [MINUTES]",
        "RESERVE_NOW; START: now (default), +15m, +2h, HH:MM (UTC) or epoch seconds; MINUTES default 60;"
        " CONNECTOR 0 = any",
        ("hub",),
    ),
    Command("cancel", "cancel ID", "CANCEL_RESERVATION", ("hub",)),
    Command("start", "start CONNECTOR VEHICLE [RESERVATION]", "REMOTE_START (CONNECTOR 0 = any free one)", ("hub",)),
    Command("stop", "stop [SESSION]", "REMOTE_STOP (default: the one running session)", ("hub",)),
    Command("availability", "availability N on|off", "CHANGE_AVAILABILITY (N = 0: the whole station)", ("hub",)),
    Command("config", "config KEY VALUE", 'CONFIGURE (VALUE as JSON: 30, "stop", 7.4)', ("hub",)),
    Command("hello", "hello", "start a new session", ("station",)),
    Command("boot", "boot", "send BOOT again", ("station",)),
    Command(
        "status", "status CONNECTOR STATUS [INFO]", "report a connector status (Available, Charging, ...)", ("station",)
    ),
    Command(
        "raw",
        "raw [kind, seq, ...]",
        'send this message as it is (JSON or Python literal; kind may be a name: raw ["trigger", 99, "meter"]);'
        " not validated",
        ROLES,
    ),
    Command("stats", "stats", "frame counters (crc_errors, decode_errors, oversize, resyncs)", ROLES),
    Command("sleep", "sleep SECONDS", "pause reading commands (for scripts)", ROLES),
    Command("help", "help", "this list", ROLES),
    Command("quit", "quit", "leave once the answers are in (Ctrl-] also leaves)", ROLES),
]

HEADINGS = {
    "hub": "commands (you are the hub end; they go to the station):",
    "station": "commands (you are the station end; they go to the hub):",
    "monitor": "commands (monitor: no session):",
}
USAGE_WIDTH = 31


def for_role(role: str) -> dict[str, Command]:
    return {c.name: c for c in TABLE if role in c.roles}


def roles_of(name: str) -> list[str]:
    return [r for r in ROLES if any(c.name == name and r in c.roles for c in TABLE)]


def _wrap(usage: str, text: str, indent: str) -> list[str]:
    if len(usage) <= USAGE_WIDTH:
        return ["%s%-*s %s" % (indent, USAGE_WIDTH, usage, text)]
    return ["%s%s" % (indent, usage), "%s%*s %s" % (indent, USAGE_WIDTH, "", text)]


def help_lines(role: str) -> list[str]:
    """What `help` prints at this end of the line."""
    out = [HEADINGS[role]]
    for c in for_role(role).values():
        out += _wrap(c.usage, c.text, "  ")
    return out


def help_text() -> str:
    """Every end's commands, for `evhub console --help`: each end's own, then the common ones."""
    lines = []
    for role, title in (("hub", "the hub end (--as hub, the default)"), ("station", "the station end (--as station)")):
        lines.append("Commands at %s:" % title)
        for c in TABLE:
            if c.roles == (role,):
                lines += _wrap(c.usage, c.text, "  ")
    lines.append("Commands at every end (--as monitor has only these):")
    for c in TABLE:
        if c.roles == ROLES:
            lines += _wrap(c.usage, c.text, "  ")
    return "\n".join(lines)

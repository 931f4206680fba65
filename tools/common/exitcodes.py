"""The exit status of every `evhub` command (README "Exit codes"): scripts can tell a conflict
from an unreachable hub without reading the text."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # the operation failed (a store error, an error the hub reported, anything else)
EXIT_USAGE = 2  # bad command line or input: unknown option, bad time, missing file, invalid value
EXIT_CONFLICT = 3  # refused for the state of things: window taken, already exists, already ended
EXIT_NOT_FOUND = 4  # no such station, vehicle, reservation or session
EXIT_DENIED = 5  # authentication failed or not yours (wrong key or token, another vehicle's reservation)
EXIT_UNREACHABLE = 6  # the hub could not be reached or did not answer in time
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # the reader of our output went away (`| head`)


def for_wire_error(code: int | None) -> int:
    """The exit status for an ERROR the hub sent (transport.errors codes)."""
    from transport import errors as E

    return {
        E.E_CONFLICT: EXIT_CONFLICT,
        E.E_INVALID_STATE: EXIT_CONFLICT,
        E.E_NOT_FOUND: EXIT_NOT_FOUND,
        E.E_FORBIDDEN: EXIT_DENIED,
        E.E_AUTH_FAILED: EXIT_DENIED,
        E.E_NOT_AUTHENTICATED: EXIT_DENIED,
        E.E_TIMEOUT: EXIT_UNREACHABLE,
        E.E_OVERLOADED: EXIT_UNREACHABLE,
        E.E_RATE_LIMITED: EXIT_UNREACHABLE,
        E.E_BAD_FIELD: EXIT_USAGE,
        E.E_MALFORMED: EXIT_USAGE,
        E.E_TOO_LARGE: EXIT_USAGE,
    }.get(code if code is not None else -1, EXIT_ERROR)

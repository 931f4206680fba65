"""Times and ids as a person types and reads them at the terminal: local "YYYY-MM-DD HH:MM" in,
UTC epoch seconds on the wire, local time (or ISO 8601 with the offset, for --json) out. Shared by
`evhub vehicle`, `evhub reservations` and `evhub sessions`.
"""

import datetime

TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


def parse_local_time(text):
    """'2026-11-24 18:30' in local time -> UTC epoch seconds; ValueError with the accepted format.

    An ISO 8601 time with an offset ('2026-11-24T18:30:00-03:00', as --json prints) is taken as is."""
    text = text.strip()
    for fmt in TIME_FORMATS:
        try:
            naive = datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return int(naive.astimezone().timestamp())  # a naive time is taken as local time
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is not None and when.tzinfo is not None:
        return int(when.timestamp())
    raise ValueError('time %r not understood: use "YYYY-MM-DD HH:MM" (local time)' % text)


def show_local(epoch):
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


def show_window(start, end):
    """'2026-11-24 18:30-19:10', with the end's date when the window crosses midnight."""
    a, b = show_local(start), show_local(end)
    return "%s-%s" % (a, b[11:] if a[:10] == b[:10] else b)


def iso_local(epoch):
    return datetime.datetime.fromtimestamp(epoch).astimezone().isoformat()


def parse_day_or_time(text: str) -> int:
    """Local "YYYY-MM-DD" (midnight) or anything `evhub vehicle --at` takes -> UTC epoch seconds."""
    try:
        day = datetime.datetime.strptime(text.strip(), "%Y-%m-%d")
    except ValueError:
        return parse_local_time(text)
    return int(day.astimezone().timestamp())


def parse_reservation_id(text: str) -> int:
    """'42' or '#42' (the form lists print) -> 42; ValueError otherwise."""
    raw = text.strip().lstrip("#")
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**63:
        raise ValueError("a reservation id is a positive number such as 42 or #42, not %r" % text)
    return int(raw)

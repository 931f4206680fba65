"""Times in log lines: local ISO time first (what an operator reads), epoch seconds after it (what
the wire and the store hold, so a line can be matched to a record)."""

from __future__ import annotations

import datetime


def window_text(start: int, end: int) -> str:
    """'2026-12-05 18:30-19:10 -0300 [1796495400, 1796497800)'; the end's date too across midnight."""
    a = datetime.datetime.fromtimestamp(start).astimezone()
    b = datetime.datetime.fromtimestamp(end).astimezone()
    tail = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M")
    return "%s-%s %s [%d, %d)" % (a.strftime("%Y-%m-%d %H:%M"), tail, a.strftime("%z"), start, end)


class Window:
    """A window for a log argument: formatted only if the line is really written."""

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end

    def __str__(self) -> str:
        return window_text(self.start, self.end)

"""Which reservations a station should hold, and what to do with its answer (pure, no actor).

The hub books up to 30 days ahead; a station's table holds `kinds.MAX_RESERVATIONS` (16) rows.
The horizon is therefore a count, not a time: a station is sent its next `limit` open windows
(earliest start first, ties by id) and no others. When one of those ends (used, cancelled,
expired) or an earlier one is booked, the set moves: the next window is sent, and one pushed
out of the set is cancelled on the station so its row is free for the earlier one.

Every RESERVE_NOW reply is decided here (`on_reply`), never dropped:
  ACK                                    held
  no answer, E_OVERLOADED (table full,   RETRY: sent again at the next sync (the registry's tick), the
    the station has not yet expired a      table frees as the station expires or uses rows
    row), E_INTERNAL, E_RATE_LIMITED
  E_CONFLICT, E_INVALID_STATE on a       MOVE: the book tries another connector of the station
    named connector (busy, faulted)
  anything else, or MAX_TRIES retries    CANCEL: the book cancels it and the vehicle is told
"""

from typing import Any, Mapping, Optional

from transport import kinds as K
from transport.errors import E_CONFLICT, E_INTERNAL, E_INVALID_STATE, E_OVERLOADED, E_RATE_LIMITED

HELD = "held"
RETRY = "retry"
MOVE = "move"
CANCEL = "cancel"
STALE = "stale"  # a reply to a RESERVE_NOW superseded since (moved, resent, ended): ignored

MAX_TRIES = 5  # unanswered or transiently refused sends of one window before it is given up
_TRANSIENT = (E_OVERLOADED, E_INTERNAL, E_RATE_LIMITED)
_MOVABLE = (E_CONFLICT, E_INVALID_STATE)


# reservation_id -> (vehicle_id, start, end): the registry's windows (hub.domain.stations.Window).
Windows = Mapping[int, tuple[str, int, int]]
# A station's reply to a request: None (no answer, no link) or (kind, fields); an ERROR's fields
# are (code, text). Fields are the decoded wire values.
Reply = Optional[tuple[int, Any]]


def _order(item: tuple[int, tuple[str, int, int]]) -> tuple[int, int]:
    rid, window = item
    return (window[1], rid)


class StationSync:
    """One station's view of what it was sent. `windows` (passed in) is the registry's
    reservation_id -> (vehicle_id, start, end) of open reservations; `connectors` here
    is reservation_id -> the connector the book chose.

    The hub keeps one per station (10,000 on a big hub), so it has slots and its id sets are dicts
    (reservation_id -> None): an empty set costs 216 bytes, an empty dict 64."""

    __slots__ = ("limit", "connectors", "_sent", "_held", "_maybe", "_cancel", "_tries", "_next_token", "retry_due")

    def __init__(self, limit: int = K.MAX_RESERVATIONS) -> None:
        self.limit = limit
        self.connectors: dict[int, int] = {}  # reservation_id -> connector (0 = any)
        self._sent: dict[int, int] = {}  # reservation_id -> token of the RESERVE_NOW in flight or held
        self._held: dict[int, None] = {}  # reservation ids the station ACKed
        self._maybe: dict[int, None] = {}  # sent before the link went down: the station may still hold them
        self._cancel: dict[int, None] = {}  # ended at the hub, maybe held by the station: cancelled at the next plan
        self._tries: dict[int, int] = {}  # reservation_id -> failed sends so far
        self._next_token = 1
        self.retry_due = False  # a send failed for a passing reason: the next tick plans again

    def reset(self) -> None:
        """The link went down or came up: the station may have rebooted; everything is sent again
        (a repeat of what it holds changes nothing), and what it may hold beyond the horizon is cancelled."""
        self._maybe.update(dict.fromkeys(self._sent))
        self._sent.clear()
        self._held.clear()

    def forget(self, rid: int, cancel: bool = True) -> bool:
        """The reservation ended at the hub. If the station may hold it and `cancel` (it did not end
        there, by a session), the next plan cancels it on the station, even if that is after a
        reconnect. True if the station may hold it."""
        self.connectors.pop(rid, None)
        self._tries.pop(rid, None)
        self._held.pop(rid, None)
        had = self._sent.pop(rid, None) is not None or rid in self._maybe
        self._maybe.pop(rid, None)
        if had and cancel:
            self._cancel[rid] = None
        return had

    def changed(self, rid: int, connector: int) -> None:
        """The book (re)booked `rid` on `connector`; a change of connector must be sent again."""
        if self.connectors.get(rid) != connector:
            self.connectors[rid] = connector
            self._sent.pop(rid, None)
            self._held.pop(rid, None)

    def wanted(self, windows: Windows) -> list[int]:
        """The reservation ids the station should hold: its next `limit` windows."""
        return [rid for rid, _w in sorted(windows.items(), key=_order)[: self.limit]]

    def plan(self, windows: Windows) -> tuple[list[int], list[tuple[int, int]]]:
        """(to_cancel, to_send): ids the station may hold and should not (ended at the hub, or pushed
        beyond the horizon by an earlier booking), then ids to send now as (reservation_id, token).
        Call it only while the station is online. Cancels come first so the station has room."""
        self.retry_due = False
        wanted = self.wanted(windows)
        keep = set(wanted)
        cancel = [rid for rid in list(self._sent) if rid not in keep]
        for rid in cancel:
            del self._sent[rid]
            self._held.pop(rid, None)
        cancel += sorted(
            rid for rid in self._maybe.keys() | self._cancel.keys() if rid not in keep and rid not in cancel
        )
        self._maybe.clear()
        self._cancel.clear()
        send = []
        for rid in wanted:
            if rid not in self._sent:
                token = self._next_token
                self._next_token += 1
                self._sent[rid] = token
                send.append((rid, token))
        return cancel, send

    def on_reply(self, rid: int, token: int, reply: Reply) -> str:
        """What to do with the station's reply to RESERVE_NOW `rid` sent as `token`.
        reply: None (no answer) or (kind, fields) with fields (code, text) for an ERROR."""
        if self._sent.get(rid) != token:
            return STALE
        if reply is not None and reply[0] != K.ERROR:
            self._held[rid] = None
            self._tries.pop(rid, None)
            return HELD
        code = None if reply is None else reply[1][0]
        if code == E_OVERLOADED:  # the table frees as time passes: not counted against the window
            del self._sent[rid]
            self.retry_due = True
            return RETRY
        if code is None or code in _TRANSIENT:
            tries = self._tries.get(rid, 0) + 1
            self._tries[rid] = tries
            if tries < MAX_TRIES:
                del self._sent[rid]
                self.retry_due = True
                return RETRY
            return CANCEL
        if code in _MOVABLE and self.connectors.get(rid, 0) != 0:
            return MOVE
        return CANCEL

    def dropped(self, rid: int, code: int) -> str:
        """The station says, later, that it cannot hold `rid` after all (a RESERVATION_REFUSED record):
        MOVE when the code allows another connector, else CANCEL; STALE when it is not one it was sent."""
        if rid not in self._held and rid not in self._sent:
            return STALE
        self._held.pop(rid, None)
        self._sent.pop(rid, None)
        if code in _MOVABLE and self.connectors.get(rid, 0) != 0:
            return MOVE
        return CANCEL

    def held(self, rid: int) -> bool:
        return rid in self._held

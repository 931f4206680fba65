"""Items handed from any thread to the event loop, in order, with one call_soon_threadsafe per burst.

The gateway's outbox (actors -> links), the event bus (actors -> SSE clients) and the simulator's
vehicle network (agents -> links) all need this hop; it lives here once. `deliver(items)` runs in
the loop with everything posted since the last drain.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any, Callable, Generic, Iterable, Optional, TypeVar

T = TypeVar("T")


class LoopHop(Generic[T]):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, deliver: Callable[[Any], None], limit: Optional[int] = None
    ) -> None:
        self.loop = loop
        self.deliver = deliver
        self.limit = limit  # at most this many waiting: a stuck loop sheds, it does not grow without bound
        self.shed = 0
        self._items: "collections.deque[T]" = collections.deque()
        self._scheduled = False
        self._lock = threading.Lock()

    def post(self, item: T) -> bool:
        """Queue one item (any thread); False if it was shed."""
        return self.post_many((item,))

    def post_many(self, items: Iterable[T]) -> bool:
        with self._lock:
            if self.limit is not None and len(self._items) >= self.limit:
                self.shed += 1
                return False
            self._items.extend(items)
            if self._scheduled:
                return True
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: the process is stopping, nobody left to tell
            pass
        return True

    def _drain(self) -> None:
        with self._lock:
            items = self._items
            self._items = collections.deque()
            self._scheduled = False
        self.deliver(items)

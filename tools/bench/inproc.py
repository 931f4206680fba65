"""The hub's Link + Router in one process, without sockets or actors: a vehicle's link fed frames.

Shared by the NEAREST benchmark (tools/bench/micro/hubloop.py) and the fast-path test
(tests/test_nearest_fast_path.py), so both measure and check the same harness. The router
gets the registry's view directly; positions and reservations it queues are never flushed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hub import config as hubconfig
from hub.io.link import Link
from hub.domain.locator import PublishedIndex, SpatialIndex
from hub.actors.registry import StationView
from hub.router import Router
from transport.framing import StreamFramer
from transport.session import S_OPEN


class _Loop:
    def call_soon(self, *a: object) -> None:
        pass


class _Gateway:
    """What the router asks of the gateway: a loop to schedule on (nothing runs) and no other links."""

    loop = _Loop()
    links: dict = {}


def inproc_link(
    view: dict[str, StationView],
    role: str = "vehicle",
    state: str = S_OPEN,
    peer_id: str = "EV-1",
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    label: str = "inproc",
) -> tuple[Link, Router, list]:
    """(link, router, sent): an authenticated link (`state`, `role`) whose replies are appended to `sent`.

    The link's rate limiter is lifted: it is not what a caller measures or checks.
    """
    cfg = hubconfig.load(None, {})
    index = SpatialIndex()
    for sid, v in view.items():
        index.upsert(sid, v.lat, v.lon)
    router = Router(None, None, None, PublishedIndex(index.frozen()), wall, cfg)
    router.registry_view = view
    router.attach(_Gateway())
    sent: list = []
    link = Link(1, StreamFramer(), sent.append, lambda: None, router, lambda r, i: b"k", cfg, clock, wall, label)
    link.session.state = state
    link.session.role = role
    link.session.peer_id = peer_id
    link.limiter.rate = link.limiter.burst = link.limiter.tokens = 1e18
    link.limiter.stamp = clock()
    return link, router, sent

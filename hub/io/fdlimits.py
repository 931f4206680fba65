"""File descriptors: raise the limit at start, keep unauthenticated links to a share of it, and
log accept errors as a count per interval instead of a traceback per attempt.

Every socket is a descriptor. Sockets that have not authenticated cost an attacker nothing, so
they get a cap of their own (`max_unauth_links`, at most a quarter of RLIMIT_NOFILE): when it is
full the oldest of them is closed to make room, so a legitimate login still gets through and
authenticated links never wait for a descriptor.
"""

import logging
import time

log = logging.getLogger(__name__)

ACCEPT_LOG_EVERY_S = 10.0


def raise_nofile():
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard or hard == resource.RLIM_INFINITY and soft < 1 << 20:
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)
    log.info("open-file limit (RLIMIT_NOFILE) %d", soft)
    return soft


class PendingLinks:
    """TCP links that have not authenticated, oldest first, capped."""

    def __init__(self, cap):
        self.cap = cap
        self.links = {}  # link id -> Link, in opening order

    def add(self, link):
        """Track `link`; returns the oldest pending link to close when the cap is passed, else None."""
        self.links[link.id] = link
        if len(self.links) > self.cap:
            return self.links.pop(next(iter(self.links)))
        return None

    def discard(self, link):
        self.links.pop(link.id, None)


class AcceptErrorLog:
    """The loop's exception handler: accept() failures (EMFILE...) are counted and logged once per
    interval; anything else goes to the default handler as before."""

    def __init__(self, loop, every_s=ACCEPT_LOG_EVERY_S, clock=time.monotonic):
        self.loop = loop
        self.every_s = every_s
        self.clock = clock
        self.count = 0
        self.total = 0
        self._last = None

    def install(self):
        self.loop.set_exception_handler(self)

    def __call__(self, loop, context):
        message = context.get("message", "")
        # asyncio's accept loop schedules a retry (_start_serving) for every failed accept() of a
        # burst (up to the listen backlog); those retries fail too once the server has closed.
        if "accept" not in message and "_start_serving" not in message:
            loop.default_exception_handler(context)
            return
        self.count += 1
        self.total += 1
        now = self.clock()
        if self._last is None or now - self._last >= self.every_s:
            exc = context.get("exception")
            log.error(
                "%s (%d times in the last %.0f s): %s",
                message.split("\n", 1)[0][:120],
                self.count,
                self.every_s if self._last is not None else 0,
                exc,
            )
            self.count = 0
            self._last = now

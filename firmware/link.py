"""Reconnect as an explicit state machine, sans-I/O (aioesphomeapi style).

    BACKOFF --(due: poll() says CONNECT)--> CONNECTING --connected()--> HANDSHAKE
       ^                                        |                         |
       |            lost() / poll() says GIVE_UP (connect_timeout_s)      | welcomed()
       +----------------------------------------+-------------------------+--- ONLINE
                                                                               |
       BACKOFF <-------------------------------- lost() -----------------------+

The delay before attempt n+1 is ``min(1.8**n, 60)`` seconds minus up to `jitter`
of it (random): jitter only shortens the wait, so the cap is a hard 60 s and a
fleet that lost the hub at once does not come back in lock-step. A good WELCOME
resets n. The first attempt after boot is immediate.

"Offline" is what the safety policy looks at: the hub went silent (PeerSilent),
or the link has not been ONLINE for longer than `offline_after_s`. Only the
monotonic clock is used here.
"""

import sys

from transport.compat import const, urandom

# Link.state
BACKOFF = const(0)
_CONNECTING = const(1)
_HANDSHAKE = const(2)
ONLINE = const(3)

# poll() results
CONNECT = const(1)
GIVE_UP = const(2)

BACKOFF_CAP_S = 60.0
_MAX_EXPONENT = const(16)  # 1.8**7 is already past the cap; keeps the float small


def _urandom_fraction():
    b = urandom(2)
    return (b[0] * 256 + b[1]) / 65536


def backoff_delay(n, rand, jitter=0.25, base=1.8, cap=BACKOFF_CAP_S):
    """Seconds to wait after the n-th consecutive failure (n >= 0)."""
    d = base ** (n if n < _MAX_EXPONENT else _MAX_EXPONENT)
    if d > cap:
        d = cap
    return d * (1 - jitter * rand())


class Link:
    def __init__(self, clock, rand=None, offline_after_s=90, connect_timeout_s=20, jitter=0.25, cap_s=BACKOFF_CAP_S):
        self.clock = clock
        self.rand = rand or _urandom_fraction
        self.offline_after_s = offline_after_s
        self.connect_timeout_s = connect_timeout_s
        self.jitter = jitter
        self.cap_s = cap_s
        self.state = BACKOFF
        self.failures = 0  # consecutive attempts that did not reach WELCOME
        now = clock()
        self.next_attempt = now
        self.deadline = 0
        self.down_since = now  # boot counts as down: offline until the first WELCOME
        self.silent = False
        self.last_delay = 0.0
        self.connects = 0  # WELCOMEs so far

    def poll(self):
        """CONNECT when an attempt is due, GIVE_UP when one has taken too long, else None."""
        now = self.clock()
        if self.state == BACKOFF:
            if now >= self.next_attempt:
                return CONNECT
        elif self.state != ONLINE and now >= self.deadline:
            return GIVE_UP
        return None

    def connecting(self):
        self.state = _CONNECTING
        self.deadline = self.clock() + self.connect_timeout_s

    def connected(self):
        """The transport is up; the handshake has connect_timeout_s to finish."""
        self.state = _HANDSHAKE
        self.deadline = self.clock() + self.connect_timeout_s

    def welcomed(self):
        self.state = ONLINE
        self.failures = 0
        self.silent = False
        self.connects += 1

    def peer_silent(self):
        self.silent = True

    def lost(self):
        """The attempt failed or the link dropped; returns the delay before the next attempt."""
        now = self.clock()
        if self.state == ONLINE:
            self.down_since = now
        self.state = BACKOFF
        self.last_delay = backoff_delay(self.failures, self.rand, self.jitter, cap=self.cap_s)
        self.failures += 1
        self.next_attempt = now + self.last_delay
        return self.last_delay

    if sys.implementation.name != "micropython":  # tools and tests; the firmware looks at state

        @property
        def online(self):
            return self.state == ONLINE

    def offline(self):
        """True when the safety policy applies."""
        if self.silent:
            return True
        return self.state != ONLINE and self.clock() - self.down_since > self.offline_after_s

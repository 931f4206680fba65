"""Reconnect as an explicit state machine, sans-I/O (aioesphomeapi style).

    BACKOFF --(due: poll() says CONNECT)--> CONNECTING --connected()--> HANDSHAKE
       ^                                        |                         |
       |            lost() / poll() says GIVE_UP (connect_timeout_s)      | welcomed()
       +----------------------------------------+-------------------------+--- ONLINE
                                                                               |
       BACKOFF <-------------------------------- lost() -----------------------+

The delay before attempt n+1 is ``min(1.8**n, 60)`` seconds minus up to `jitter_pct`
percent of it (random): jitter only shortens the wait, so the cap is a hard 60 s and a
fleet that lost the hub at once does not come back in lock-step. A good WELCOME
resets n. The first attempt after boot is immediate. All in integer milliseconds (no
float on the board: an ESP32 float is single precision); 1.8**n is 9/5 per step.

"Offline" is what the safety policy looks at: the hub went silent (PeerSilent),
or the link has not been ONLINE for longer than `offline_after_s`. Only the
monotonic clock (integer ms) is used here.
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

BACKOFF_CAP_S = const(60)
RAND_RANGE = const(65536)  # rand() returns 0 .. RAND_RANGE - 1


def _urandom_16():
    b = urandom(2)
    return b[0] * 256 + b[1]


def backoff_delay(n, rand, jitter_pct=25, cap_s=BACKOFF_CAP_S):
    """Milliseconds to wait after the n-th consecutive failure (n >= 0): min(1.8**n, cap) s,
    shortened by up to jitter_pct percent (rand() in 0 .. RAND_RANGE - 1)."""
    cap = cap_s * 1000
    d = 1000
    while n > 0 and d < cap:  # 1.8**7 s is already past 60 s: a few steps at most
        d = d * 9 // 5
        n -= 1
    if d > cap:
        d = cap
    return d - d * jitter_pct * rand() // (100 * RAND_RANGE)


class Link:
    def __init__(self, clock, rand=None, offline_after_s=90, connect_timeout_s=20, jitter_pct=25, cap_s=BACKOFF_CAP_S):
        self.clock = clock  # integer ms
        self.rand = rand or _urandom_16
        self.offline_after_s = offline_after_s
        self.connect_timeout_s = connect_timeout_s
        self.jitter_pct = jitter_pct
        self.cap_s = cap_s
        self.state = BACKOFF
        self.failures = 0  # consecutive attempts that did not reach WELCOME
        now = clock()
        self.next_attempt = now
        self.deadline = 0
        self.down_since = now  # boot counts as down: offline until the first WELCOME
        self.silent = False
        self.last_delay = 0  # ms
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
        self.deadline = self.clock() + self.connect_timeout_s * 1000

    def connected(self):
        """The transport is up; the handshake has connect_timeout_s to finish."""
        self.state = _HANDSHAKE
        self.deadline = self.clock() + self.connect_timeout_s * 1000

    def welcomed(self):
        self.state = ONLINE
        self.failures = 0
        self.silent = False
        self.connects += 1

    def peer_silent(self):
        self.silent = True

    def lost(self):
        """The attempt failed or the link dropped; returns the delay (ms) before the next attempt."""
        now = self.clock()
        if self.state == ONLINE:
            self.down_since = now
        self.state = BACKOFF
        self.last_delay = backoff_delay(self.failures, self.rand, self.jitter_pct, self.cap_s)
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
        return self.state != ONLINE and self.clock() - self.down_since > self.offline_after_s * 1000

"""Named limits that protect the hub from one noisy or hostile peer.

- RateLimiter: a token bucket per link (messages per second, with a burst).
- LoginThrottle: failed handshakes per source address; past a few failures
  the address must wait, doubling each time, capped.
"""

import time


class RateLimiter:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst):
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def allow(self, now):
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class LoginThrottle:
    """After `free` failures within `window_s`, an address waits 2**(n-free) s (capped) before trying again."""

    def __init__(self, free=5, window_s=300.0, max_wait_s=300.0, max_tracked=50000):
        self.free = free
        self.window_s = window_s
        self.max_wait_s = max_wait_s
        self.max_tracked = max_tracked
        self._failures = {}  # address -> (count, first_failure, last_failure)

    def _host(self, address):
        if address.startswith("serial:"):
            return address  # each serial line is its own source
        return address.rsplit(":", 1)[0]

    def wait_s(self, address, now=None):
        """Seconds this address must still wait before a new handshake is accepted (0 = go ahead)."""
        now = time.monotonic() if now is None else now
        entry = self._failures.get(self._host(address))
        if entry is None:
            return 0.0
        count, first, last = entry
        if now - first > self.window_s and now - last > self.window_s:
            del self._failures[self._host(address)]
            return 0.0
        if count < self.free:
            return 0.0
        wait = min(self.max_wait_s, 2.0 ** min(count - self.free, 30))  # capped exponent: no OverflowError
        return max(0.0, last + wait - now)

    def failed(self, address, now=None):
        now = time.monotonic() if now is None else now
        host = self._host(address)
        count, first, _last = self._failures.get(host, (0, now, now))
        if len(self._failures) >= self.max_tracked and host not in self._failures:
            self._failures.clear()  # under a flood of addresses, forget rather than grow
        self._failures[host] = (count + 1, first, now)

    def succeeded(self, address):
        self._failures.pop(self._host(address), None)

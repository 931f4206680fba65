"""Named limits that protect the hub from one noisy or hostile peer.

- RateLimiter: a token bucket per link (messages per second, with a burst).
- LoginThrottle: failed handshakes per (source address, claimed id), plus a
  global cap per second; past a few failures the pair must wait, doubling, capped.
"""

import time


class RateLimiter:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst):
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def peek(self, now):
        """Tokens available at `now`, without spending one."""
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate)

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
    """Failed handshakes, counted per (source, claimed id), plus a global cap per second.

    - Per (source, role, id): after `free` failures within `window_s` (counted from the first of
      them, so one failure now and then never adds up) that pair waits 2**(n-free) s, capped.
      A source is the host of a TCP address, or the serial line. Another id from the same host,
      and the same id from another host, are not affected: a correct key is never refused
      because someone else failed, and a success forgets only its own pair.
    - Global: at most `global_per_s` failures per second are paid for (a token bucket); once
      they are spent, pairs that have failed recently must wait for the bucket, while a pair
      that never failed still gets its try. Guessing across many ids stays bounded.
    """

    def __init__(self, free=5, window_s=300.0, max_wait_s=300.0, max_tracked=50000, global_per_s=50):
        self.free = free
        self.window_s = window_s
        self.max_wait_s = max_wait_s
        self.max_tracked = max_tracked
        self._failures = {}  # (source, role, id) -> [count, first_failure, last_failure]
        self._global = RateLimiter(global_per_s, global_per_s)
        self._global.stamp = float("-inf")  # starts full, whatever clock the caller uses

    @staticmethod
    def source(address):
        if address.startswith("serial:"):
            return address  # each serial line is its own source
        return address.rsplit(":", 1)[0]

    def wait_s(self, address, role, peer_id, now=None):
        """Seconds this (address, id) must still wait before its handshake goes on (0 = go ahead)."""
        now = time.monotonic() if now is None else now
        key = (self.source(address), role, peer_id)
        entry = self._failures.get(key)
        if entry is None:
            return 0.0
        count, first, last = entry
        if now - first > self.window_s:
            del self._failures[key]
            return 0.0
        wait = 0.0
        if count >= self.free:
            wait = max(0.0, last + min(self.max_wait_s, 2.0 ** min(count - self.free, 30)) - now)
        if wait == 0.0 and self._global.peek(now) < 1.0:
            wait = 1.0 / self._global.rate  # the global budget of failures is spent: retry shortly
        return wait

    def failed(self, address, role, peer_id, now=None):
        now = time.monotonic() if now is None else now
        self._global.allow(now)  # spends a token (or finds none left)
        key = (self.source(address), role, peer_id)
        entry = self._failures.get(key)
        if entry is None or now - entry[1] > self.window_s:
            if len(self._failures) >= self.max_tracked:
                del self._failures[next(iter(self._failures))]  # forget the oldest, not everyone
            self._failures.pop(key, None)
            self._failures[key] = [1, now, now]
        else:
            entry[0] += 1
            entry[2] = now

    def succeeded(self, address, role, peer_id):
        self._failures.pop((self.source(address), role, peer_id), None)

"""Two devices with one id: a newer link for an id replaces the older one, unless they flap.

A device that reconnects (its old TCP connection half-open, a board that rebooted) must win at
once: the newer link replaces the older. But two devices provisioned with the same id and key
replace each other every time one of them reconnects, about once a second, and each replacement
drops what the other was doing. So:

- a replacement while the old link was still alive is logged as a WARNING with both addresses
  (INFO when the old link had gone quiet: that is a plain reconnect);
- FLAP_COUNT replacements of one id within FLAP_WINDOW_S are flapping: the link that holds the id
  keeps it, and newer links for it are refused for a hold that starts at HOLD_MIN_S and doubles,
  up to HOLD_MAX_S, while the flapping goes on. One WARNING per hold, not one per attempt.

Pure logic with an injected clock; the gateway applies the verdicts.
"""

from __future__ import annotations

import collections

FLAP_WINDOW_S = 60.0
FLAP_COUNT = 3
HOLD_MIN_S = 30.0
HOLD_MAX_S = 300.0

REPLACE = "replace"
REFUSE = "refuse"


class _Clash:
    __slots__ = ("replaced_at", "hold_until", "hold_s", "refused")

    def __init__(self) -> None:
        self.replaced_at: collections.deque[float] = collections.deque(maxlen=FLAP_COUNT)
        self.hold_until = 0.0
        self.hold_s = 0.0
        self.refused = 0


class PeerClash:
    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], _Clash] = {}

    def decide(self, key: tuple[str, str], now: float) -> tuple[str, bool]:
        """A newer authenticated link for `key` while another holds it: (REPLACE or REFUSE, whether
        this verdict starts a hold, so the caller logs it once)."""
        c = self._by_key.get(key)
        if c is None:
            c = self._by_key[key] = _Clash()
        if now < c.hold_until:
            c.refused += 1
            return REFUSE, False
        c.replaced_at.append(now)
        flapping = len(c.replaced_at) == FLAP_COUNT and now - c.replaced_at[0] <= FLAP_WINDOW_S
        if not flapping:
            if c.hold_s and now - c.hold_until > HOLD_MAX_S:
                c.hold_s = 0.0  # calm for a long while: the next hold starts short again
            return REPLACE, False
        c.hold_s = HOLD_MIN_S if not c.hold_s else min(c.hold_s * 2, HOLD_MAX_S)
        c.hold_until = now + c.hold_s
        c.replaced_at.clear()
        c.refused = 1
        return REFUSE, True

    def hold_s(self, key: tuple[str, str]) -> float:
        c = self._by_key.get(key)
        return c.hold_s if c else 0.0

    def forget_idle(self, now: float) -> None:
        """Drop ids that have not clashed for a long time (called now and then; bounds memory)."""
        stale = [
            k
            for k, c in self._by_key.items()
            if now - max(c.hold_until, c.replaced_at[-1] if c.replaced_at else 0.0) > 2 * HOLD_MAX_S
        ]
        for k in stale:
            del self._by_key[k]

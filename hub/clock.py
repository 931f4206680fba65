"""Hub time. Real time by default; the laptop simulation runs it faster (speedup).

Simulated time is ``epoch0 + (real_now - epoch0) * speedup``: every process of a
simulation given the same ``epoch0`` and ``speedup`` agrees on the time.
"""

import time


class HubClock:
    def __init__(self, speedup=1.0, epoch0=None):
        self.speedup = float(speedup)
        self.epoch0 = time.time() if epoch0 is None else float(epoch0)

    def now(self):
        if self.speedup == 1.0:
            return time.time()
        return self.epoch0 + (time.time() - self.epoch0) * self.speedup

    def __call__(self):
        return self.now()

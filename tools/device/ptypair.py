"""Two pseudo-terminals joined back to back (a tiny socat): what is written to one path is read
from the other. The hub opens one path as its serial line, the firmware (or `evhub console`) the
other. `evhub pty-pair` runs one for the README's serial examples; the tests use it directly."""

import os
import pty
import select
import threading
import tty


class PtyPair:
    def __init__(self):
        self.m1, self.s1 = pty.openpty()
        self.m2, self.s2 = pty.openpty()
        for fd in (self.s1, self.s2):
            tty.setraw(fd)  # no echo, no line discipline: bytes pass as they are
        self.path1 = os.ttyname(self.s1)
        self.path2 = os.ttyname(self.s2)
        self.bytes = [0, 0]
        self._stop = False
        self._thread = threading.Thread(target=self._relay, name="ptypair", daemon=True)
        self._thread.start()

    def _relay(self):
        peer = {self.m1: self.m2, self.m2: self.m1}
        while not self._stop:
            ready, _, _ = select.select([self.m1, self.m2], [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the other side is not open yet (EIO): nothing to carry
                    continue
                if data:
                    self.side = 0 if fd == self.m1 else 1  # 0: written to path1, 1: to path2 (for carry)
                    self.bytes[self.side] += len(data)
                    os.write(peer[fd], self.carry(data))

    def carry(self, data):
        """What reaches the other end for `data` read from one end (a subclass may damage it)."""
        return data

    def close(self):
        self._stop = True
        self._thread.join(timeout=2)
        for fd in (self.m1, self.m2, self.s1, self.s2):
            try:
                os.close(fd)
            except OSError:
                pass

"""Serial over a tty path on the MicroPython unix port: the link board.py opens for ``"serial":
"/dev/pts/N"`` when there is no ``machine.UART`` (the unix-port tests against a real hub over a
pty pair). Not in an ESP32 bundle (``firmware.micropython.bundle_files``): a board has a UART.
"""

import select

from transport.compat import const
from transport.framing import SerialFramer

_MAX_FRAME = const(4096)  # board.py's MAX_FRAME: the hub never sends a station more than this


class PtyLink:
    """A pty set raw by whoever made it; the same interface as board.py's TcpLink and UartLink."""

    def __init__(self, path, poller):
        self.f = open(path, "r+b")
        self.poller = poller
        self.framer = SerialFramer(_MAX_FRAME)
        self.pending = False
        self.one = bytearray(1)
        poller.register(self.f, select.POLLIN)
        self._probe = select.poll()
        self._probe.register(self.f, select.POLLIN)

    def readinto(self, buf):
        # A blocking file: read only what poll says is there, one byte at a time.
        n = 0
        one = self.one
        while n < len(buf) and self._probe.poll(0):
            if not self.f.readinto(one):
                raise OSError("serial line closed")
            buf[n] = one[0]
            n += 1
        return n

    def write(self, data):
        return self.f.write(data) or 0

    def close(self):
        try:
            self.poller.unregister(self.f)
        except (OSError, ValueError, KeyError):
            pass
        self.f.close()

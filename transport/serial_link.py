"""CPython only: a serial link over any pyserial URL, framed with SerialFramer.

``serial.serial_for_url`` takes real ports (/dev/ttyUSB0, COM3), pty paths,
``loop://``, ``socket://host:port`` and ``rfc2217://``, so tests and the
simulator need no hardware. Damaged frames are dropped and counted by the
framer (``link.framer.stats()``); they never raise.
"""

import collections
import time

import serial

from transport.codec import packb, unpackb
from transport.framing import SERIAL_MAX_FRAME, SerialFramer

DEFAULT_BAUDRATE = 115200
DEFAULT_TIMEOUT = 5.0
_POLL_S = 0.05  # one read waits at most this long, so recv() honours its timeout


class SerialLink:
    """``send(obj)``, ``recv(timeout) -> obj``, ``close()`` over one serial port."""

    def __init__(self, port, max_frame=SERIAL_MAX_FRAME):
        self.port = port  # an open serial.Serial (or anything with read/write/in_waiting)
        self.framer = SerialFramer(max_frame)
        self._pending = collections.deque()

    def send(self, obj):
        self.port.write(self.framer.encode(packb(obj)))

    def send_many(self, objs):
        self.port.write(b"".join(self.framer.encode(packb(o)) for o in objs))

    def recv(self, timeout=DEFAULT_TIMEOUT):
        """The next good message; TimeoutError if none arrives in ``timeout`` s (None waits forever).

        CodecError if a frame passes its CRC but is not msgpack we speak.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("no message within %.3g s" % timeout)
            data = self.port.read(max(1, self.port.in_waiting))
            if data:
                self._pending.extend(self.framer.feed(data))
        return unpackb(self._pending.popleft())

    def close(self):
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_serial(url, baudrate=DEFAULT_BAUDRATE, timeout=_POLL_S, max_frame=SERIAL_MAX_FRAME):
    """Open any pyserial URL and wrap it; ``timeout`` is the per-read poll interval."""
    port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    return SerialLink(port, max_frame)

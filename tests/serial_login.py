"""A login over a raw serial line (the hub's --serial pty), for the tests of who may log in there."""

import os
import select
import time

from transport.codec import packb, unpackb
from transport.framing import SerialFramer
from transport.session import Authenticated, ClientSession, Closed


def serial_login(fd, peer_id, key, role="station", timeout=5):
    """One handshake on the open line `fd`: returns the session's first Authenticated or Closed event.

    A 0x00 goes first so a half frame left on the line by an earlier login cannot swallow the HELLO.
    """
    session = ClientSession(role, peer_id, key, heartbeat_s=30, request_timeout_s=timeout)
    framer = SerialFramer()
    framer.seal = session.seal  # protocol 2: the hub's WELCOME comes sealed
    session.start()
    first = b"\x00"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = session.take_outgoing()
        if out:
            os.write(fd, first + b"".join(framer.encode(packb(m)) for m in out))
            first = b""
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        for payload in framer.feed(os.read(fd, 4096)):
            for event in session.receive(unpackb(payload)):
                if isinstance(event, (Authenticated, Closed)):
                    return event
    raise AssertionError("no answer to the %s hello on the serial line within %d s" % (role, timeout))

"""`evhub pty-pair`: two joined pseudo-terminals for trying serial links without hardware.

    $ evhub pty-pair
    /dev/pts/5 <-> /dev/pts/6   (Ctrl-C to stop)
    $ evhub serve --serial /dev/pts/5             # in a second terminal
    $ evhub chargepoint --serial /dev/pts/6 ...   # in a third

What is written to one path is read from the other until this command stops.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def configure(p: argparse.ArgumentParser) -> None:
    del p  # no options: it prints the two paths and relays until Ctrl-C


def run(args: argparse.Namespace) -> int:
    from tools.device.ptypair import PtyPair

    pair = PtyPair()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("%s <-> %s   (Ctrl-C to stop)" % (pair.path1, pair.path2), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        pair.close()
    print("pty pair closed; %d and %d bytes carried" % tuple(pair.bytes), file=sys.stderr)
    return 0

"""Waiting in tests: poll the real condition with a deadline. Fixed sleeps are not synchronisation."""

import threading
import time


def wait_for(cond, timeout, what, step=0.1):
    """Call `cond()` every `step` seconds until it returns something true, and return that value.

    After `timeout` seconds without it: AssertionError naming `what`, so a hang reads as a failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(step)


def thread(target, *args, **kwargs):
    """Run `target(*args, **kwargs)` in a started daemon thread (a hung test cannot keep pytest alive)."""
    t = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    t.start()
    return t

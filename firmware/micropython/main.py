"""Board entry point (runs after boot.py): load config.json and run the charge point.

On the unix port, from the source tree: ``cd firmware/micropython && micropython main.py [CONFIG]``
(the repository root is put on the path); from a bundle: ``cd OUT_DIR && micropython main.py``.

Maintenance boot: when a file named ``noauto`` exists in the filesystem root (the current
directory: ``/`` on a board, the bundle directory on the unix port), main.py returns at once
and the board stays at the REPL. Neither the main loop nor its ``machine.WDT`` starts; a
WDT cannot be stopped once started and would reset the board in the middle of an mpremote
copy. ``evhub flash`` creates it before copying and removes it afterwards; by hand::

    mpremote connect PORT fs touch :noauto + reset      # reboot into maintenance
    mpremote connect PORT fs rm :noauto + reset         # reboot into the firmware
"""

import os
import sys

NOAUTO = "noauto"


def _noauto():
    try:
        os.stat(NOAUTO)
        return True
    except OSError:
        return False


def _find_packages():
    try:
        import transport.kinds  # noqa: F401  (a flat bundle: transport/ is next to main.py)
    except ImportError:
        base = sys.path[0] if sys.path and sys.path[0] else "."
        sys.path.append(base + "/../..")  # the source tree: firmware/micropython/../.. is the repo


if _noauto():
    print(
        "main.py: '%s' exists: firmware not started (maintenance boot, no watchdog); "
        "remove it and reset to run the charge point" % NOAUTO
    )
else:
    _find_packages()

    import board  # noqa: E402

    board.main(sys.argv[1] if len(sys.argv) > 1 else "config.json")

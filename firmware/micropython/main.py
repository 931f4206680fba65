"""Board entry point (runs after boot.py): load config.json and run the charge point.

On the unix port, from the source tree: ``cd firmware/micropython && micropython main.py [CONFIG]``
(the repository root is put on the path); from a bundle: ``cd OUT_DIR && micropython main.py``.
"""

import sys


def _find_packages():
    try:
        import transport.kinds  # noqa: F401  (a flat bundle: transport/ is next to main.py)
    except ImportError:
        base = sys.path[0] if sys.path and sys.path[0] else "."
        sys.path.append(base + "/../..")  # the source tree: firmware/micropython/../.. is the repo


_find_packages()

import board  # noqa: E402

board.main(sys.argv[1] if len(sys.argv) > 1 else "config.json")

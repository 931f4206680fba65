"""What runs on the board before the bundle is copied (`mpremote run evhub_prepare.py`): the old
modules go, and the board reports its platform, free bytes and whether it is in maintenance.
The board side is a real file, board_prepare.py; this module names what it removes."""

from __future__ import annotations

import os

from tools.device import bundle as B

NOAUTO = "noauto"  # on the board's root: main.py does not start the firmware (firmware/micropython/main.py)
PREPARE_NAME = "evhub_prepare.py"  # written beside the bundle directory, never into it


def stale_names(written: list[tuple[str, int]]) -> list[str]:
    """What to remove on the board before copying: the packages and both forms of every top-level module."""
    names: list[str] = []
    for path, _size in written:
        top = path.split("/")[0]
        if top in names or top in ("boot.py", "main.py", B.CONFIG_NAME):
            continue
        if "/" in path:
            names.append(top)
        elif top.endswith(".py") or top.endswith(".mpy"):
            base = top.rsplit(".", 1)[0]
            for variant in (base + ".py", base + ".mpy"):
                if variant not in names:
                    names.append(variant)
    return names


def prepare_script(stale: list[str]) -> str:
    """The script `mpremote run` sends to the board: board_prepare.py's text and the call with `stale`."""
    with open(os.path.join(os.path.dirname(__file__), "board_prepare.py")) as f:
        text = f.read()
    return text + "\nprepare(%r, %r)\n" % (tuple(stale), NOAUTO)

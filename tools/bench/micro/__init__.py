"""`evhub bench --scenario micro`: the micro benchmarks, in one report (the one CLI path; the
modules have no command line of their own).

Module index:

- wire.py      codec and framing: C msgpack with evhub's guards, raw msgpack, purepack; the
               StreamFramer/SerialFramer encode+feed; the same on MicroPython (unix port) in a
               subprocess.
- hubloop.py   the hub's per-message work for one NEAREST, in-process (Link + Router, no socket),
               next to the echo server's; the locator alone on the same snapshot.
- domain.py    the locator at 1k/10k/100k stations, a conflict check among 100k reservations,
               durable reservations per second through the store.
- firmware.py  the firmware's MicroPython heap, from the firmware's own measuring script
               (tests/fw_mem.py, run as a program: no pytest inside a benchmark).

Figures are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import sys
from typing import Any

from tools.bench.micro import domain, firmware, hubloop, wire


def run(quick: bool = False, with_firmware: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": "micro", "python": sys.version.split()[0]}
    out["wire (us per op)"] = wire.figures(quick)
    out["hub loop per NEAREST, 10k stations (us)"] = hubloop.nearest_path(rounds=50 if quick else 200)
    out.update(domain.figures(quick))
    if with_firmware:
        out["firmware heap (board import set and full session, code in romfs)"] = firmware.heap(quick)
    return out

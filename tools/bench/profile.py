"""Sampling profile of the hub during the measured window (py-spy, if installed).

py-spy is not a dependency: `pip install py-spy` into the venv to use --profile. It
samples the hub process from outside (no instrumentation inside the hub), all threads,
and writes collapsed stacks ("frame;frame;frame count" lines); `summarize` turns them
into the functions that hold the most samples, by self time and by inclusive time.
"""

import os
import subprocess

from tools.common import toolpath


def py_spy():
    return toolpath.find_tool("py-spy")


def start(pid, duration, out_path, rate=250):
    exe = py_spy()
    if exe is None:
        return None
    cmd = [
        exe,
        "record",
        "-p",
        str(pid),
        "-d",
        str(max(1, int(round(duration)))),
        "-r",
        str(rate),
        "-f",
        "raw",
        "-o",
        out_path,
        "--nonblocking",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(path, top=15):
    """{"samples", "self": [(pct, frame)], "inclusive": [(pct, frame)]} from collapsed stacks."""
    self_n = {}
    incl = {}
    total = 0
    idle = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_short(fr) for fr in stack.split(";")]
            if any(
                w in frames[-1] for w in ("select (selectors", "wait (threading", "get (queue", "_wait_for_tstate_lock")
            ):
                idle += n  # a thread parked in select/queue.get/Condition.wait is idle, not busy
                continue
            total += n
            self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
            for fr in set(frames):
                incl[fr] = incl.get(fr, 0) + n
    if not total:
        return {"samples": 0, "idle_samples": idle, "self": [], "inclusive": []}

    def ranked(d):
        return [(round(100.0 * n / total, 1), fr) for fr, n in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": total, "idle_samples": idle, "self": ranked(self_n), "inclusive": ranked(incl)}


def _short(frame):
    # "function (path/to/module.py:123)" -> "function (module.py:123)"
    name, _, where = frame.partition(" (")
    return "%s (%s" % (name, os.path.basename(where)) if where else frame

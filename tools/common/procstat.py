"""RSS and CPU of a process from /proc (Linux), and the open-file limit: the one /proc reader
(the bench and `evhub sim`).

CPU is utime + stime of every thread (/proc/PID/stat fields 14 and 15, in clock
ticks); a process that keeps one core busy shows 100 %. RSS is VmRSS (now) and
VmHWM (the peak since the process started) from /proc/PID/status.
"""

import os
import resource
import time

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def memory_kb(pid):
    """{"rss_kb", "hwm_kb"} (integers) of a live process, or None if it is gone (or not Linux)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_kb"] = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    out["hwm_kb"] = int(line.split()[1])
    except (OSError, ValueError):
        return None
    return out or None


def memory_mb(pid):
    """{"rss_mb", "hwm_mb"} of a live process, or None if it is gone (or not Linux)."""
    kb = memory_kb(pid)
    return None if kb is None else {k[:-3] + "_mb": v / 1024.0 for k, v in kb.items()}


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (all threads), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        # The command name (field 2) may hold spaces; the fields we want follow its ')'.
        fields = data[data.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / float(_TICK)
    except (OSError, IndexError, ValueError):
        return None


class CpuWindow:
    """CPU use of some processes between start() and stop(), in % of one core."""

    def __init__(self, pids):
        self.pids = [p for p in pids if p]
        self._t0 = None
        self._c0 = {}
        self.result = {}

    def start(self):
        self._t0 = time.monotonic()
        self._c0 = {p: cpu_seconds(p) for p in self.pids}

    def stop(self):
        wall = time.monotonic() - self._t0
        for p in self.pids:
            c1 = cpu_seconds(p)
            c0 = self._c0.get(p)
            self.result[p] = None if c0 is None or c1 is None or wall <= 0 else round(100.0 * (c1 - c0) / wall, 1)
        return self.result


def raise_nofile(wanted):
    """Raise the soft open-file limit towards `wanted` (never above the hard limit); returns the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft

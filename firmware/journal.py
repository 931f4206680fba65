"""Session records kept on flash until the hub acknowledges them.

One small text file, one JSON array per line, appended and compacted:

    ["N", counter, [meter_wh, ...]]     station counters (session counter, meter registers)
    [23, "CP-1-7-a1b2c3", 1, ...]       a SESSION_START / SESSION_END record: kind, fields
    ["A", 24, "CP-1-7-a1b2c3"]          the hub acknowledged that record
    ["R", [start fields], wh, t]        a session is running: its energy checkpoint at time t
    ["X", "CP-1-7-a1b2c3"]              that session ended (its SESSION_END is in the journal)

A session still "running" when the journal is loaded was cut by a reboot or a power
loss: the charge point closes it with reason PowerLoss at its last checkpoint.

Loading replays the lines: a record stays pending until its ack line. A torn last
line (power cut while appending) is skipped. Compaction writes the pending records
and the counters to ``path + ".tmp"`` and renames it over the journal; if the
rename needs the old file removed first (FAT), a crash in between leaves the
.tmp, which loading then uses. open/os.rename/os.remove exist on both runtimes.

The file stays open for appending between records (closed for a compaction, reopened at the next
record): an open() per record allocates a file object and a copy of the path every time, in the
middle of a session, and on a board heap at its edge those short-lived blocks, sized by the path,
left holes a later block did not fit in (the unix-port pty test ran out of memory at a session
start at some tmp path lengths). Each record is still flushed (and fsync'ed where os has it).
"""

import json
import os

from transport.compat import const

_COMPACT_AFTER = const(48)  # appended lines before the file is rewritten
# The kinds of the records a journal keeps (transport.kinds), folded: no name to intern on the board.
_SESSION_START = const(23)
_SESSION_END = const(24)


class Journal:
    def __init__(self, path=None, connectors=1):
        self.path = path  # None: kept in memory only (tests, throwaway simulations)
        self._f = None
        self.counter = 0
        self.meters = [0] * connectors
        self._pending = []  # [kind, fields] in the order they were written
        self.running = {}  # session_id -> [SESSION_START fields, energy_wh, time] of sessions not ended
        self._lines = 0
        self.skipped = 0  # unreadable lines found on load
        if path is not None:
            self._load()

    # --- reading ---------------------------------------------------------------

    def _load(self):
        path = self.path
        src = path
        if not _exists(path):
            if not _exists(path + ".tmp"):
                return
            src = path + ".tmp"
        acked = 0
        with open(src, "r") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    self.skipped += 1
                    continue
                self._lines += 1
                if type(rec) is not list or not rec:
                    self.skipped += 1
                    continue
                tag = rec[0]
                if tag == "N" and len(rec) >= 3:
                    self.counter = rec[1]
                    m = rec[2]
                    for i in range(min(len(m), len(self.meters))):
                        self.meters[i] = m[i]
                elif tag == "A" and len(rec) >= 3:
                    if self._drop(rec[1], rec[2]):
                        acked += 1
                elif tag == "R" and len(rec) >= 4 and type(rec[1]) is list and rec[1]:
                    self.running[rec[1][0]] = [rec[1], rec[2], rec[3]]
                elif tag == "X" and len(rec) >= 2:
                    self.running.pop(rec[1], None)
                elif type(tag) is int and len(rec) == 2 and type(rec[1]) is list and rec[1]:
                    self._pending.append([tag, rec[1]])
                else:
                    self.skipped += 1
        if src != path or acked or self.skipped:
            self.compact()

    def pending(self):
        """The unacknowledged records, oldest first, as [kind, fields] (do not modify)."""
        return self._pending

    def is_pending(self, kind, session_id):
        return self._find(kind, session_id) >= 0

    def _find(self, kind, session_id):
        p = self._pending
        for i in range(len(p)):
            if p[i][0] == kind and p[i][1][0] == session_id:
                return i
        return -1

    def _drop(self, kind, session_id):
        i = self._find(kind, session_id)
        if i < 0:
            return False
        self._pending.pop(i)
        return True

    # --- writing ---------------------------------------------------------------

    def next_number(self):
        """A fresh session number, persisted before it is used."""
        self.counter += 1
        self._append(["N", self.counter, self.meters])
        return self.counter

    def session_started(self, fields):
        """SESSION_START fields [session_id, connector, vehicle, reservation, meter_start, started]."""
        fields = list(fields)
        self._pending.append([_SESSION_START, fields])
        run = [fields, 0, fields[5]]
        self.running[fields[0]] = run
        self._append([_SESSION_START, fields], ["R", fields, 0, fields[5]])

    def checkpoint(self, session_id, energy_wh, t):
        """Save a running session's energy so a power loss costs at most the energy since."""
        run = self.running.get(session_id)
        if run is not None:
            run[1] = energy_wh
            run[2] = t
            self._append(["R", run[0], energy_wh, t])

    def session_ended(self, fields):
        """SESSION_END fields; the meter registers (already updated by the caller) are saved with it."""
        fields = list(fields)
        self._pending.append([_SESSION_END, fields])
        self.running.pop(fields[0], None)
        self._append(["N", self.counter, self.meters], [_SESSION_END, fields], ["X", fields[0]])

    def ack(self, kind, session_id):
        """The hub has the record; forget it. Returns False if it was not pending (a duplicate ack)."""
        if not self._drop(kind, session_id):
            return False
        if self.path is not None:
            if (not self._pending and not self.running) or self._lines >= _COMPACT_AFTER:
                self.compact()
            else:
                self._append(["A", kind, session_id])
        return True

    def _append(self, *recs):
        if self.path is None:
            return
        f = self._f
        if f is None:
            f = self._f = open(self.path, "a")  # kept open: see the module's docstring
        for rec in recs:
            f.write(json.dumps(rec))
            f.write("\n")
        self._lines += len(recs)
        _sync(f)

    def close(self):
        """Close the append handle (a compaction does; the runner at shutdown). The next record reopens it."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def compact(self):
        """Rewrite the file with only the counters and the pending records."""
        if self.path is None:
            return
        self.close()
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(["N", self.counter, self.meters]))
            f.write("\n")
            for kind, fields in self._pending:
                f.write(json.dumps([kind, fields]))
                f.write("\n")
            for run in self.running.values():
                f.write(json.dumps(["R", run[0], run[1], run[2]]))
                f.write("\n")
            _sync(f)
        try:
            os.rename(tmp, self.path)
        except OSError:
            # A filesystem that will not rename over a file (FAT): loading falls back to .tmp.
            os.remove(self.path)
            os.rename(tmp, self.path)
        self._lines = 1 + len(self._pending) + len(self.running)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _sync(f):
    f.flush()
    fsync = getattr(os, "fsync", None)  # CPython: make the record durable before it is sent
    if fsync is not None:
        fsync(f.fileno())

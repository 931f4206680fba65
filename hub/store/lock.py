"""One hub per embedded store: an exclusive lock beside the SQLite file.

Two `evhub serve` processes on one SQLite file each keep their own reservation book in memory and
would confirm the same window twice. The first hub takes an exclusive ``flock`` on
``<db>.lock`` for as long as it runs and writes its pid and address there; a second hub finds the
lock taken and refuses to start, naming the first. The kernel drops the lock when the process
ends, however it ends (``kill -9`` included), so a stale file never blocks a restart.
Several hubs on one network are for the PostgreSQL backend.
"""

from __future__ import annotations

import fcntl
import json
import os


class StoreInUse(Exception):
    """Another live process holds the store's lock; the message names it."""


class StoreLock:
    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.path = db_path + ".lock"
        self._fd: int | None = None

    def acquire(self, address: str) -> None:
        """Take the lock for this process, recording `address`; StoreInUse if another hub has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreInUse(
                "the store %s is in use by another hub (pid %s, listening on %s); stop that hub first "
                "(several hubs on one network need the PostgreSQL backend)"
                % (self.db_path, holder.get("pid", "?"), holder.get("listen", "?"))
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "listen": address}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class NoLock:
    """A PostgreSQL store: several hubs may share it (its constraints decide double booking)."""

    def acquire(self, address: str) -> None:
        pass

    def release(self) -> None:
        pass


def _read_holder(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

"""A background process whose stdout and stderr go to a log file that can be read while it runs.

The one wrapper behind the bench's servers (tools/bench/runner.py) and the tests' processes
(tests/procs.py, tests/hubproc.py) and every hub started by tools/common/hubproc.py: start, read the log, wait for a line, stop.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Sequence


class LoggedProcess:
    """Start `argv` with its output in `log_path` (appended to with `append`, e.g. on a restart)."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path,
        cwd=None,
        env=None,
        append: bool = False,
        preexec_fn: Callable[[], None] | None = None,
        start_new_session: bool = False,
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "a" if append else "w")
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
            start_new_session=start_new_session,
        )
        self.pid = self.proc.pid

    def output(self) -> str:
        """Everything in the log so far ("" before the file exists)."""
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def wait_for_output(self, pattern: re.Pattern[str], timeout: float, offset: int = 0) -> re.Match[str] | None:
        """The first match of `pattern` in the log after `offset`; None if the process exits or
        `timeout` seconds pass first (the caller says what that means, with the log)."""
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.output()[offset:])
            if m or self.proc.poll() is not None or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def stop(self, timeout: float = 5.0) -> str:
        """Terminate (kill after `timeout` s), close the log; returns everything the process wrote."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.output()

"""Start the real hub (`evhub serve`) as a background process on a loopback port, and learn the
port from its "hub listening on tcp://HOST:PORT" log line (and, when asked for, the OCPP and HTTP
addresses from theirs). The one launcher behind tests/hubproc.py, tools/sim/run.py,
tools/bench/runner.py and tools/bench/ocpp.py.

    hub = ServeProcess(serve_argv(db, extra=["--config", cfg]), log_path, cwd=tmp, env=repo_env())
    hub.wait_listening(30)          # HubStartError (with the log's tail) if it exits or times out
    ... hub.url ... hub.stop()
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

from tools.common.logged_process import LoggedProcess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LISTEN_RE = re.compile(r"hub listening on tcp://([\d.]+):(\d+)")
OCPP_RE = re.compile(r"OCPP 1.6J central system on (wss?://[\d.]+:\d+)")
HTTP_RE = re.compile(r"http api listening on (http://\S+)")
LOG_TAIL = 3000  # characters of the log an error carries


class HubStartError(Exception):
    """The hub exited, or did not say it listens, in time; the text ends with its log's tail."""


def repo_env(extra: dict[str, str] | None = None, repo: str = REPO) -> dict[str, str]:
    """This environment with `repo` first on PYTHONPATH, so the child runs this tree's code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def serve_argv(db: str, listen: str = "tcp://127.0.0.1:0", extra: Sequence[str] = ()) -> list[str]:
    """The command line of `evhub serve` on this interpreter."""
    return [sys.executable, "-m", "tools.cli", "serve", "--listen", listen, "--db", db] + [str(a) for a in extra]


class ServeProcess(LoggedProcess):
    """`evhub serve` in the background with its log in a file; host and port once it listens."""

    host: str | None = None
    port: int | None = None

    @property
    def url(self) -> str:
        return "tcp://%s:%s" % (self.host, self.port)

    def wait_listening(self, timeout: float, offset: int = 0) -> int:
        """The port, from the first "hub listening" line after `offset` in the log (a restart
        appends to the same log: only its own lines count)."""
        m = self.wait_for_output(LISTEN_RE, timeout, offset)
        if m is None:
            what = (
                "exited with %s" % self.proc.returncode if self.proc.poll() is not None else "did not start listening"
            )
            if self.proc.poll() is None:
                self.stop()
            raise HubStartError("the hub %s within %g s:\n%s" % (what, timeout, self.output()[-LOG_TAIL:]))
        self.host, self.port = m.group(1), int(m.group(2))
        return self.port

    def stop(self, timeout: float = 30.0) -> str:
        """SIGTERM, and SIGKILL after `timeout` s: a hub with a large store takes a while to close it."""
        return LoggedProcess.stop(self, timeout)

    def ocpp_url(self) -> str:
        """The OCPP central system's ws:// address (the hub was started with --ocpp); HubStartError if none."""
        m = OCPP_RE.search(self.output())
        if m is None:
            raise HubStartError("the hub did not start its OCPP central system:\n%s" % self.output()[-LOG_TAIL:])
        return m.group(1)

    def http_url(self) -> str | None:
        """The HTTP API's address (the hub was started with --http), or None."""
        m = HTTP_RE.search(self.output())
        return m.group(1) if m else None

"""Start the real hub (`evhub serve`) as a process on a loopback port, for end-to-end tests.

    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-1", -12.26, -38.96, connectors=1)
        ... connect to hub.url ...

The hub listens on port 0; its log line "hub listening on tcp://127.0.0.1:PORT"
tells us the port. Its log goes to a file we can read in assertions. The launcher is
tools/common/hubproc.py (one copy, shared with `evhub sim` and `evhub bench`).
"""

import os
import signal
import subprocess
import sys
import time

from tools.common.hubproc import HubStartError, ServeProcess, repo_env, serve_argv

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def evhub(*args, cwd=None, env=None, timeout=60, check=True, input=None):
    """Run an `evhub` subcommand to completion; returns CompletedProcess (text)."""
    cmd = [sys.executable, "-m", "tools.cli"] + [str(a) for a in args]
    full_env = dict(os.environ, PYTHONPATH=REPO)
    full_env.update(env or {})
    res = subprocess.run(
        cmd, cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout, input=input
    )
    if check and res.returncode != 0:
        raise AssertionError(
            "evhub %s failed (%d):\n%s\n%s" % (" ".join(map(str, args)), res.returncode, res.stdout, res.stderr)
        )
    return res


class HubProcess:
    def __init__(self, tmp_path, extra_args=(), db=None, port=0):
        self.tmp = str(tmp_path)
        self.db = db or os.path.join(self.tmp, "hub.db")
        self.log_path = os.path.join(self.tmp, "hub-%d.log" % int(time.time() * 1000))
        self.extra_args = list(extra_args)
        self.port = port
        self.proc = None
        self.env = {
            "EVHUB_CONFIG_DIR": os.path.join(self.tmp, "config"),
            "EVHUB_OPERATOR_KEY_FILE": self.db + ".operator-key",
        }  # written by the hub at its first start
        self.preexec_fn = None  # e.g. to start the hub under a lower RLIMIT_NOFILE

    @property
    def url(self):
        return "tcp://127.0.0.1:%d" % self.port

    def start(self, timeout=20):
        cmd = serve_argv(self.db, "tcp://127.0.0.1:%d" % self.port, self.extra_args)
        offset = len(self.log())  # on a restart, only the new log lines count
        process = ServeProcess(
            cmd, self.log_path, cwd=self.tmp, env=repo_env(self.env, REPO), append=True, preexec_fn=self.preexec_fn
        )
        self.proc, self._log = process.proc, process._log
        try:
            self.port = process.wait_listening(timeout, offset)
        except HubStartError as exc:
            raise AssertionError(str(exc)) from None
        return self

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def restart(self):
        """Start again on the same port and database (after kill9 or stop)."""
        return self.start()

    def stop(self, timeout=15):
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None and not self._log.closed:
                self._log.close()
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def add_station(self, station_id, lat=-12.2664, lon=-38.9663, connectors=1, max_kw=22, protocol="evhub"):
        res = evhub(
            "stations",
            "add",
            "--id",
            station_id,
            "--lat",
            lat,
            "--lon",
            lon,
            "--connectors",
            connectors,
            "--max-kw",
            max_kw,
            "--protocol",
            protocol,
            "--db",
            self.db,
            cwd=self.tmp,
            env=self.env,
        )
        return res.stdout.strip()

    def add_vehicle(self, vehicle_id):
        return evhub("vehicles", "add", "--id", vehicle_id, "--db", self.db, cwd=self.tmp, env=self.env).stdout.strip()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

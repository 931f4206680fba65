"""Start the real hub (`evhub serve`) as a process on a loopback port, for end-to-end tests.

    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-1", -12.26, -38.96, connectors=1)
        ... connect to hub.url ...

The hub listens on port 0; its log line "hub listening on tcp://127.0.0.1:PORT"
tells us the port. Its log goes to a file we can read in assertions.
"""

import os
import re
import signal
import subprocess
import sys
import time

from procs import LoggedProcess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTEN_RE = re.compile(r"hub listening on tcp://([\d.]+):(\d+)")


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
        cmd = [
            sys.executable,
            "-m",
            "tools.cli",
            "serve",
            "--listen",
            "tcp://127.0.0.1:%d" % self.port,
            "--db",
            self.db,
        ] + self.extra_args
        offset = len(self.log())  # on a restart, only the new log lines count
        env = dict(os.environ, PYTHONPATH=REPO, **self.env)
        process = LoggedProcess(cmd, self.log_path, cwd=self.tmp, env=env, append=True, preexec_fn=self.preexec_fn)
        self.proc, self._log = process.proc, process._log
        m = process.wait_for_output(LISTEN_RE, timeout, offset)
        if m:
            self.port = int(m.group(2))
            return self
        if self.proc.poll() is not None:
            raise AssertionError("hub exited with %s:\n%s" % (self.proc.returncode, self.log()))
        self.stop()
        raise AssertionError("hub did not start listening within %d s:\n%s" % (timeout, self.log()))

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

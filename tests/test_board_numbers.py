"""A static check of the board modules for number formats an ESP32 gets wrong.

Every ESP32 MicroPython build has single-precision floats: an epoch in a float moves in 128 s
steps, an uptime in float seconds loses its milliseconds, and 48 kWh in float Wh keeps ~0.004 Wh.
Board code keeps time and energy in ints, so in the modules a board runs (the list
``evhub bundle`` ships, tools/device/bundle.py ``board_files``) this flags:

- true division ``/`` (and ``/=``): it makes a float; ``//`` keeps an int;
- ``time.time()`` (a float on the unix port) and ``float(...)``;
- a float literal in arithmetic or a comparison (``t + 0.5``, ``x < 1.0``).

Exempt: code under ``if sys.implementation.name != "micropython":`` (CPython tools and logs, never
on a board), and a line that says why with ``# float-ok: <reason>`` (floats that are not time or
energy: lat/lon, kW on the wire, a SoC fraction scaled once to an int). The float32 scenario
(tests/test_float32.py) checks the behaviour; this keeps new code from reintroducing the pattern.
"""

import ast
import os

from fw_mp import REPO
from tools.device.bundle import board_files

MARKER = "# float-ok:"


def _cpython_only(node):
    """`if sys.implementation.name != "micropython":` (the code the board skips)."""
    t = node.test
    return (
        isinstance(t, ast.Compare)
        and isinstance(t.ops[0], ast.NotEq)
        and isinstance(t.comparators[0], ast.Constant)
        and t.comparators[0].value == "micropython"
        and "implementation" in ast.unparse(t.left)
    )


def _is_float_literal(node):
    return isinstance(node, ast.Constant) and type(node.value) is float


def float_findings(source, name):
    """[(line, what)] of the float patterns in `source`, minus exempt lines and blocks."""
    lines = source.splitlines()
    out = []

    def flag(node, what):
        if MARKER not in lines[node.lineno - 1]:
            out.append((node.lineno, "%s:%d: %s: %s" % (name, node.lineno, what, lines[node.lineno - 1].strip())))

    def visit(node):
        if isinstance(node, ast.If) and _cpython_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            flag(node, "true division makes a float (use //)")
        if isinstance(node, ast.BinOp) and (_is_float_literal(node.left) or _is_float_literal(node.right)):
            flag(node, "float literal in arithmetic")
        if isinstance(node, ast.AugAssign) and _is_float_literal(node.value):
            flag(node, "float literal in arithmetic")
        if isinstance(node, ast.Compare) and any(_is_float_literal(x) for x in [node.left] + node.comparators):
            flag(node, "float literal in a comparison")
        if isinstance(node, ast.Call):
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and f.attr == "time"
                and isinstance(f.value, ast.Name)
                and f.value.id == "time"
            ):
                flag(node, "time.time() is a float clock on the unix port (use time_ns() // ...)")
            if isinstance(f, ast.Name) and f.id == "float":
                flag(node, "float() conversion")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return sorted(set(out))


def _board_sources():
    return [src for src, _dst, _script in board_files() if src.endswith(".py")]


def test_the_board_modules_do_no_float_arithmetic_on_time_or_energy():
    found = []
    for src in _board_sources():
        with open(os.path.join(REPO, src)) as f:
            found += [what for _line, what in float_findings(f.read(), src)]
    assert not found, "float arithmetic in board code (ESP32 floats are single precision):\n" + "\n".join(found)


def test_the_check_covers_the_core_and_the_board_glue():
    srcs = _board_sources()
    for must in (
        "transport/session.py",
        "transport/compat.py",
        "firmware/chargepoint.py",
        "firmware/charging.py",
        "firmware/link.py",
        "firmware/reservations.py",
        "firmware/journal.py",
        "firmware/hubrequests.py",
        "firmware/micropython/board.py",
    ):
        assert must in srcs, must


def test_the_check_flags_the_float_clocks_that_broke_single_precision_boards():
    bad = (
        "import time\n"
        "def wall():\n"
        "    return time.time_ns() / 1000000000 + adj\n"
        "def now():\n"
        "    return time.time()\n"
        "def clock(s, ms):\n"
        "    return s + ms / 1000\n"
        "def delay(n):\n"
        "    d = 1.8 ** n\n"
        "    d *= 0.75\n"
        "    return d\n"
        "def rounded(e):\n"
        "    return int(e + 0.5) if e > 0.0 else float(e)\n"
    )
    lines = [line for line, _what in float_findings(bad, "bad.py")]
    assert lines == [3, 5, 7, 9, 10, 13, 13, 13], lines  # line 13: the literal in +, in >, and float()


def test_cpython_only_blocks_and_marked_lines_are_exempt():
    ok = (
        "import sys\n"
        "if sys.implementation.name != 'micropython':\n"
        "    def minutes(s):\n"
        "        return s / 60\n"
        "def watts(kw):\n"
        "    return int(kw * 1000 + 0.5)  # float-ok: a kW from the wire, scaled once to W\n"
        "def ms(a, b):\n"
        "    return (a - b) // 1000\n"
    )
    assert float_findings(ok, "ok.py") == []

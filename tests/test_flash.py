"""`evhub flash`: the dry run, and a full run with stand-ins for esptool and mpremote that record
what they were asked and copy the bundle into a directory playing the board's filesystem (the
board-side check script runs on the real MicroPython unix port). Then that "board" runs against
the real hub."""

import json
import os
import re
import sqlite3
import subprocess
import sys
import time

import pytest

import fw_mem
from hubproc import REPO, HubProcess, evhub
from mpy import micropython_path
from procs import LoggedProcess
from test_firmware_micropython import ROM_HEAP_KB, wait_for

TLS_CA = os.path.join(os.path.dirname(__file__), "data", "tls", "hub.crt")  # the committed test hub's (self-signed)

PORT = "/dev/ttyUSB0"


def esptool_spelling():
    """erase-flash/write-flash for the installed esptool v5+, erase_flash/write_flash for v4."""
    from tools.device.flash.vendor import esptool_hyphens, find_tool

    return (
        ("erase-flash", "write-flash")
        if esptool_hyphens(find_tool("esptool", "EVHUB_ESPTOOL"))
        else ("erase_flash", "write_flash")
    )


def commands(stdout):
    return [line.strip()[2:].split("    # ")[0] for line in stdout.splitlines() if line.strip().startswith("$ ")]


# --- the vendor tools are installed ------------------------------------------------------------


@pytest.mark.parametrize("tool", ["esptool", "mpremote"])
def test_the_board_extra_installs_the_vendor_tool(tool):
    from tools.device.flash.vendor import find_tool

    path = find_tool(tool, "EVHUB_" + tool.upper())
    assert path, "%s is missing: pip install -e '.[board]' (the dev extra includes it)" % tool
    res = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and re.search(r"\d+\.\d+", res.stdout), res.stdout + res.stderr


# --- dry run -------------------------------------------------------------------------------------------


def test_dry_run_prints_the_esptool_and_mpremote_commands_and_touches_nothing(tmp_path):
    erase, write = esptool_spelling()
    res = evhub(
        "flash",
        PORT,
        "--id",
        "CP-1",
        "--wifi",
        "depot:secret123",
        "--hub",
        "192.168.1.10:7878",
        "--lat",
        "-12.2664",
        "--lon",
        "-38.9663",
        "--connectors",
        "2",
        "--firmware",
        "ESP32_GENERIC.bin",
        "--erase",
        "--dry-run",
        "--db",
        str(tmp_path / "evhub.db"),
        cwd=str(tmp_path),
    )
    assert commands(res.stdout) == [
        "esptool --chip esp32 --port /dev/ttyUSB0 %s" % erase,
        "esptool --chip esp32 --port /dev/ttyUSB0 %s -z 0x1000 ESP32_GENERIC.bin" % write,
        "mpremote connect /dev/ttyUSB0 fs touch :noauto + fs cp main.py :main.py + reset",
        "mpremote connect /dev/ttyUSB0 run evhub_prepare.py",
        "mpremote connect /dev/ttyUSB0 fs cp -r boot.py main.py board.mpy config.json transport firmware :",
        "mpremote connect /dev/ttyUSB0 fs rm :noauto + reset",
    ], res.stdout
    assert "[1/6] provision station CP-1 in %s" % (tmp_path / "evhub.db") in res.stdout
    assert "[4/6] reboot the board into maintenance" in res.stdout and "dry run done: 6 commands shown" in res.stdout
    assert "tcp 192.168.1.10:7878" in res.stdout and "mpy-cross -march=xtensawin" in res.stdout
    assert not os.path.exists(tmp_path / "evhub.db"), "a dry run must not create the store"


def test_dry_run_without_firmware_only_copies_and_resets(tmp_path):
    res = evhub(
        "flash", "/dev/ttyACM3", "--id", "CP-2", "--uart", "17,16,115200", "--dry-run", "--db", str(tmp_path / "x.db")
    )
    assert commands(res.stdout) == [
        "mpremote connect /dev/ttyACM3 fs touch :noauto + fs cp main.py :main.py + reset",
        "mpremote connect /dev/ttyACM3 run evhub_prepare.py",
        "mpremote connect /dev/ttyACM3 fs cp -r boot.py main.py board.mpy config.json transport firmware :",
        "mpremote connect /dev/ttyACM3 fs rm :noauto + reset",
    ]
    assert "uart1 tx=17 rx=16 115200 baud" in res.stdout and "esptool" not in res.stdout


def test_a_dry_run_without_the_vendor_tools_notes_them_and_still_prints_the_whole_plan(tmp_path):
    env = {"EVHUB_MPREMOTE": "/nonexistent/mpremote", "EVHUB_ESPTOOL": "/nonexistent/esptool"}
    flags = ("--id", "CP-N", "--uart", "17,16,115200", "--firmware", "ESP32_GENERIC.bin", "--dry-run")
    res = evhub("flash", PORT, *flags, "--db", str(tmp_path / "x.db"), env=env)
    assert "note: esptool and mpremote not found: pip install -e '.[board]'" in res.stderr, res.stderr
    assert len(commands(res.stdout)) == 5 and "dry run done: 5 commands shown" in res.stdout, res.stdout
    assert commands(res.stdout)[1] == "mpremote connect /dev/ttyUSB0 fs touch :noauto + fs cp main.py :main.py + reset"
    assert not os.path.exists(tmp_path / "x.db")


def test_dry_run_for_an_esp32s3_with_source_modules(tmp_path):
    _erase, write = esptool_spelling()
    res = evhub(
        "flash",
        PORT,
        "--id",
        "CP-3",
        "--uart",
        "17,16,115200",
        "--chip",
        "esp32s3",
        "--firmware",
        "S3.bin",
        "--source",
        "--baud",
        "921600",
        "--dry-run",
        "--db",
        str(tmp_path / "x.db"),
    )
    cmds = commands(res.stdout)
    assert cmds[0] == "esptool --chip esp32s3 --port /dev/ttyUSB0 --baud 921600 %s -z 0x0 S3.bin" % write
    assert cmds[3].endswith("fs cp -r boot.py main.py board.py config.json transport firmware :")


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--uart", "17,16,115200", "--erase"), "--erase needs --firmware"),
        (("--hub", "10.0.0.2:7878"), "--hub needs --wifi"),
        ((), "say how the board reaches the hub"),
        (("--uart", "17,16,115200", "--connectors", "9"), "connectors must be an integer in 1..8"),
        (("--hub", "10.0.0.2:7878", "--wifi", "x:short"), "8..63 characters"),
    ],
)
def test_bad_flags_are_refused_before_anything_is_touched(tmp_path, flags, message):
    res = evhub("flash", PORT, "--id", "CP-1", "--db", str(tmp_path / "evhub.db"), *flags, check=False)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not os.path.exists(tmp_path / "evhub.db")


# --- a real run, with stand-ins for the vendor tools ------------------------------------------------------

FAKE_MPREMOTE = """\
#!{python}
# A stand-in for mpremote and a board behind it. FAKE_BOARD is the board's filesystem. Like a
# real board, a firmware whose main.py starts (a main.py present and no noauto file, or a
# main.py that does not know noauto) has armed its watchdog: mpremote's Ctrl-C stops the
# loop, but a long copy (fs cp -r) is cut by the watchdog reset. Only a reset into a boot
# that does not start the firmware disarms it.
import json, os, shutil, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({{"tool": "mpremote", "argv": args, "cwd": os.getcwd()}}) + "\\n")
fail = os.environ.get("FAKE_MPREMOTE_FAIL")
times = os.environ.get("FAKE_MPREMOTE_FAIL_TIMES")
if fail and times:
    count = os.path.join(os.path.dirname(os.environ["FAKE_LOG"]), "mpremote-failures")
    done = int(open(count).read()) if os.path.exists(count) else 0
    if done >= int(times):
        fail = None
    else:
        open(count, "w").write(str(done + 1))
if fail:
    print("mpremote: " + fail, file=sys.stderr)
    sys.exit(1)
board = os.environ["FAKE_BOARD"]
state_path = os.path.join(os.path.dirname(os.environ["FAKE_LOG"]), "board-state.json")


def firmware_starts():
    main = os.path.join(board, "main.py")
    if not os.path.exists(main):
        return False
    return not (os.path.exists(os.path.join(board, "noauto")) and "noauto" in open(main).read())


state = json.load(open(state_path)) if os.path.exists(state_path) else {{"wdt": firmware_starts(), "resets": 0}}


def save():
    json.dump(state, open(state_path, "w"))


def on_board(path):
    assert path.startswith(":"), path
    return os.path.join(board, path[1:].lstrip("/"))


assert args[0] == "connect", args
cmds, cmd = [], []
for a in args[2:]:
    if a == "+":
        cmds.append(cmd)
        cmd = []
    else:
        cmd.append(a)
cmds.append(cmd)
for cmd in cmds:
    if cmd[0] == "run":
        res = subprocess.run([{micropython!r}, os.path.abspath(cmd[1])], cwd=board)
        if res.returncode:
            sys.exit(res.returncode)
    elif cmd[:3] == ["fs", "cp", "-r"] and cmd[-1] == ":":
        for src in cmd[3:-1]:
            if state["wdt"]:  # the copy takes longer than the watchdog's timeout
                state["wdt"] = firmware_starts()
                state["resets"] += 1
                save()
                print("cp %s :\\nmpremote: the device reset during the copy (watchdog?)" % src, file=sys.stderr)
                sys.exit(1)
            dst = os.path.join(board, os.path.basename(src))
            if os.path.isdir(src):
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dst)
            print("cp %s :" % src)
    elif cmd[:2] == ["fs", "cp"] and len(cmd) == 4:
        shutil.copyfile(cmd[2], on_board(cmd[3]))
    elif cmd[:2] == ["fs", "touch"]:
        open(on_board(cmd[2]), "a").close()
    elif cmd[:2] == ["fs", "rm"]:
        os.remove(on_board(cmd[2]))
    elif cmd == ["reset"]:
        state["wdt"] = firmware_starts()
        state["resets"] += 1
    elif cmd == ["romfs", "query"]:  # as mpremote 1.25+ prints it; FAKE_ROMFS_BYTES is the partition
        size = os.environ.get("FAKE_ROMFS_BYTES")
        if not size:
            print("ROMFS is not enabled on this device")
        else:
            print("ROMFS0 partition has size %s bytes (%d blocks of 4096 bytes each)" % (size, int(size) // 4096))
            if os.path.exists(board + ".rom"):
                print("  Raw contents: %s ..." % open(board + ".rom", "rb").read(12).hex(":"))
    elif cmd[:2] == ["romfs", "deploy"] and len(cmd) == 3:  # a built image (.img): written to the partition
        size = os.environ.get("FAKE_ROMFS_BYTES")
        if not size:
            print("mpremote: ROMFS is not enabled on this device", file=sys.stderr)
            sys.exit(1)
        if state["wdt"]:
            state["wdt"] = firmware_starts()
            state["resets"] += 1
            save()
            print("mpremote: the device reset while writing the ROMFS partition (watchdog?)", file=sys.stderr)
            sys.exit(1)
        image = open(cmd[2], "rb").read()
        print("Image size is %d bytes" % len(image))
        if not image.startswith(bytes([0xD2, 0xCD, 0x31])):
            print("Invalid ROMFS image")
            sys.exit(1)
        if len(image) > int(size):
            print("ROMFS image is too big for the target partition")
            sys.exit(1)
        open(board + ".rom", "wb").write(image)
        print("ROMFS image deployed")
    else:
        sys.exit("fake mpremote: unexpected %r" % (cmd,))
save()
"""

FAKE_ESPTOOL = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
if args == ["version"]:
    print("esptool v5.6.0\\n5.6.0")
    sys.exit(0)
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({{"tool": "esptool", "argv": args}}) + "\\n")
fail = os.environ.get("FAKE_ESPTOOL_FAIL")
if fail:
    print("Connecting....\\nA fatal error occurred: " + fail)
    sys.exit(2)
print("Connecting....\\nChip is ESP32-D0WD-V3\\nWriting at 0x00001000... (100 %)\\nHard resetting via RTS pin...")
"""


class Bench:
    """A port, a board filesystem directory, and the two stand-in tools."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.board = tmp_path / "board-fs"
        self.board.mkdir()
        self.port = tmp_path / "ttyUSB0"
        self.port.write_text("")
        self.log = tmp_path / "tools.log"
        self.firmware = tmp_path / "ESP32_GENERIC.bin"
        self.firmware.write_bytes(b"\xe9" + b"\x00" * 1023)
        self.tools = tools = tmp_path / "tools"
        tools.mkdir()
        for name, text in (("mpremote", FAKE_MPREMOTE), ("esptool", FAKE_ESPTOOL)):
            path = tools / name
            path.write_text(text.format(python=sys.executable, micropython=micropython_path()))
            path.chmod(0o755)
        self.env = {
            "EVHUB_MPREMOTE": str(tools / "mpremote"),
            "EVHUB_ESPTOOL": str(tools / "esptool"),
            "FAKE_LOG": str(self.log),
            "FAKE_BOARD": str(self.board),
        }

    def flash(self, *flags, check=True, db=None, **env):
        return evhub(
            "flash",
            str(self.port),
            *flags,
            "--db",
            db or str(self.tmp / "evhub.db"),
            env=dict(self.env, **env),
            check=check,
            timeout=120,
        )

    def calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def station_key(db, station_id):
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT key FROM stations WHERE id = ?", (station_id,)).fetchone()
        return row and row[0]
    finally:
        con.close()


def test_flash_provisions_writes_micropython_copies_the_bundle_and_resets(tmp_path):
    bench = Bench(tmp_path)
    (bench.board / "board.py").write_text("stale source that would shadow board.mpy")
    (bench.board / "transport").mkdir()
    (bench.board / "transport" / "old.py").write_text("stale")
    (bench.board / "journal.log").write_text("records the hub has not acknowledged\n")
    res = bench.flash(
        "--id",
        "CP-F",
        "--wifi",
        "depot:secret123",
        "--hub",
        "10.0.0.2:7878",
        "--lat",
        "-12.2",
        "--lon",
        "-38.9",
        "--connectors",
        "2",
        "--firmware",
        str(bench.firmware),
        "--erase",
    )
    assert "Traceback" not in res.stdout + res.stderr
    assert "station CP-F: provisioned, new key issued" in res.stdout and re.search(
        r"\n    \d+ files, \d+ bytes\n", res.stdout
    )
    for n, text in enumerate(
        [
            "provision station CP-F in",
            "build the bundle for CP-F",
            "write MicroPython",
            "reboot the board into maintenance",
            "copy the bundle",
            "remove noauto and reset",
        ],
        1,
    ):
        assert "[%d/6] %s" % (n, text) in res.stdout, res.stdout
    calls = bench.calls()
    assert [c["tool"] for c in calls] == ["esptool", "esptool", "mpremote", "mpremote", "mpremote", "mpremote"]
    assert calls[0]["argv"] == ["--chip", "esp32", "--port", str(bench.port), "erase-flash"]
    assert calls[1]["argv"] == [
        "--chip",
        "esp32",
        "--port",
        str(bench.port),
        "write-flash",
        "-z",
        "0x1000",
        str(bench.firmware),
    ]
    assert calls[2]["argv"] == [
        "connect",
        str(bench.port),
        "fs",
        "touch",
        ":noauto",
        "+",
        "fs",
        "cp",
        "main.py",
        ":main.py",
        "+",
        "reset",
    ]
    assert calls[3]["argv"] == ["connect", str(bench.port), "run", "evhub_prepare.py"]
    assert calls[4]["argv"] == [
        "connect",
        str(bench.port),
        "fs",
        "cp",
        "-r",
        "boot.py",
        "main.py",
        "board.mpy",
        "config.json",
        "transport",
        "firmware",
        ":",
    ]
    assert calls[5]["argv"] == ["connect", str(bench.port), "fs", "rm", ":noauto", "+", "reset"]
    assert not (bench.board / "noauto").exists()
    # the board: new modules, no stale source, the journal kept, the key from the store
    assert not (bench.board / "board.py").exists() and (bench.board / "board.mpy").exists()
    assert not (bench.board / "transport" / "old.py").exists() and (bench.board / "transport" / "session.mpy").exists()
    assert (bench.board / "journal.log").read_text() == "records the hub has not acknowledged\n"
    cfg = json.loads((bench.board / "config.json").read_text())
    key = station_key(tmp_path / "evhub.db", "CP-F")
    assert cfg["key"] == key and cfg["hub"] == {"host": "10.0.0.2", "port": 7878} and cfg["connectors"] == 2
    assert key not in res.stdout


def steps_and_commands(stdout, bench=None):
    """The step titles and commands a flash printed; a real run's paths shown as a dry run's."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("[") and "] " in line:
            out.append(line.split("] ", 1)[1])
        elif line.strip().startswith("$ "):
            out.append(line.strip()[2:].split("    # ")[0])
    if bench is not None:
        out = [x.replace(str(bench.tools) + "/", "").replace(str(bench.port), PORT) for x in out]
    return out


def test_the_dry_run_prints_exactly_the_steps_and_commands_a_run_executes(tmp_path):
    bench = Bench(tmp_path)
    args = ["--id", "CP-P", "--wifi", "depot:secret123", "--hub", "10.0.0.2:7878", "--lat", "-12.2", "--lon", "-38.9"]
    args += ["--firmware", str(bench.firmware), "--erase"]
    dry = bench.flash(*(args + ["--dry-run"]))
    real = bench.flash(*args)
    planned = steps_and_commands(dry.stdout, bench)
    assert planned == steps_and_commands(real.stdout, bench) and len(planned) == 6 + 6, dry.stdout + real.stdout
    ran = [[c["tool"]] + c["argv"] for c in bench.calls()]  # what the fake tools were really asked
    shown = [c.split() for c in commands(dry.stdout)]
    assert [[os.path.basename(c[0])] + [a.replace(str(bench.port), PORT) for a in c[1:]] for c in shown] == [
        [c[0]] + [a.replace(str(bench.port), PORT) for a in c[1:]] for c in ran
    ]
    assert "dry run done: 6 commands shown" in dry.stdout


def test_a_store_that_cannot_be_reached_is_one_clear_line_not_a_traceback(tmp_path):
    bench = Bench(tmp_path)
    res = bench.flash(
        "--id",
        "CP-Q",
        "--uart",
        "17,16,115200",
        "--lat",
        "1",
        "--lon",
        "2",
        db="postgresql://x@127.0.0.1:1/none",
        check=False,
    )
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stderr
    assert "evhub flash: cannot open the store postgresql://x@127.0.0.1:1/none" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and bench.calls() == [], "nothing touched the board"


def station_status(hub, station_id):
    res = evhub("stations", "list", "--hub", hub.url, "--db", hub.db, "--json", check=False)
    return {s["id"]: s["status"] for s in json.loads(res.stdout)}.get(station_id) if res.returncode == 0 else None


def board_state(bench):
    return json.loads((bench.tmp / "board-state.json").read_text())


@pytest.mark.parametrize(
    "old_main",
    [
        "print('the firmware of last year, from before maintenance boots')\n",
        None,  # the current main.py
    ],
)
def test_a_board_running_its_firmware_and_watchdog_is_flashed_without_a_reset_mid_copy(tmp_path, old_main):
    """The firmware runs and has armed machine.WDT: flash reboots it into maintenance (noauto, and a
    main.py that honours it) before the long copy, then removes noauto so the firmware runs again."""
    bench = Bench(tmp_path)
    if old_main is None:
        with open(os.path.join(REPO, "firmware", "micropython", "main.py")) as f:
            old_main = f.read()
    (bench.board / "main.py").write_text(old_main)
    (bench.board / "journal.log").write_text("kept\n")
    res = bench.flash("--id", "CP-W", "--uart", "17,16,115200", "--lat", "1", "--lon", "2", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (bench.board / "board.mpy").exists() and (bench.board / "firmware" / "chargepoint.mpy").exists()
    assert "noauto" in (bench.board / "main.py").read_text()
    assert not (bench.board / "noauto").exists() and (bench.board / "journal.log").read_text() == "kept\n"
    state = board_state(bench)
    assert state["wdt"] and state["resets"] == 2, state  # maintenance reset, final reset: the firmware runs again


def test_a_board_that_is_not_in_maintenance_before_the_copy_is_refused_with_a_clear_message(tmp_path):
    bench = Bench(tmp_path)
    (bench.board / "main.py").write_text("print('firmware')\n")
    # mpremote "works" but the board comes back without the noauto file (a filesystem that is not written)
    wrapper = tmp_path / "tools" / "mpremote-nofs"
    wrapper.write_text(
        '#!/bin/sh\n"%s" "$@"; rc=$?; rm -f "$FAKE_BOARD/noauto"; exit $rc\n' % bench.env["EVHUB_MPREMOTE"]
    )
    wrapper.chmod(0o755)
    res = bench.flash(
        "--id", "CP-W", "--uart", "17,16,115200", "--lat", "1", "--lon", "2", check=False, EVHUB_MPREMOTE=str(wrapper)
    )
    assert res.returncode == 1 and "is not in maintenance" in res.stderr, res.stdout + res.stderr
    assert [c["argv"][2] for c in bench.calls()] == ["fs", "run"]  # nothing copied


MAIN_STUB_BOARD = "def main(path):\n    print('FIRMWARE STARTED', path)\n"


def test_the_prepare_script_removes_stale_modules_keeps_the_journal_and_reports_the_board(tmp_path):
    from tools.device import bundle
    from tools.device.flash.prepare import PREPARE_NAME, prepare_script, stale_names

    (tmp_path / "board.py").write_text("stale")
    (tmp_path / "transport").mkdir()
    (tmp_path / "transport" / "old.py").write_text("stale")
    (tmp_path / "journal.log").write_text("kept\n")
    (tmp_path / "noauto").write_text("")
    (tmp_path / PREPARE_NAME).write_text(prepare_script(stale_names(bundle.planned_paths(True))))
    res = subprocess.run(
        [micropython_path(), PREPARE_NAME], cwd=str(tmp_path), capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0 and re.search(r"^EVHUB-BOARD linux \d+ noauto=1$", res.stdout, re.M), (
        res.stdout + res.stderr
    )
    assert not (tmp_path / "board.py").exists() and not (tmp_path / "transport").exists()
    assert (tmp_path / "journal.log").read_text() == "kept\n"
    shipped = [dst for _src, dst, _script in bundle.board_files(unix=True)]
    assert not [p for p in shipped if "prepare" in p], "the prepare script must not go into the bundle"


@pytest.mark.parametrize("noauto", [False, True])
def test_main_py_does_not_start_the_firmware_when_noauto_exists(tmp_path, noauto):
    with open(os.path.join(REPO, "firmware", "micropython", "main.py")) as f:
        (tmp_path / "main.py").write_text(f.read())
    (tmp_path / "board.py").write_text(MAIN_STUB_BOARD)
    if noauto:
        (tmp_path / "noauto").write_text("")
    env = dict(os.environ, MICROPYPATH=str(tmp_path))
    res = subprocess.run(
        [micropython_path(), "main.py"], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stdout + res.stderr
    if noauto:
        assert "FIRMWARE STARTED" not in res.stdout and "'noauto' exists: firmware not started" in res.stdout
    else:
        assert "FIRMWARE STARTED config.json" in res.stdout


def test_flashing_again_keeps_the_key_and_new_key_issues_another(tmp_path):
    bench = Bench(tmp_path)
    bench.flash("--id", "CP-K", "--uart", "17,16,115200", "--lat", "1", "--lon", "2")
    first = station_key(tmp_path / "evhub.db", "CP-K")
    res = bench.flash("--id", "CP-K", "--uart", "17,16,115200", "--connectors", "2")
    assert "already provisioned; key kept; position/connectors/power updated" in res.stdout
    assert station_key(tmp_path / "evhub.db", "CP-K") == first
    cfg = json.loads((bench.board / "config.json").read_text())
    assert cfg["key"] == first and cfg["connectors"] == 2 and cfg["lat"] == 1.0
    res = bench.flash("--id", "CP-K", "--uart", "17,16,115200", "--new-key")
    second = station_key(tmp_path / "evhub.db", "CP-K")
    assert second != first and json.loads((bench.board / "config.json").read_text())["key"] == second
    assert "NEW key issued" in res.stdout


@pytest.mark.parametrize(
    "setup, message",
    [
        ({"FAKE_MPREMOTE_FAIL": "could not enter raw repl"}, "not answering at the MicroPython REPL"),
        (
            {"FAKE_MPREMOTE_FAIL": "failed to access /dev/ttyUSB0 (it may be in use by another program)"},
            "another program",
        ),
        (
            {"FAKE_ESPTOOL_FAIL": "This chip is ESP32-S3, not ESP32. Wrong chip argument?"},
            "is an ESP32-S3, not an ESP32",
        ),
        ({"FAKE_ESPTOOL_FAIL": "Failed to connect to ESP32: No serial data received."}, "not answering esptool"),
        ({"EVHUB_MPREMOTE": "/nonexistent/mpremote"}, "mpremote not found: pip install -e '.[board]'"),
        ({"EVHUB_ESPTOOL": "/nonexistent/esptool"}, "esptool not found"),
    ],
)
def test_each_failure_gives_a_clear_message_and_a_nonzero_exit(tmp_path, setup, message):
    bench = Bench(tmp_path)
    # --firmware only where esptool is involved: after writing MicroPython, mpremote is retried while it boots
    firmware = ("--firmware", str(bench.firmware)) if "ESPTOOL" in " ".join(setup) else ()
    res = bench.flash(
        "--id", "CP-E", "--uart", "17,16,115200", "--lat", "1", "--lon", "2", *firmware, check=False, **setup
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert message in res.stderr and "Traceback" not in res.stdout + res.stderr, res.stderr


def test_a_board_still_booting_after_micropython_was_written_is_tried_again(tmp_path):
    bench = Bench(tmp_path)
    res = bench.flash(
        "--id",
        "CP-R",
        "--uart",
        "17,16,115200",
        "--lat",
        "1",
        "--lon",
        "2",
        "--firmware",
        str(bench.firmware),
        FAKE_MPREMOTE_FAIL="could not enter raw repl",
        FAKE_MPREMOTE_FAIL_TIMES="1",
    )
    assert "board not ready; trying again" in res.stdout and "done: CP-R" in res.stdout
    assert [c["argv"][2:4] for c in bench.calls() if c["tool"] == "mpremote"] == [
        ["fs", "touch"],
        ["fs", "touch"],
        ["run", "evhub_prepare.py"],
        ["fs", "cp"],
        ["fs", "rm"],
    ]


def test_a_missing_port_or_a_new_station_without_position_is_refused(tmp_path):
    bench = Bench(tmp_path)
    res = evhub(
        "flash",
        str(tmp_path / "ttyUSB9"),
        "--id",
        "CP-X",
        "--uart",
        "17,16,115200",
        "--db",
        str(tmp_path / "evhub.db"),
        env=bench.env,
        check=False,
    )
    assert res.returncode == 1 and "no serial port %s" % (tmp_path / "ttyUSB9") in res.stderr
    assert not os.path.exists(tmp_path / "evhub.db")
    res = bench.flash("--id", "CP-X", "--uart", "17,16,115200", check=False)
    assert res.returncode == 2 and "station CP-X is new: give its position with --lat and --lon" in res.stderr
    assert bench.calls() == []


def test_a_firmware_file_that_is_not_an_esp32_image_is_refused(tmp_path):
    bench = Bench(tmp_path)
    bad = tmp_path / "firmware.uf2"
    bad.write_bytes(b"UF2\n" + b"\x00" * 100)
    res = bench.flash("--id", "CP-X", "--uart", "17,16,115200", "--firmware", str(bad), check=False)
    assert res.returncode == 2 and "is not an ESP32 image" in res.stderr and bench.calls() == []


def test_a_flashed_board_filesystem_runs_on_the_unix_port_and_the_hub_shows_it_available(tmp_path):
    """flash provisions into the running hub's store; the copied bundle boots and authenticates with that key."""
    bench = Bench(tmp_path)
    with HubProcess(tmp_path) as hub:
        bench.flash(
            "--id",
            "CP-FL",
            "--wifi",
            "depot:secret123",
            "--hub",
            hub.url,
            "--lat",
            "-12.3",
            "--lon",
            "-38.9",
            db=hub.db,
        )
        env = dict(os.environ, MICROPYPATH=".frozen")
        log = open(tmp_path / "board.out", "w")
        proc = subprocess.Popen(
            [micropython_path(), "-X", "heapsize=160K", "main.py"],
            cwd=str(bench.board),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline and status != "Available":
                res = evhub("stations", "list", "--hub", hub.url, "--db", hub.db, "--json", check=False)
                if res.returncode == 0:
                    status = {s["id"]: s["status"] for s in json.loads(res.stdout)}.get("CP-FL")
                time.sleep(0.3)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            log.close()
        out = (tmp_path / "board.out").read_text()
        assert status == "Available", out + hub.log()[-2000:]
        assert "Traceback" not in out, out


def test_help_explains_the_steps():
    res = evhub("flash", "--help")
    assert "write-flash -z 0x1000" in res.stdout and "mpremote connect PORT fs cp -r" in res.stdout
    assert "fs touch :noauto" in res.stdout and "fs rm :noauto + reset" in res.stdout
    assert "--dry-run" in res.stdout


# --- --romfs: the modules in the board's ROMFS partition ------------------------------------------------

ROMFS_PARTITION = str(256 * 1024)


def test_dry_run_with_romfs_shows_the_romfs_query_and_deploy_and_copies_only_scripts_and_config(tmp_path):
    res = evhub(
        "flash",
        PORT,
        "--id",
        "CP-1",
        "--wifi",
        "depot:secret123",
        "--hub",
        "tcp://192.168.1.10:7878",
        "--romfs",
        "--dry-run",
        "--db",
        str(tmp_path / "evhub.db"),
    )
    assert commands(res.stdout) == [
        "mpremote connect /dev/ttyUSB0 fs touch :noauto + fs cp main.py :main.py + reset",
        "mpremote connect /dev/ttyUSB0 romfs query",
        "mpremote connect /dev/ttyUSB0 romfs deploy romfs.img",
        "mpremote connect /dev/ttyUSB0 run evhub_prepare.py",
        "mpremote connect /dev/ttyUSB0 fs cp -r boot.py main.py config.json :",
        "mpremote connect /dev/ttyUSB0 fs rm :noauto + reset",
    ], res.stdout
    assert "removes board.py, board.mpy, transport, firmware" in res.stdout
    assert "dry run done: 6 commands shown" in res.stdout and "[6/6]" in res.stdout


def test_flash_with_romfs_deploys_the_image_keeps_main_and_config_on_the_filesystem_and_the_board_runs_it(tmp_path):
    """A board flashed before without romfs: its modules leave the filesystem (they would shadow /rom), the
    journal stays; the stand-in's partition gets the image. Then the board runs on the unix port, which has
    no partition: the image is read from there and mounted at /rom first, as a board's MicroPython does."""
    bench = Bench(tmp_path)
    (bench.board / "board.mpy").write_bytes(b"M old")
    (bench.board / "transport").mkdir()
    (bench.board / "transport" / "session.mpy").write_bytes(b"M old")
    (bench.board / "journal.log").write_text("kept\n")
    with HubProcess(tmp_path) as hub:
        res = bench.flash(
            "--id",
            "CP-ROM",
            "--wifi",
            "depot:secret123",
            "--hub",
            hub.url,
            "--lat",
            "-12.3",
            "--lon",
            "-38.9",
            "--romfs",
            db=hub.db,
            FAKE_ROMFS_BYTES=ROMFS_PARTITION,
        )
        assert "Traceback" not in res.stdout + res.stderr and "done: CP-ROM" in res.stdout, res.stdout + res.stderr
        argvs = [c["argv"][2:] for c in bench.calls()]
        assert argvs == [
            ["fs", "touch", ":noauto", "+", "fs", "cp", "main.py", ":main.py", "+", "reset"],
            ["romfs", "query"],
            ["romfs", "deploy", "romfs.img"],
            ["run", "evhub_prepare.py"],
            ["fs", "cp", "-r", "boot.py", "main.py", "config.json", ":"],
            ["fs", "rm", ":noauto", "+", "reset"],
        ]
        assert sorted(os.listdir(bench.board)) == ["boot.py", "config.json", "journal.log", "main.py"]
        assert (bench.board / "journal.log").read_text() == "kept\n"
        image = (tmp_path / "board-fs.rom").read_bytes()
        assert image[:3] == bytes([0xD2, 0xCD, 0x31]) and b"board.mpy" in image and b"session.mpy" in image
        (bench.board / "launch.py").write_text(fw_mem.rom_prelude(str(tmp_path / "board-fs.rom")) + "import main\n")
        heap = "%dK" % (ROM_HEAP_KB + fw_mem.image_kb(str(tmp_path / "board-fs.rom")))
        proc = LoggedProcess(
            [micropython_path(), "-X", "heapsize=" + heap, "launch.py"],
            tmp_path / "board.out",
            cwd=str(bench.board),
            env=dict(os.environ, MICROPYPATH=".frozen"),
        )
        try:
            wait_for(lambda: station_status(hub, "CP-ROM") == "Available", 30, "CP-ROM Available at the hub")
        finally:
            out = proc.stop()
        assert "Traceback" not in out and "out of memory" not in out, out


@pytest.mark.parametrize(
    "partition, message",
    [
        (None, "has no ROMFS partition"),
        ("4096", "the romfs image is"),
    ],
)
def test_romfs_on_a_board_without_a_big_enough_partition_is_refused_before_anything_is_written(
    tmp_path, partition, message
):
    bench = Bench(tmp_path)
    env = {"FAKE_ROMFS_BYTES": partition} if partition else {}
    res = bench.flash(
        "--id", "CP-NR", "--uart", "17,16,115200", "--lat", "1", "--lon", "2", "--romfs", check=False, **env
    )
    assert res.returncode == 1 and message in res.stderr and "Traceback" not in res.stdout + res.stderr, res.stderr
    assert [c["argv"][2:4] for c in bench.calls()] == [["fs", "touch"], ["romfs", "query"]]
    assert (bench.board / "noauto").exists(), "a failed flash leaves the board in maintenance"
    assert not (tmp_path / "board-fs.rom").exists()


# --- tls:// and --set ---------------------------------------------------------------------------------------


def test_a_tls_hub_takes_its_ca_onto_the_board_as_der_and_the_config_points_at_it(tmp_path):
    import ssl

    bench = Bench(tmp_path)
    bench.flash(
        "--id",
        "CP-TLS",
        "--wifi",
        "depot:secret123",
        "--hub",
        "tls://10.0.0.2:7879",
        "--tls-ca",
        TLS_CA,
        "--lat",
        "1",
        "--lon",
        "2",
        "--set",
        "offline_policy=stop",
        "--set",
        "heartbeat_s=15",
    )
    cfg = json.loads((bench.board / "config.json").read_text())
    assert cfg["hub"] == {"host": "10.0.0.2", "port": 7879, "tls": True, "ca": "hub-ca.der"}
    assert cfg["offline_policy"] == "stop" and cfg["heartbeat_s"] == 15
    with open(TLS_CA) as f:
        assert (bench.board / "hub-ca.der").read_bytes() == ssl.PEM_cert_to_DER_cert(f.read())


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--hub", "tls://10.0.0.2:7879"), "TLS needs --tls-ca"),
        (("--hub", "tcp://10.0.0.2:7878", "--tls-ca", "CA"), "--tls-ca is for a tls:// hub"),
        (("--hub", "tls://10.0.0.2:7879", "--tls-ca", "NOT-A-CERT"), "neither a PEM nor a DER certificate"),
        (("--hub", "udp://10.0.0.2:7879"), "scheme must be tcp:// or tls://"),
        (("--hub", "10.0.0.2:7878", "--set", "colour=red"), "not a config key"),
        (("--hub", "10.0.0.2:7878", "--set", "heartbeat_s=0"), "heartbeat_s must be a number in 1..86400"),
        (("--hub", "10.0.0.2:7878", "--set", "heartbeat_s"), "expected KEY=VALUE"),
        (("--hub", "10.0.0.2:7878", "--romfs", "--source"), "--romfs holds compiled modules"),
    ],
)
def test_bad_tls_set_and_romfs_flags_are_refused_before_anything_is_touched(tmp_path, flags, message):
    (tmp_path / "NOT-A-CERT").write_text("hello")
    flags = [TLS_CA if f == "CA" else str(tmp_path / f) if f == "NOT-A-CERT" else f for f in flags]
    res = evhub(
        "flash",
        PORT,
        "--id",
        "CP-1",
        "--wifi",
        "depot:secret123",
        "--db",
        str(tmp_path / "evhub.db"),
        *flags,
        check=False,
    )
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not os.path.exists(tmp_path / "evhub.db")

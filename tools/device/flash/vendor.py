"""The vendor tools `evhub flash` drives (esptool, mpremote): finding them, running one with its output
shown live, and turning their failure output into one line that says what to do."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

from tools.common import toolpath

STEP_TIMEOUT_S = 300  # one esptool or mpremote run


class FlashError(Exception):
    """A step cannot go on; `status` is the exit status (2 bad arguments, 1 a step failed)."""

    def __init__(self, text: str, status: int = 1) -> None:
        super().__init__(text)
        self.status = status


def find_tool(name: str, env_var: str) -> str | None:
    """The executable for esptool / mpremote: $EVHUB_*, next to this Python, then PATH; None if absent."""
    override = os.environ.get(env_var)
    if override:
        path = override if os.path.sep in override else shutil.which(override)
        return path if path and os.access(path, os.X_OK) else None
    return toolpath.find_tool(name)


def shown(argv: list[str]) -> str:
    """A command as a person would type it: the tool's bare name when that is what would run."""
    prog = argv[0]
    name = os.path.basename(prog)
    if os.path.dirname(prog) == os.path.dirname(sys.executable) or shutil.which(name) == prog:
        prog = name
    return " ".join(shlex.quote(a) for a in [prog] + list(argv[1:]))


def esptool_hyphens(path: str | None) -> bool:
    """True if this esptool spells commands erase-flash/write-flash (v5+), False for v4's underscores."""
    if path is None:
        return True
    try:
        res = subprocess.run([path, "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return True
    m = re.search(r"(\d+)\.\d+", res.stdout + res.stderr)
    return not m or int(m.group(1)) >= 5


def run_tool(argv: list[str], timeout: float = STEP_TIMEOUT_S, cwd: str | None = None) -> tuple[int, str]:
    """Run a vendor tool with its output shown live; returns (exit status, output text)."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, bufsize=0)
    except OSError as exc:
        raise FlashError("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from None
    stream = proc.stdout
    assert stream is not None  # stdout=PIPE: for mypy, not validation
    out = bytearray()
    deadline = time.monotonic() + timeout
    sink = getattr(sys.stdout, "buffer", None)
    try:
        while True:
            chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
            if not chunk:
                break
            out += chunk
            if sink is not None:
                sink.write(chunk)
                sink.flush()
            else:
                sys.stdout.write(chunk.decode("utf-8", "replace"))
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(argv, timeout)
        status = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise FlashError("%s did not finish within %d s" % (os.path.basename(argv[0]), timeout)) from None
    finally:
        stream.close()
    return status, out.decode("utf-8", "replace")


def esptool_failure(text: str, port: str) -> str | None:
    m = re.search(r"This chip is ([\w-]+), not ([\w-]+)", text)
    if m:
        return "the board on %s is an %s, not an %s: pick the matching --chip and MicroPython image" % (
            port,
            m.group(1),
            m.group(2),
        )
    if "Permission denied" in text:
        return "no permission to open %s: add yourself to the dialout (or uucp) group and log in again" % port
    if re.search(r"could not open|doesn't exist|No such file or directory", text, re.I):
        return "cannot open %s: the port is busy (close any console or mpremote using it) or does not exist" % port
    if re.search(r"Failed to connect|No serial data received|Wrong boot mode|Invalid head of packet", text):
        return (
            "the board on %s is not answering esptool: check the USB cable, then hold BOOT and tap EN/RESET "
            "while it connects" % port
        )
    return None


def mpremote_failure(text: str, port: str) -> str | None:
    if "failed to access" in text:
        if "Permission denied" in text:
            return "no permission to open %s: add yourself to the dialout (or uucp) group and log in again" % port
        return "cannot open %s: it does not exist or another program (a console, mpremote, esptool) has it open" % port
    if "could not enter raw repl" in text:
        return (
            "the board on %s is not answering at the MicroPython REPL: is MicroPython on it "
            "(--firmware MICROPYTHON.bin)? close other terminals on the port and press reset" % port
        )
    if "no device found" in text:
        return "no board found on %s" % port
    return None


def check_romfs_query(text: str, image_size: int, port: str) -> None:
    """`mpremote romfs query` output -> None, or FlashError saying why the image cannot go on this board."""
    if "ROMFS is not enabled" in text or "No ROMFS partitions" in text:
        raise FlashError(
            "the MicroPython on %s has no ROMFS partition (romfs needs MicroPython 1.25+ built with "
            "MICROPY_VFS_ROM and a romfs partition; the stock ESP32_GENERIC images have none): "
            "flash such a build with --firmware, or flash without --romfs" % port
        )
    m = re.search(r"ROMFS0 partition has size (\d+) bytes", text)
    if not m:
        raise FlashError("`mpremote romfs query` on %s did not report a ROMFS0 partition; its output is above" % port)
    if image_size > int(m.group(1)):
        raise FlashError(
            "the romfs image is %d bytes, the board's ROMFS partition %s: build MicroPython with a "
            "larger partition, or flash without --romfs" % (image_size, m.group(1))
        )

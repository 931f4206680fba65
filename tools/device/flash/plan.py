"""A flash as data: a list of steps, each a title, optional local work, and the vendor commands it runs.

`--dry-run` prints the plan; a run executes the same list, printing each step's title and each command
before it runs. So what a dry run shows is, command for command, what a run does: there is one list,
and no step asks "is this a dry run?".

A command may carry a `check` of its output (the board's answer to the prepare script, `romfs query`)
and a pause after it (a board rebooting). Local work (provisioning the store, building the bundle)
returns a line saying what it did, or None.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from tools.device.flash.vendor import FlashError, esptool_failure, mpremote_failure, run_tool, shown

BOOT_WAIT_S = 3.0  # a board resetting, or a freshly flashed MicroPython formatting its filesystem


@dataclass
class Command:
    argv: list[str]
    tool: str = "mpremote"  # or "esptool": whose failure texts explain a non-zero exit
    note: str = ""  # shown after the command: why it is there
    cwd: str = ""  # under the flash's work directory ("" = the directory itself)
    attempts: int = 1  # a board still booting is asked again (mpremote only)
    check: Optional[Callable[[str], None]] = None  # on its output; raises FlashError
    pause_after: float = 0.0


@dataclass
class Step:
    title: str
    commands: list[Command] = field(default_factory=list)
    work: Optional[Callable[[], Optional[str]]] = None  # local work done before the commands


class Plan:
    def __init__(self, port: str, steps: list[Step]) -> None:
        self.port = port
        self.steps = steps

    def _title(self, i: int, step: Step) -> None:
        print("[%d/%d] %s" % (i, len(self.steps), step.title), flush=True)

    @staticmethod
    def _show(cmd: Command) -> None:
        print("    $ %s%s" % (shown(cmd.argv), "    # " + cmd.note if cmd.note else ""), flush=True)

    def show(self) -> int:
        """Print every step and command; returns how many commands were shown."""
        n = 0
        for i, step in enumerate(self.steps, 1):
            self._title(i, step)
            for cmd in step.commands:
                self._show(cmd)
                n += 1
        return n

    def run(self, workdir: str) -> None:
        for i, step in enumerate(self.steps, 1):
            self._title(i, step)
            if step.work is not None:
                said = step.work()
                if said:
                    print("    %s" % said, flush=True)
            for cmd in step.commands:
                self._show(cmd)
                text = self._execute(cmd, os.path.join(workdir, cmd.cwd))
                if cmd.check is not None:
                    cmd.check(text)
                if cmd.pause_after:
                    time.sleep(cmd.pause_after)

    def _execute(self, cmd: Command, cwd: str) -> str:
        failure = esptool_failure if cmd.tool == "esptool" else mpremote_failure
        attempt = 0
        while True:  # each pass returns, raises, or waits for a board that is still booting
            attempt += 1
            status, text = run_tool(cmd.argv, cwd=cwd)
            if status == 0:
                return text
            why = failure(text, self.port)
            if attempt < cmd.attempts and why is not None and "permission" not in why:
                print("    (board not ready; trying again in %.0f s)" % BOOT_WAIT_S, flush=True)
                time.sleep(BOOT_WAIT_S)
                continue
            raise FlashError(why or "%s failed (exit %d); its output is above" % (cmd.tool, status))

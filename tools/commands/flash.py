"""`evhub flash PORT --id ID`: provision a charge point and put MicroPython and its firmware on an ESP32.

    evhub flash /dev/ttyUSB0 --id CP-1 --wifi depot:secret123 --hub tcp://192.168.1.10:7878 \\
                --lat -12.2664 --lon -38.9663 --connectors 2 [--firmware ESP32_GENERIC.bin [--erase]]
                [--romfs] [--hub tls://HOST:PORT --tls-ca hub-ca.pem] [--set KEY=VALUE ...]

Steps, each shown as it runs:

1. provision the station in the hub's store (--db, default ./evhub.db). A new station
   needs --lat/--lon and gets a fresh key; an existing one keeps its key (so running
   flash again is harmless) and takes any new --lat/--lon/--connectors/--max-kw;
   --new-key issues a new key (the old one stops working).
2. build the bundle (``evhub bundle --mpy``) in a temporary directory, with the key.
3. with --firmware: write MicroPython with esptool
   (``esptool --chip esp32 --port PORT erase-flash`` when --erase, then
   ``esptool --chip esp32 --port PORT write-flash -z 0x1000 FILE``).
4. reboot the board into maintenance (``mpremote connect PORT fs touch :noauto + fs cp
   main.py :main.py + reset``). A running firmware has started ``machine.WDT``, which
   nothing stops: mpremote's Ctrl-C halts the main loop, and the watchdog would reset the
   board a few seconds later, in the middle of the copy. With a file ``noauto`` in its root
   main.py does not start the firmware (nor the watchdog), so after this reset the board
   waits at the REPL. The new main.py goes over first so a board running a firmware that
   predates ``noauto`` honours it too; the hard reset is what disarms the watchdog (if
   the watchdog fires first, the board reboots into maintenance all the same).
4b. with --romfs: ``mpremote connect PORT romfs query`` (the board's MicroPython must have a
   ROMFS partition big enough: 1.25+ built with one), then ``mpremote connect PORT romfs
   deploy romfs.img``: the compiled modules go into the partition, mounted at /rom from the
   next reset, and run in place from flash. Only boot.py, main.py, config.json (and the
   hub's CA) are copied to the filesystem in step 5, and the old modules are removed from it
   (the filesystem is first on sys.path: a board.mpy left there would shadow the image).
5. with mpremote: check the board answers (an ESP32 with room for the bundle, in
   maintenance), remove the old modules (a stale ``x.py`` would shadow the new ``x.mpy``;
   the session journal is kept), copy the bundle (``mpremote connect PORT fs cp -r ... :``).
6. remove ``noauto`` and reset (``mpremote connect PORT fs rm :noauto + reset``): the board
   boots the firmware and connects to the hub. If a step fails the board stays in
   maintenance (``noauto`` left in place): run flash again.

--dry-run prints the plan, every step and command a run executes, without running any, and
opens neither the store nor the port. esptool and mpremote are the vendor tools from the ``board`` extra
(``pip install -e '.[board]'``); $EVHUB_ESPTOOL and $EVHUB_MPREMOTE name other
executables. esptool v5 spells its commands with hyphens (erase-flash); v4 with
underscores (erase_flash): the installed version decides.

Exit status: 0 done, 2 bad arguments, 1 a step failed (the message says which and why).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile

from tools.client import secret_args
from tools.commands.bundle import add_config_arguments
from tools.device import bundle as B
from tools.device.flash.steps import FLASH_OFFSETS, Flasher
from tools.device.flash.vendor import FlashError


def configure(p: argparse.ArgumentParser) -> None:
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("port", metavar="PORT", help="the board's serial port (/dev/ttyUSB0, COM3, rfc2217://...)")
    link = p.add_mutually_exclusive_group()
    link.add_argument(
        "--hub",
        metavar="tcp://HOST:PORT",
        help="the hub the board connects to over WiFi (give --wifi "
        "too); tls://HOST:PORT with --tls-ca; a bare HOST:PORT is taken as tcp://",
    )
    link.add_argument("--uart", metavar="TX,RX,BAUD", help="the board reaches a hub serial line on these pins instead")
    add_config_arguments(p)
    p.add_argument("--db", default="evhub.db", help="the hub's store to provision the station in (default ./evhub.db)")
    p.add_argument("--new-key", action="store_true", help="issue a new key for an existing station")
    p.add_argument("--firmware", metavar="MICROPYTHON.bin", help="write this MicroPython image first (esptool)")
    p.add_argument("--erase", action="store_true", help="erase the whole flash before writing --firmware")
    p.add_argument("--chip", choices=sorted(FLASH_OFFSETS), default="esp32", help="esptool --chip (default esp32)")
    p.add_argument("--baud", type=int, help="esptool baud rate for writing (default: esptool's)")
    p.add_argument("--source", action="store_true", help="copy .py source instead of .mpy (slower boot, more heap)")
    p.add_argument("--dry-run", action="store_true", help="print every command; touch neither the store nor the port")


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", 0):
        logging.getLogger("hub.store.store").setLevel(logging.WARNING)  # the steps say what happened to the store
    try:
        secret_args.resolve(args, "--wifi", "EVHUB_WIFI")
    except ValueError as exc:
        print("evhub flash: %s" % exc, file=sys.stderr)
        return 2
    try:
        flasher = Flasher(args)
        host = (flasher.draft.get("hub") or {}).get("host")
        if host in B.LOOPBACK:
            print(
                "warning: --hub %s is this computer's loopback: a board cannot reach it; give the hub's "
                "address on the board's network" % host,
                file=sys.stderr,
            )
        if args.dry_run:
            for text in flasher.problems:  # a run would stop here; the plan is still worth seeing
                print("note: %s" % text, file=sys.stderr)
            print("dry run: nothing is written, the store and %s are not opened" % args.port)
            print("dry run done: %d commands shown" % flasher.plan.show())
            return 0
        with tempfile.TemporaryDirectory(prefix="evhub-flash-") as tmp:
            flasher.run(tmp)
    except FlashError as exc:
        print("evhub flash: %s" % exc, file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("\nevhub flash: interrupted; run it again to finish (the station keeps its key)", file=sys.stderr)
        return 130
    print(
        "done: %s boots and connects (%s); see it with `evhub stations list`, its log with "
        "`mpremote connect %s repl`" % (args.id, B.describe_link(flasher.config), args.port)
    )
    return 0

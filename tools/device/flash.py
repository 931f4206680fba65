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

--dry-run prints every command without running any, and opens neither the store nor
the port. esptool and mpremote are the vendor tools from the ``board`` extra
(``pip install -e '.[board]'``); $EVHUB_ESPTOOL and $EVHUB_MPREMOTE name other
executables. esptool v5 spells its commands with hyphens (erase-flash); v4 with
underscores (erase_flash): the installed version decides.

Exit status: 0 done, 2 bad arguments, 1 a step failed (the message says which and why).
"""

import argparse
import logging
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

from tools.device import bundle as B
from tools.client import secret_args
from tools.commands.bundle import add_config_arguments
from tools.common import toolpath

# Where the MicroPython image goes: the ESP32 and ESP32-S2 boot from 0x1000, later chips from 0x0.
FLASH_OFFSETS = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0, "esp32c6": 0x0}
ESP_IMAGE_MAGIC = 0xE9
STEP_TIMEOUT_S = 300  # one esptool or mpremote run
BOOT_WAIT_S = 3.0  # a freshly flashed MicroPython formats its filesystem on first boot
MPREMOTE_ATTEMPTS = 3
SPACE_MARGIN = 4096  # bytes kept free on the board beyond the bundle
BUNDLE_NAME = "bundle"  # in the temporary directory
PREPARE_NAME = "evhub_prepare.py"  # beside it: run on the board before copying
NOAUTO = "noauto"  # on the board's root: main.py does not start the firmware (firmware/micropython/main.py)


class FlashError(Exception):
    def __init__(self, text, status=1):
        Exception.__init__(self, text)
        self.status = status


def configure(p):
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


# --- tools -------------------------------------------------------------------------------------


def find_tool(name, env_var):
    """The executable for esptool / mpremote: $EVHUB_*, next to this Python, then PATH; None if absent."""
    override = os.environ.get(env_var)
    if override:
        path = override if os.path.sep in override else shutil.which(override)
        return path if path and os.access(path, os.X_OK) else None
    return toolpath.find_tool(name)


def shown(argv):
    """A command as a person would type it: the tool's bare name when that is what would run."""
    prog = argv[0]
    name = os.path.basename(prog)
    if os.path.dirname(prog) == os.path.dirname(sys.executable) or shutil.which(name) == prog:
        prog = name
    return " ".join(shlex.quote(a) for a in [prog] + list(argv[1:]))


def esptool_hyphens(path):
    """True if this esptool spells commands erase-flash/write-flash (v5+), False for v4's underscores."""
    if path is None:
        return True
    try:
        res = subprocess.run([path, "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return True
    m = re.search(r"(\d+)\.\d+", res.stdout + res.stderr)
    return not m or int(m.group(1)) >= 5


def run_tool(argv, timeout=STEP_TIMEOUT_S, cwd=None):
    """Run a vendor tool with its output shown live; returns (exit status, output text)."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, bufsize=0)
    except OSError as exc:
        raise FlashError("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from None
    out = bytearray()
    deadline = time.monotonic() + timeout
    sink = getattr(sys.stdout, "buffer", None)
    try:
        while True:
            chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
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
        proc.stdout.close()
    return status, out.decode("utf-8", "replace")


def esptool_failure(text, port):
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


def mpremote_failure(text, port):
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


# --- the steps --------------------------------------------------------------------------------------


class Flasher:
    def __init__(self, args):
        self.args = args
        self.dry = args.dry_run
        self.port = args.port
        self.n = 0
        self.shown = 0  # commands printed by show(): the dry run's summary counts them, not a formula
        self.total = 5 + (1 if args.firmware else 0) + (1 if args.romfs else 0)

    def step(self, text):
        self.n += 1
        print("[%d/%d] %s" % (self.n, self.total, text), flush=True)

    def show(self, argv, note=""):
        self.shown += 1
        print("    $ %s%s" % (shown(argv), "    # " + note if note else ""), flush=True)

    # -- checks before anything is touched

    def check_inputs(self):
        a = self.args
        if a.erase and not a.firmware:
            raise FlashError("--erase needs --firmware: erasing removes MicroPython itself", 2)
        if not a.hub and not a.uart:
            raise FlashError("say how the board reaches the hub: --hub HOST:PORT (with --wifi) or --uart TX,RX,BAUD", 2)
        if a.romfs and a.source:
            raise FlashError("--romfs holds compiled modules: leave out --source", 2)
        if a.tls_ca and not a.hub:
            raise FlashError("--tls-ca is for a tls:// hub (--hub tls://HOST:PORT)", 2)
        if a.hub and a.wifi is None:
            raise FlashError("--hub needs --wifi SSID:PASSWORD: the board reaches a TCP hub over WiFi", 2)
        if a.baud is not None and not 9600 <= a.baud <= 5000000:
            raise FlashError("--baud must be 9600..5000000", 2)
        try:
            self.ca = B.read_ca(a.tls_ca) if a.tls_ca else None  # (board name, bytes), copied with config.json
            self.hub = B.parse_hub(a.hub, self.ca and self.ca[0]) if a.hub else None
            # Check every flag now (with a placeholder key), before the store or the port is touched.
            self.config_for("0" * 32, a.lat if a.lat is not None else 0.0, a.lon if a.lon is not None else 0.0)
        except B.BundleError as exc:
            raise FlashError(str(exc), 2) from None
        if a.firmware and not self.dry:
            try:
                with open(a.firmware, "rb") as f:
                    head = f.read(1)
            except OSError as exc:
                raise FlashError("cannot read --firmware %s: %s" % (a.firmware, exc.strerror or exc), 2) from None
            if head != bytes([ESP_IMAGE_MAGIC]):
                raise FlashError(
                    "--firmware %s is not an ESP32 image (a MicroPython .bin from "
                    "micropython.org/download/ESP32_GENERIC starts with 0xE9)" % a.firmware,
                    2,
                )

    def config_for(self, key, lat, lon, connectors=None, max_kw=None):
        a = self.args
        return B.make_config(
            a.id,
            key,
            hub=self.hub,
            uart=B.parse_uart(a.uart) if a.uart else None,
            wifi=B.parse_wifi(a.wifi) if a.wifi is not None else None,
            lat=lat,
            lon=lon,
            connectors=connectors if connectors is not None else a.connectors,
            max_kw=max_kw if max_kw is not None else a.max_kw,
            relay_pins=B.parse_pins(a.relay_pins) if a.relay_pins else None,
            extra=B.parse_set(a.set),
        )

    def find_tools(self):
        self.esptool = find_tool("esptool", "EVHUB_ESPTOOL") if self.args.firmware else None
        self.mpremote = find_tool("mpremote", "EVHUB_MPREMOTE")
        missing = []
        if self.args.firmware and self.esptool is None:
            missing.append("esptool")
        if self.mpremote is None:
            missing.append("mpremote")
        if missing:
            text = "%s not found: pip install -e '.[board]' (or pip install %s)" % (
                " and ".join(missing),
                " ".join(missing),
            )
            if not self.dry:
                raise FlashError(text)
            print("note: %s" % text, file=sys.stderr)
        self.esptool = self.esptool or "esptool"
        self.mpremote = self.mpremote or "mpremote"
        if not self.args.source:
            try:
                B.find_mpy_cross()
            except B.BundleError as exc:
                if not self.dry:
                    raise FlashError(str(exc)) from None
                print("note: %s" % exc, file=sys.stderr)

    def check_port(self):
        port = self.port
        if "://" in port or not port.startswith("/"):
            return  # rfc2217://, socket://, COM3: the tools say if they cannot open it
        if not os.path.exists(port):
            try:
                from serial.tools import list_ports

                ports = sorted(p.device for p in list_ports.comports())
            except Exception:  # listing ports is a courtesy; never fail on it
                ports = []
            raise FlashError(
                "no serial port %s (is the board plugged in?); ports here: %s" % (port, ", ".join(ports) or "none")
            )
        if not os.access(port, os.R_OK | os.W_OK):
            raise FlashError(
                "no permission to open %s: add yourself to the dialout (or uucp) group and log in again" % port
            )

    # -- 1. store

    def provision(self):
        a = self.args
        if self.dry:
            self.step(
                "provision station %s in %s (a new station gets a new key; an existing one keeps its key%s)"
                % (a.id, a.db, "; --new-key issues a new one" if a.new_key else "")
            )
            return self.config_for(
                "<key from %s>" % a.db, a.lat if a.lat is not None else 0.0, a.lon if a.lon is not None else 0.0
            )
        from hub.store.store import Store, StoreError

        try:
            store = Store(a.db)
        except (StoreError, ValueError, OSError, sqlite3.Error) as exc:  # ValueError: hub/secretfile.py refusals
            raise FlashError("cannot open the store %s: %s" % (a.db, exc)) from None
        try:
            existing = store.get_station(a.id)
            if existing is None:
                if a.lat is None or a.lon is None:
                    raise FlashError("station %s is new: give its position with --lat and --lon" % a.id, 2)
                key = store.add_station(a.id, a.lat, a.lon, a.connectors or 1, a.max_kw or 22.0)
                what = "provisioned, new key issued"
            else:
                lat = a.lat if a.lat is not None else existing["lat"]
                lon = a.lon if a.lon is not None else existing["lon"]
                connectors = a.connectors or existing["connectors"]
                max_kw = a.max_kw or existing["max_kw"]
                changed = (lat, lon, connectors, max_kw) != (
                    existing["lat"],
                    existing["lon"],
                    existing["connectors"],
                    existing["max_kw"],
                )
                if a.new_key:
                    key = store.add_station(a.id, lat, lon, connectors, max_kw, replace=True)
                    what = "already provisioned; NEW key issued (the old key no longer works)"
                else:
                    key = store.get_station_key(a.id)
                    if changed:
                        store.add_station(a.id, lat, lon, connectors, max_kw, replace=True, key=key)
                    what = "already provisioned; key kept" + ("; position/connectors/power updated" if changed else "")
            station = store.get_station(a.id)
        except StoreError as exc:
            raise FlashError("store %s: %s" % (a.db, exc), 2) from None
        finally:
            store.close()
        self.step("station %s in %s: %s" % (a.id, a.db, what))
        return self.config_for(key, station["lat"], station["lon"], station["connectors"], station["max_kw"])

    # -- 2. bundle

    def build(self, cfg, out_dir):
        a = self.args
        form = ".py source" if a.source else ".mpy via mpy-cross -march=%s" % a.march
        if a.romfs:
            form = "a romfs image of " + form
        summary = "%s, %s" % (B.describe_link(cfg), form)
        if cfg.get("wifi"):
            summary += ", wifi %s" % cfg["wifi"]["ssid"]
        if self.dry:
            self.step("build the bundle for %s (%s) in a temporary directory" % (a.id, summary))
            if a.romfs:
                from tools.device import romfs

                return romfs.planned_paths((self.ca[0],) if self.ca else ())
            return B.planned_paths(not a.source) + ([(self.ca[0], 0)] if self.ca else [])
        extra = [self.ca] if self.ca else []
        try:
            if a.romfs:
                from tools.device import romfs

                written = romfs.write_romfs_bundle(out_dir, cfg, march=a.march, extra_files=extra)
            else:
                written = B.write_bundle(out_dir, cfg, mpy=not a.source, march=a.march, extra_files=extra)
        except B.BundleError as exc:
            raise FlashError(str(exc)) from None
        total = sum(size for _p, size in written)
        self.step("bundle built for %s: %d files, %d bytes (%s)" % (a.id, len(written), total, summary))
        return written

    # -- 3. esptool

    def esptool_argv(self, *command):
        argv = [self.esptool, "--chip", self.args.chip, "--port", self.port]
        if self.args.baud:
            argv += ["--baud", str(self.args.baud)]
        return argv + list(command)

    def write_micropython(self):
        a = self.args
        hyphen = esptool_hyphens(None if self.dry and self.esptool == "esptool" else self.esptool)
        erase = "erase-flash" if hyphen else "erase_flash"
        write = "write-flash" if hyphen else "write_flash"
        cmds = []
        if a.erase:
            cmds.append(self.esptool_argv(erase))
        cmds.append(self.esptool_argv(write, "-z", "0x%x" % FLASH_OFFSETS[a.chip], a.firmware))
        self.step(
            "write MicroPython %s with esptool%s" % (os.path.basename(a.firmware), " (erase first)" if a.erase else "")
        )
        for argv in cmds:
            self.show(argv)
            if self.dry:
                continue
            status, text = run_tool(argv)
            if status != 0:
                why = esptool_failure(text, self.port)
                raise FlashError(why or "esptool failed (exit %d); its output is above" % status)

    # -- 4. mpremote

    def mpremote_argv(self, *command):
        return [self.mpremote, "connect", self.port] + list(command)

    def run_mpremote(self, argv, cwd=None, attempts=1):
        attempt = 0
        while True:  # each pass returns, raises, or waits for a board that is still booting
            attempt += 1
            status, text = run_tool(argv, cwd=cwd)
            if status == 0:
                return text
            why = mpremote_failure(text, self.port)
            retry = attempt < attempts and why is not None and "permission" not in why
            if not retry:
                raise FlashError(why or "mpremote failed (exit %d); its output is above" % status)
            print("    (board not ready; trying again in %.0f s)" % BOOT_WAIT_S, flush=True)
            time.sleep(BOOT_WAIT_S)

    def maintenance(self, tmp):
        """Reboot into maintenance: noauto on the board, the new main.py (which honours it), hard reset."""
        argv = self.mpremote_argv("fs", "touch", ":" + NOAUTO, "+", "fs", "cp", "main.py", ":main.py", "+", "reset")
        self.step("reboot the board into maintenance (%s: the firmware and its watchdog do not start)" % NOAUTO)
        self.show(argv, "Ctrl-C stops the firmware; its watchdog is disarmed only by this reset")
        if self.dry:
            return
        # A board still booting a freshly written MicroPython is tried again.
        self.run_mpremote(
            argv, cwd=os.path.join(tmp, BUNDLE_NAME), attempts=MPREMOTE_ATTEMPTS if self.args.firmware else 1
        )
        time.sleep(BOOT_WAIT_S)  # the board reboots

    def copy_bundle(self, written, tmp):
        from tools.device.romfs import IMAGE_NAME

        on_fs = [(p, size) for p, size in written if p != IMAGE_NAME]  # the image went to the ROMFS partition
        entries = B.top_level_entries(on_fs)
        total = sum(size for _p, size in on_fs)
        prepare = self.mpremote_argv("run", PREPARE_NAME)
        copy = self.mpremote_argv("fs", "cp", "-r", *(entries + [":"]))
        self.step("copy the bundle with mpremote (old modules removed first; the session journal is kept)")
        self.show(prepare, "checks the board is in maintenance, removes %s" % ", ".join(self.stale(written)))
        if not self.dry:
            text = self.run_mpremote(prepare, cwd=tmp, attempts=MPREMOTE_ATTEMPTS)  # it has just rebooted
            m = re.search(r"EVHUB-BOARD (\S+) (\d+) noauto=(\d)", text)
            if not m:
                raise FlashError("the board on %s did not run the check script; is it running MicroPython?" % self.port)
            platform, free, noauto = m.group(1), int(m.group(2)), m.group(3) == "1"
            if not noauto:
                raise FlashError(
                    "the board on %s is not in maintenance (no %s file after the reset): its watchdog "
                    "could reset it mid-copy; run flash again" % (self.port, NOAUTO)
                )
            if platform != "esp32":
                print(
                    "    warning: the board says sys.platform=%r, not 'esp32'; the bundle is built for an ESP32"
                    % platform,
                    flush=True,
                )
            if free < total + SPACE_MARGIN:  # the ROMFS image has its own partition: not counted
                raise FlashError(
                    "the board has %d bytes free, the bundle needs %d: erase it (--firmware ... --erase)"
                    % (free, total + SPACE_MARGIN)
                )
        self.show(copy, "in the bundle directory")
        if not self.dry:
            self.run_mpremote(copy, cwd=os.path.join(tmp, BUNDLE_NAME))

    def reset(self):
        argv = self.mpremote_argv("fs", "rm", ":" + NOAUTO, "+", "reset")
        self.step("remove %s and reset the board: it boots the firmware and connects to the hub" % NOAUTO)
        self.show(argv)
        if not self.dry:
            self.run_mpremote(argv)

    def run(self):
        self.check_inputs()
        self.find_tools()
        if not self.dry:
            self.check_port()
        if self.dry:
            print("dry run: nothing is written, the store and %s are not opened" % self.port)
        with tempfile.TemporaryDirectory(prefix="evhub-flash-") as tmp:
            out_dir = os.path.join(tmp, BUNDLE_NAME)
            cfg = self.provision()
            hub = cfg.get("hub") or {}
            if hub.get("host") in B.LOOPBACK:
                print(
                    "warning: --hub %s is this computer's loopback: a board cannot reach it; give the hub's "
                    "address on the board's network" % hub["host"],
                    file=sys.stderr,
                )
            written = self.build(cfg, out_dir)
            if not self.dry:
                with open(os.path.join(tmp, PREPARE_NAME), "w") as f:
                    f.write(prepare_script(self.stale(written)))
            if self.args.firmware:
                self.write_micropython()
                if not self.dry:
                    time.sleep(BOOT_WAIT_S)  # first boot formats the filesystem
            self.maintenance(tmp)
            if self.args.romfs:
                self.deploy_romfs(written, tmp)
            self.copy_bundle(written, tmp)
            self.reset()
        where = B.describe_link(cfg)
        if self.dry:
            print("dry run done: %d commands shown" % self.shown)
        else:
            print(
                "done: %s boots and connects (%s); see it with `evhub stations list`, its log with "
                "`mpremote connect %s repl`" % (self.args.id, where, self.port)
            )
        return 0

    def stale(self, written):
        """What prepare removes from the filesystem. With --romfs every module of a plain bundle: the
        filesystem comes first on sys.path, so a board.mpy left there would shadow the image's."""
        return stale_names(B.planned_paths(True) if self.args.romfs else written)

    # -- 4b. romfs (--romfs)

    def deploy_romfs(self, written, tmp):
        from tools.device.romfs import IMAGE_NAME

        size = dict(written).get(IMAGE_NAME, 0)
        query = self.mpremote_argv("romfs", "query")
        deploy = self.mpremote_argv("romfs", "deploy", IMAGE_NAME)
        self.step(
            "write the modules' romfs image into the board's ROMFS partition (main.py, config.json stay on "
            "the filesystem)"
        )
        self.show(query, "the board's MicroPython must have a ROMFS partition (1.25+, built with one)")
        if not self.dry:
            text = self.run_mpremote(query, cwd=os.path.join(tmp, BUNDLE_NAME), attempts=MPREMOTE_ATTEMPTS)
            check_romfs_query(text, size, self.port)
        self.show(deploy, "in the bundle directory; mounted at /rom from the next reset")
        if not self.dry:
            self.run_mpremote(deploy, cwd=os.path.join(tmp, BUNDLE_NAME))


def check_romfs_query(text, image_size, port):
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


def stale_names(written):
    """What to remove on the board before copying: the packages and both forms of every top-level module."""
    names = []
    for path, _size in written:
        top = path.split("/")[0]
        if top in names or top in ("boot.py", "main.py", B.CONFIG_NAME):
            continue
        if "/" in path:
            names.append(top)
        elif top.endswith(".py") or top.endswith(".mpy"):
            base = top.rsplit(".", 1)[0]
            for variant in (base + ".py", base + ".mpy"):
                if variant not in names:
                    names.append(variant)
    return names


def prepare_script(stale):
    """Runs on the board (mpremote run): remove the old modules (`stale` names), report platform and free bytes."""
    return (
        "import os, sys\n"
        "def _rm(p):\n"
        "    try:\n"
        "        st = os.stat(p)\n"
        "    except OSError:\n"
        "        return\n"
        "    if st[0] & 0x4000:\n"
        "        for n in os.listdir(p):\n"
        "            _rm(p + '/' + n)\n"
        "        os.rmdir(p)\n"
        "    else:\n"
        "        os.remove(p)\n"
        "for _p in %r:\n"
        "    _rm(_p)\n"
        "try:\n"
        "    os.stat(%r)\n"
        "    _n = 1\n"
        "except OSError:\n"
        "    _n = 0\n"
        "_s = os.statvfs('/')\n"
        "print('EVHUB-BOARD', sys.platform, _s[0] * _s[3], 'noauto=%%d' %% _n)\n" % (tuple(stale), NOAUTO)
    )


def run(args):
    if not getattr(args, "verbose", 0):
        logging.getLogger("hub.store.store").setLevel(logging.WARNING)  # the steps say what happened to the store
    try:
        secret_args.resolve(args, "--wifi", "EVHUB_WIFI")
    except ValueError as exc:
        print("evhub flash: %s" % exc, file=sys.stderr)
        return 2
    try:
        return Flasher(args).run()
    except FlashError as exc:
        print("evhub flash: %s" % exc, file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("\nevhub flash: interrupted; run it again to finish (the station keeps its key)", file=sys.stderr)
        return 130

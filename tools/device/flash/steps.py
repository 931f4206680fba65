"""The steps of `evhub flash`, planned from its arguments (tools/device/flash/plan.py runs or prints them).

Checks that touch nothing (the flags, the tools, the port) come first and are not steps. Then:
provision the station, build the bundle, [write MicroPython], reboot into maintenance, [deploy the
romfs image], copy the bundle, reset. The commands are known before anything runs: the bundle's
file list is planned (tools/device/bundle.py, romfs.py) and the build is checked against it.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from hub.store.backend import DB_ERRORS
from tools.device import bundle as B
from tools.device.flash.plan import BOOT_WAIT_S, Command, Plan, Step
from tools.device.flash.prepare import NOAUTO, PREPARE_NAME, prepare_script, stale_names
from tools.device.flash.vendor import FlashError, check_romfs_query, esptool_hyphens, find_tool

# Where the MicroPython image goes: the ESP32 and ESP32-S2 boot from 0x1000, later chips from 0x0.
FLASH_OFFSETS = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0, "esp32c6": 0x0}
ESP_IMAGE_MAGIC = 0xE9
MPREMOTE_ATTEMPTS = 3
SPACE_MARGIN = 4096  # bytes kept free on the board beyond the bundle
BUNDLE_NAME = "bundle"  # in the work directory; the prepare script sits beside it


class Flasher:
    """One flash: checks its inputs, then plans the steps; `run(workdir)` and `show()` go to the plan."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = args.port
        self.check_inputs()
        self.problems = self.find_tools()  # a run stops on them (check_can_run); a dry run notes them
        self.written: list[tuple[str, int]] = []  # [(board path, size)] once built
        self.planned = self.planned_paths()
        self.plan = Plan(self.port, self.steps())

    # -- checks before anything is touched

    def check_inputs(self) -> None:
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
            # Every flag checked now (with a placeholder key), before the store or the port is touched.
            self.draft = self.config_for("0" * 32, a.lat or 0.0, a.lon or 0.0)
        except B.BundleError as exc:
            raise FlashError(str(exc), 2) from None

    def check_can_run(self) -> None:
        """What only a run needs, checked before the store or the port is touched: the tools, the
        --firmware file, the port. A dry run opens none of them."""
        self.check_firmware()  # a bad argument (exit 2) first
        if self.problems:
            raise FlashError(self.problems[0])
        self.check_port()

    def check_firmware(self) -> None:
        a = self.args
        if a.firmware:
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

    def config_for(
        self, key: str, lat: float, lon: float, connectors: int | None = None, max_kw: float | None = None
    ) -> dict[str, Any]:
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

    def find_tools(self) -> list[str]:
        """The vendor tools and mpy-cross; returns what is missing, one line each (empty: all found)."""
        self.esptool = find_tool("esptool", "EVHUB_ESPTOOL") if self.args.firmware else None
        self.mpremote = find_tool("mpremote", "EVHUB_MPREMOTE")
        missing = [
            name
            for name, path in (("esptool", self.esptool or not self.args.firmware), ("mpremote", self.mpremote))
            if not path
        ]
        problems = []
        if missing:
            problems.append(
                "%s not found: pip install -e '.[board]' (or pip install %s)"
                % (" and ".join(missing), " ".join(missing))
            )
        if not self.args.source:
            try:
                B.find_mpy_cross()
            except B.BundleError as exc:
                problems.append(str(exc))
        self.esptool_found = self.esptool is not None  # esptool's version says how it spells commands
        self.esptool = self.esptool or "esptool"
        self.mpremote = self.mpremote or "mpremote"
        return problems

    def check_port(self) -> None:
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

    # -- the plan

    def planned_paths(self) -> list[tuple[str, int]]:
        extra = (self.ca[0],) if self.ca else ()
        if self.args.romfs:
            from tools.device import romfs

            return romfs.planned_paths(extra)
        return B.planned_paths(not self.args.source) + [(name, 0) for name in extra]

    def steps(self) -> list[Step]:
        a = self.args
        out = [
            Step(
                "provision station %s in %s (a new station gets a new key; an existing one keeps its key%s)"
                % (a.id, a.db, "; --new-key issues a new one" if a.new_key else ""),
                work=self.provision,
            ),
            Step("build the bundle for %s (%s) in a temporary directory" % (a.id, self.summary()), work=self.build),
        ]
        if a.firmware:
            out.append(self.write_micropython())
        out.append(self.maintenance())
        if a.romfs:
            out.append(self.deploy_romfs())
        out.append(self.copy_bundle())
        out.append(
            Step(
                "remove %s and reset the board: it boots the firmware and connects to the hub" % NOAUTO,
                [self.mpremote_cmd("fs", "rm", ":" + NOAUTO, "+", "reset")],
            )
        )
        return out

    def summary(self) -> str:
        a = self.args
        form = ".py source" if a.source else ".mpy via mpy-cross -march=%s" % a.march
        if a.romfs:
            form = "a romfs image of " + form
        text = "%s, %s" % (B.describe_link(self.draft), form)
        if self.draft.get("wifi"):
            text += ", wifi %s" % self.draft["wifi"]["ssid"]
        return text

    def mpremote_cmd(self, *command: str, **kw: Any) -> Command:
        return Command([self.mpremote, "connect", self.port] + list(command), **kw)

    def esptool_cmd(self, *command: str, **kw: Any) -> Command:
        argv = [self.esptool, "--chip", self.args.chip, "--port", self.port]
        if self.args.baud:
            argv += ["--baud", str(self.args.baud)]
        return Command(argv + list(command), tool="esptool", **kw)

    def write_micropython(self) -> Step:
        a = self.args
        hyphen = esptool_hyphens(self.esptool if self.esptool_found else None)
        cmds = []
        if a.erase:
            cmds.append(self.esptool_cmd("erase-flash" if hyphen else "erase_flash"))
        write = "write-flash" if hyphen else "write_flash"
        # the first boot of a fresh MicroPython formats its filesystem
        cmds.append(self.esptool_cmd(write, "-z", "0x%x" % FLASH_OFFSETS[a.chip], a.firmware, pause_after=BOOT_WAIT_S))
        title = "write MicroPython %s with esptool%s" % (
            os.path.basename(a.firmware),
            " (erase first)" if a.erase else "",
        )
        return Step(title, cmds)

    def maintenance(self) -> Step:
        """Reboot into maintenance: noauto on the board, the new main.py (which honours it), hard reset."""
        return Step(
            "reboot the board into maintenance (%s: the firmware and its watchdog do not start)" % NOAUTO,
            [
                self.mpremote_cmd(
                    "fs",
                    "touch",
                    ":" + NOAUTO,
                    "+",
                    "fs",
                    "cp",
                    "main.py",
                    ":main.py",
                    "+",
                    "reset",
                    note="Ctrl-C stops the firmware; its watchdog is disarmed only by this reset",
                    cwd=BUNDLE_NAME,
                    # a board still booting a freshly written MicroPython is asked again
                    attempts=MPREMOTE_ATTEMPTS if self.args.firmware else 1,
                    pause_after=BOOT_WAIT_S,
                )
            ],
        )

    def deploy_romfs(self) -> Step:
        from tools.device.romfs import IMAGE_NAME

        def fits(text: str) -> None:
            check_romfs_query(text, dict(self.written).get(IMAGE_NAME, 0), self.port)

        return Step(
            "write the modules' romfs image into the board's ROMFS partition (main.py, config.json stay on "
            "the filesystem)",
            [
                self.mpremote_cmd(
                    "romfs",
                    "query",
                    note="the board's MicroPython must have a ROMFS partition (1.25+, built with one)",
                    cwd=BUNDLE_NAME,
                    attempts=MPREMOTE_ATTEMPTS,
                    check=fits,
                ),
                self.mpremote_cmd(
                    "romfs",
                    "deploy",
                    IMAGE_NAME,
                    note="in the bundle directory; mounted at /rom from the next reset",
                    cwd=BUNDLE_NAME,
                ),
            ],
        )

    def stale(self) -> list[str]:
        """What prepare removes from the filesystem. With --romfs every module of a plain bundle: the
        filesystem comes first on sys.path, so a board.mpy left there would shadow the image's."""
        return stale_names(B.planned_paths(True) if self.args.romfs else self.planned)

    def copy_bundle(self) -> Step:
        from tools.device.romfs import IMAGE_NAME

        on_fs = [p for p, _size in self.planned if p != IMAGE_NAME]  # the image went to the ROMFS partition
        entries = B.top_level_entries([(p, 0) for p in on_fs])
        return Step(
            "copy the bundle with mpremote (old modules removed first; the session journal is kept)",
            [
                self.mpremote_cmd(
                    "run",
                    PREPARE_NAME,
                    note="checks the board is in maintenance, removes %s" % ", ".join(self.stale()),
                    attempts=MPREMOTE_ATTEMPTS,  # it has just rebooted
                    check=self.board_ready,
                ),
                self.mpremote_cmd(
                    "fs", "cp", "-r", *(entries + [":"]), note="in the bundle directory", cwd=BUNDLE_NAME
                ),
            ],
        )

    # -- the local work and the checks, at run time

    def provision(self) -> str:
        a = self.args
        from hub.store.store import Store, StoreError

        try:
            store = Store(a.db)
        except (StoreError, ValueError, OSError) + DB_ERRORS as exc:  # ValueError: hub/secretfile.py refusals
            raise FlashError("cannot open the store %s: %s" % (a.db, exc)) from None
        try:
            key, what = self._provision(store)
            station = store.get_station(a.id)
        except StoreError as exc:
            raise FlashError("store %s: %s" % (a.db, exc), 2) from None
        except DB_ERRORS as exc:
            raise FlashError("store %s: %s" % (a.db, exc)) from None
        finally:
            store.close()
        self.config = self.config_for(key, station["lat"], station["lon"], station["connectors"], station["max_kw"])
        return "station %s: %s" % (a.id, what)

    def _provision(self, store: Any) -> tuple[str, str]:
        a = self.args
        existing = store.get_station(a.id)
        if existing is None:
            if a.lat is None or a.lon is None:
                raise FlashError("station %s is new: give its position with --lat and --lon" % a.id, 2)
            return store.add_station(
                a.id, a.lat, a.lon, a.connectors or 1, a.max_kw or 22.0
            ), "provisioned, new key issued"
        lat = a.lat if a.lat is not None else existing["lat"]
        lon = a.lon if a.lon is not None else existing["lon"]
        connectors = a.connectors or existing["connectors"]
        max_kw = a.max_kw or existing["max_kw"]
        changed = (lat, lon, connectors, max_kw) != tuple(existing[k] for k in ("lat", "lon", "connectors", "max_kw"))
        if a.new_key:
            key = store.add_station(a.id, lat, lon, connectors, max_kw, replace=True)
            return key, "already provisioned; NEW key issued (the old key no longer works)"
        key = store.get_station_key(a.id)
        if changed:
            store.add_station(a.id, lat, lon, connectors, max_kw, replace=True, key=key)
        return key, "already provisioned; key kept" + ("; position/connectors/power updated" if changed else "")

    def build(self) -> str:
        a = self.args
        out_dir = os.path.join(self.workdir, BUNDLE_NAME)
        extra = [self.ca] if self.ca else []
        try:
            if a.romfs:
                from tools.device import romfs

                self.written = romfs.write_romfs_bundle(out_dir, self.config, march=a.march, extra_files=extra)
            else:
                self.written = B.write_bundle(out_dir, self.config, mpy=not a.source, march=a.march, extra_files=extra)
        except B.BundleError as exc:
            raise FlashError(str(exc)) from None
        if sorted(p for p, _s in self.written) != sorted(p for p, _s in self.planned):  # the commands name them
            raise FlashError("the bundle differs from its plan: %s" % ", ".join(p for p, _s in self.written))
        with open(os.path.join(self.workdir, PREPARE_NAME), "w") as f:
            f.write(prepare_script(self.stale()))
        total = sum(size for _p, size in self.written)
        return "%d files, %d bytes" % (len(self.written), total)

    def board_ready(self, text: str) -> None:
        """The prepare script's report: in maintenance, an ESP32, room for the bundle."""
        from tools.device.romfs import IMAGE_NAME

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
                "    warning: the board says sys.platform=%r, not 'esp32'; the bundle is built for an ESP32" % platform
            )
        total = sum(size for p, size in self.written if p != IMAGE_NAME)  # the image has its own partition
        if free < total + SPACE_MARGIN:
            raise FlashError(
                "the board has %d bytes free, the bundle needs %d: erase it (--firmware ... --erase)"
                % (free, total + SPACE_MARGIN)
            )

    def run(self, workdir: str) -> None:
        self.check_can_run()
        self.workdir = workdir
        self.plan.run(workdir)

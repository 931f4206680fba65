"""`evhub bundle`: the board's filesystem, checked flags, and the bundle running on the MicroPython
unix port against the real hub (as source and as .mpy)."""

import json
import os
import stat
import subprocess

import pytest

import fw_mem
from procs import LoggedProcess
from hubproc import HubProcess, evhub
from mpy import micropython_path, mpy_cross_path
from waiting import wait_for

KEY = "00112233445566778899aabbccddeeff"
HEAP = "160K"  # what the firmware engineer's own e2e tests give the .mpy bundle
TLS_CA = os.path.join(os.path.dirname(__file__), "data", "tls", "hub.crt")  # the committed test hub's (self-signed)
TLS_KEY = os.path.join(os.path.dirname(__file__), "data", "tls", "hub.key")


def bundle(out, *flags, check=True):
    return evhub("bundle", out, "--id", "CP-B", "--key", KEY, *flags, check=check)


def board_modules(out):
    """Board-relative paths of the module files in a bundle directory."""
    found = []
    for top, _dirs, files in os.walk(out):
        for name in files:
            if name.endswith((".py", ".mpy")):
                found.append(os.path.relpath(os.path.join(top, name), out).replace(os.sep, "/"))
    return sorted(found)


def stations(hub):
    res = evhub("stations", "list", "--hub", hub.url, "--db", hub.db, "--json", check=False)
    return {s["id"]: s for s in json.loads(res.stdout)} if res.returncode == 0 else {}


class Board(LoggedProcess):
    """`cd OUT_DIR && micropython main.py`, exactly as the bundle's users run it; a romfs bundle with its
    image mounted at /rom first (what a board's MicroPython does with its partition)."""

    def __init__(self, out, tmp_path, heap=HEAP, romfs=False):
        env = dict(os.environ, MICROPYPATH=".frozen")  # nothing from the repository: only the bundle
        script = "main.py"
        if romfs:
            script = "launch.py"
            with open(os.path.join(out, script), "w") as f:
                f.write(fw_mem.rom_prelude("romfs.img") + "import main\n")
        LoggedProcess.__init__(
            self, [micropython_path(), "-X", "heapsize=" + heap, script], tmp_path / "board.out", cwd=out, env=env
        )


# --- what is written ---------------------------------------------------------------------------


def test_a_bundle_holds_boot_main_config_and_the_transport_and_firmware_packages(tmp_path):
    out = str(tmp_path / "board")
    res = bundle(
        out,
        "--hub",
        "tcp://192.168.1.10:7878",
        "--wifi",
        "depot:secret123",
        "--lat",
        "-12.2664",
        "--lon",
        "-38.9663",
        "--connectors",
        "2",
        "--max-kw",
        "11",
        "--relay-pins",
        "25,26",
    )
    from firmware.micropython import bundle_files

    expected = sorted(dst for _src, dst in bundle_files())
    assert sorted(board_modules(out) + ["config.json"]) == expected
    for name in ("boot.py", "main.py", "board.py", "transport/session.py", "firmware/chargepoint.py"):
        assert os.path.isfile(os.path.join(out, name)), name
    # every file is listed with its size, and a total
    for rel in expected:
        size = os.path.getsize(os.path.join(out, rel))
        assert "%9d  %s" % (size, rel) in res.stdout, rel
    assert "total, %d files" % len(expected) in res.stdout
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg == {
        "id": "CP-B",
        "key": KEY,
        "hub": {"host": "192.168.1.10", "port": 7878},
        "wifi": {"ssid": "depot", "password": "secret123"},
        "lat": -12.2664,
        "lon": -38.9663,
        "connectors": 2,
        "max_kw": 11.0,
        "relay_pins": [25, 26],
    }
    assert stat.S_IMODE(os.stat(os.path.join(out, "config.json")).st_mode) == 0o600
    assert KEY not in res.stdout + res.stderr


def test_a_uart_link_and_extra_settings_go_into_config_json(tmp_path):
    out = str(tmp_path / "board")
    bundle(out, "--uart", "17,16,115200", "--set", "offline_policy=stop", "--set", "heartbeat_s=10")
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["uart"] == {"id": 1, "tx": 17, "rx": 16, "baud": 115200}
    assert "hub" not in cfg and cfg["offline_policy"] == "stop" and cfg["heartbeat_s"] == 10


@pytest.mark.parametrize(
    "flags, message",
    [
        ((), "give exactly one link to the hub"),
        (("--uart", "17,16"), "expected TX,RX,BAUD"),
        (("--uart", "17,17,115200"), "TX and RX must be different"),
        (("--uart", "17,16,12"), "baud rate must be"),
        (("--hub", "http://h:1"), "scheme must be tcp://"),
        (("--hub", "h:0"), "port 0"),
        (("--hub", "h:7878", "--wifi", ":pw"), "expected SSID:PASSWORD"),
        (("--hub", "h:7878", "--wifi", "net:short"), "8..63 characters"),
        (("--hub", "h:7878", "--connectors", "0"), "connectors must be an integer in 1..8"),
        (("--hub", "h:7878", "--lat", "91"), "lat must be a number in -90..90"),
        (("--hub", "h:7878", "--connectors", "2", "--relay-pins", "25"), "relay_pins needs one pin per connector"),
        (("--hub", "h:7878", "--set", "colour=red"), "not a config key"),
        (("--hub", "h:7878", "--set", "offline_policy=maybe"), "offline_policy must be one of"),
    ],
)
def test_bad_flags_are_refused_with_a_clear_message(tmp_path, flags, message):
    res = bundle(str(tmp_path / "board"), *flags, check=False)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not os.path.exists(tmp_path / "board")


def test_two_links_at_once_are_refused(tmp_path):
    res = bundle(str(tmp_path / "board"), "--hub", "h:1", "--uart", "17,16,9600", check=False)
    assert res.returncode == 2 and "not allowed with argument" in res.stderr


def test_a_directory_with_other_files_is_refused_unless_forced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    res = bundle(str(out), "--uart", "17,16,115200", check=False)
    assert res.returncode == 2 and "not part of a bundle (notes.txt)" in res.stderr
    bundle(str(out), "--uart", "17,16,115200", "--force")
    assert (out / "notes.txt").read_text() == "keep me" and (out / "main.py").exists()


def test_rebuilding_as_mpy_removes_the_stale_sources_and_keeps_the_journal(tmp_path):
    """MicroPython imports x.py before x.mpy: a stale source would shadow the new build."""
    out = str(tmp_path / "board")
    bundle(out, "--uart", "17,16,115200")
    with open(os.path.join(out, "journal.log"), "w") as f:
        f.write("unacknowledged records\n")
    res = bundle(out, "--uart", "17,16,115200", "--mpy")
    modules = board_modules(out)
    assert [m for m in modules if m.endswith(".py")] == ["boot.py", "main.py"]
    assert "board.mpy" in modules and "transport/session.mpy" in modules and "firmware/chargepoint.mpy" in modules
    assert open(os.path.join(out, "journal.log")).read() == "unacknowledged records\n"
    assert (
        ".mpy for xtensawin" in res.stdout
        and "%9d  transport/session.mpy" % os.path.getsize(os.path.join(out, "transport", "session.mpy")) in res.stdout
    )


def test_the_bundle_is_not_written_into_the_source_tree(tmp_path):
    from hubproc import REPO

    res = bundle(REPO, "--uart", "17,16,115200", "--force", check=False)
    assert res.returncode == 2 and "own source tree" in res.stderr


# --- .mpy: compiled for the ESP32, and loadable -----------------------------------------------------


def _mpy_arch(path):
    """The native architecture recorded in a .mpy header (0: bytecode only, loads anywhere)."""
    with open(path, "rb") as f:
        head = f.read(4)
    assert head[:1] == b"M", path
    return head[1], head[2] >> 2


def test_mpy_modules_compile_for_xtensawin_hold_only_bytecode_and_load_on_the_unix_port(tmp_path):
    """mpy-cross -march=xtensawin compiles every module; they hold no native code, so the unix port
    loading them (and the host-bytecode build) proves what the ESP32 will load."""
    mpy_cross_path()
    esp = str(tmp_path / "esp32")
    host = str(tmp_path / "host")
    bundle(esp, "--uart", "17,16,115200", "--mpy")
    bundle(host, "--uart", "17,16,115200", "--mpy", "--march", "none")
    compiled = [m for m in board_modules(esp) if m.endswith(".mpy")]
    assert len(compiled) >= 15
    for rel in compiled:
        version, arch = _mpy_arch(os.path.join(esp, rel))
        assert version == 6 and arch == 0, "%s: mpy v%d with native arch %d" % (rel, version, arch)
    imports = "; ".join("import %s" % m[:-4].replace("/", ".").replace(".__init__", "") for m in compiled)
    probe = imports + "; import transport.session as s; print('loaded', s.__file__)"
    for out in (esp, host):
        res = subprocess.run(
            [micropython_path(), "-X", "heapsize=" + HEAP, "-c", probe],
            cwd=out,
            env=dict(os.environ, MICROPYPATH=".frozen"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0 and "loaded transport/session.mpy" in res.stdout, res.stdout + res.stderr


# --- running on the unix port against the real hub ------------------------------------------------------


@pytest.mark.parametrize("form", ["py", "mpy"])
def test_the_bundle_runs_on_the_unix_port_and_the_station_shows_available_at_the_hub(tmp_path, form):
    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-U%s" % form.upper(), lat=-12.25, lon=-38.95, connectors=2)
        out = str(tmp_path / "board")
        evhub(
            "bundle",
            out,
            "--id",
            "CP-U%s" % form.upper(),
            "--key",
            key,
            "--hub",
            hub.url,
            "--lat",
            "-12.25",
            "--lon",
            "-38.95",
            "--connectors",
            "2",
            *(["--mpy"] if form == "mpy" else []),
        )
        board = Board(out, tmp_path, heap=HEAP if form == "mpy" else "512K")
        try:
            st = wait_for(
                lambda: (
                    stations(hub).get("CP-U%s" % form.upper(), {}).get("status") == "Available"
                    and stations(hub)["CP-U%s" % form.upper()]
                ),
                30,
                "the station Available at the hub",
            )
        finally:
            log = board.stop()
        assert st["connectors"] == 2 and st["lat"] == -12.25
        assert "hub welcomed us" in log and "boot accepted" in log and "Traceback" not in log, log


# --- --romfs and tls:// -------------------------------------------------------------------------------


def test_a_romfs_bundle_holds_only_scripts_config_and_an_image_that_mounts_and_imports_on_the_unix_port(tmp_path):
    """The image is mpremote's romfs format holding every compiled module; the real `micropython` (whose
    vfs has VfsRom but no ROM partition: the image is mounted at /rom first, as a board does) imports the
    firmware from it alone."""
    out = str(tmp_path / "board")
    res = bundle(out, "--romfs", "--hub", "tcp://10.0.0.2:7878")
    assert "romfs image of .mpy" in res.stdout
    assert sorted(os.listdir(out)) == ["boot.py", "config.json", "main.py", "romfs.img"]
    assert stat.S_IMODE(os.stat(os.path.join(out, "config.json")).st_mode) == 0o600
    with open(os.path.join(out, "romfs.img"), "rb") as f:
        image = f.read()
    assert image[:3] == bytes([0xD2, 0xCD, 0x31])
    for name in (b"board.mpy", b"session.mpy", b"chargepoint.mpy", b"purepack.mpy"):
        assert name in image, name
    probe = fw_mem.rom_prelude("romfs.img") + (
        "import board, transport.session\nprint('FROM', board.__file__, transport.session.__file__)\n"
    )
    with open(os.path.join(out, "probe.py"), "w") as f:
        f.write(probe)
    run = subprocess.run(
        [micropython_path(), "-X", "heapsize=256K", "probe.py"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, MICROPYPATH=".frozen"),
    )
    assert run.returncode == 0 and "FROM /rom/board.mpy /rom/transport/session.mpy" in run.stdout, (
        run.stdout + run.stderr
    )


def test_rebuilding_a_plain_bundle_as_romfs_removes_the_modules_that_would_shadow_the_image(tmp_path):
    out = str(tmp_path / "board")
    bundle(out, "--mpy", "--hub", "10.0.0.2:7878")
    with open(os.path.join(out, "journal.log"), "w") as f:
        f.write("kept\n")
    bundle(out, "--romfs", "--hub", "10.0.0.2:7878")
    assert sorted(os.listdir(out)) == ["boot.py", "config.json", "journal.log", "main.py", "romfs.img"]
    bundle(out, "--hub", "10.0.0.2:7878")
    assert "romfs.img" not in os.listdir(out) and "board.py" in os.listdir(out)


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--hub", "tls://10.0.0.2:7879"), "TLS needs --tls-ca"),
        (("--hub", "10.0.0.2:7878", "--tls-ca", "CA"), "--tls-ca is for a tls:// hub"),
        (("--uart", "17,16,115200", "--tls-ca", "CA"), "--tls-ca is for a tls:// hub"),
        (("--hub", "tls://10.0.0.2:7879", "--tls-ca", "/nonexistent/ca.pem"), "No such file"),
    ],
)
def test_bad_tls_flags_are_refused_with_a_clear_message(tmp_path, flags, message):
    flags = [TLS_CA if f == "CA" else f for f in flags]
    res = bundle(str(tmp_path / "board"), *flags, check=False)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not os.path.exists(tmp_path / "board")


def test_a_tls_romfs_bundle_runs_on_the_unix_port_against_a_tls_hub_checking_its_certificate(tmp_path):
    """tls://, the CA copied as hub-ca.der and named in config.json, the modules in romfs: the board's
    own ssl (mbedTLS) checks the hub's certificate against that file and the station shows Available."""
    with HubProcess(tmp_path, extra_args=["--tls-cert", TLS_CA, "--tls-key", TLS_KEY]) as hub:
        key = hub.add_station("CP-TR", lat=-12.25, lon=-38.95)
        out = str(tmp_path / "board")
        evhub(
            "bundle",
            out,
            "--id",
            "CP-TR",
            "--key",
            key,
            "--hub",
            "tls://127.0.0.1:%d" % hub.port,
            "--tls-ca",
            TLS_CA,
            "--lat",
            "-12.25",
            "--lon",
            "-38.95",
            "--romfs",
        )
        assert json.load(open(os.path.join(out, "config.json")))["hub"]["ca"] == "hub-ca.der"
        board = Board(out, tmp_path, heap="256K", romfs=True)  # mbedTLS takes ~25 KB of the unix port's heap
        try:
            wait_for(
                lambda: stations_tls(hub).get("CP-TR", {}).get("status") == "Available",
                40,
                "the station Available at the hub over TLS",
            )
        finally:
            log = board.stop()
        assert "Traceback" not in log and "not checked" not in log, log


def stations_tls(hub):
    res = evhub(
        "stations",
        "list",
        "--hub",
        "tls://127.0.0.1:%d" % hub.port,
        "--db",
        hub.db,
        "--json",
        check=False,
        env={"EVHUB_TLS_CA": TLS_CA},
    )
    return {s["id"]: s for s in json.loads(res.stdout)} if res.returncode == 0 else {}

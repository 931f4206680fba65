"""The `evhub` console script: one command, subcommands in their own modules.

Each subcommand module exposes ``configure(parser)`` (adds its arguments) and
``run(args) -> int``. Modules are imported only when their subcommand runs, so
`evhub --help` stays fast and a broken tool cannot break the others.
"""

import argparse
import importlib
import logging
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "serve": ("tools.cmd_serve", "run the hub daemon (TCP listener and serial lines)"),
    "stations": ("tools.cmd_stations", "provision and list charge points"),
    "vehicles": ("tools.cmd_vehicles", "provision vehicles (tokens)"),
    "chargepoint": ("tools.cmd_chargepoint", "run a simulated charge point (the firmware core on CPython)"),
    "vehicle": ("tools.cmd_vehicle", "manual vehicle client: position, nearest, reserve, cancel, reservations"),
    "sim": ("tools.cmd_sim", "simulate a hub, charge points and vehicles on this machine"),
    "bundle": ("tools.cmd_bundle", "write the board filesystem (MicroPython firmware bundle)"),
    "flash": ("tools.cmd_flash", "flash MicroPython and the bundle to an ESP32 charge point"),
    "console": ("tools.cmd_console", "serial console that decodes evhub frames live"),
    "bench": ("tools.cmd_bench", "benchmarks: load the hub and report throughput, latency, memory"),
}


LOGGING_COMMANDS = ("serve", "chargepoint", "sim", "bench", "flash")


def build_parser():
    parser = argparse.ArgumentParser(prog="evhub", description="EV charge-point network hub and tools")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # one broken tool must not take the others down with it
            p.set_defaults(_missing="%s: %s" % (type(exc).__name__, exc))
            continue
        module.configure(p)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "_missing", False):
        print("evhub %s: not available in this build (%s)" % (args.command, args._missing), file=sys.stderr)
        return 2
    # Long-running services log what they do; one-shot commands print their answer and only warnings.
    quiet_default = logging.INFO if args.command in LOGGING_COMMANDS else logging.WARNING
    level = quiet_default - 10 * args.verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(args._module)
    try:
        return module.run(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

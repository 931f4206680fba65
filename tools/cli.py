"""The `evhub` console script: one command, subcommands in their own modules.

Each subcommand module exposes ``configure(parser)`` (adds its arguments) and
``run(args) -> int``. Modules are imported only when their subcommand runs, so
`evhub --help` stays fast and a broken tool cannot break the others.
"""

import argparse
import importlib
import logging
import sys

from tools.common.exitcodes import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED

# subcommand -> (module, one-line help)
COMMANDS = {
    "serve": ("tools.commands.serve", "run the hub daemon (TCP listener and serial lines)"),
    "stations": ("tools.commands.stations", "provision, list and remove charge points"),
    "vehicles": ("tools.commands.vehicles", "provision, list and remove vehicles (tokens)"),
    "chargepoint": ("tools.commands.chargepoint", "run a simulated charge point (the firmware core on CPython)"),
    "vehicle": ("tools.commands.vehicle", "manual vehicle client: position, nearest, reserve, cancel, reservations"),
    "sim": ("tools.commands.sim", "simulate a hub, charge points and vehicles on this machine"),
    "bundle": ("tools.commands.bundle", "write the board filesystem (MicroPython firmware bundle)"),
    "flash": ("tools.commands.flash", "flash MicroPython and the bundle to an ESP32 charge point"),
    "pty-pair": ("tools.commands.pty_pair", "two joined pseudo-terminals, to try serial links without hardware"),
    "console": ("tools.commands.console", "serial console that decodes evhub frames live"),
    "ocpp": ("tools.commands.ocpp", "OCPP 1.6J central system: commercial chargers join the hub as stations"),
    "reservations": (
        "tools.commands.reservations",
        "the reservation book for the operator: list (from the store), cancel",
    ),
    "sessions": ("tools.commands.sessions", "charging sessions for billing: export as CSV or JSON (from the store)"),
    "db": ("tools.commands.db", "store maintenance: backup (while the hub runs)"),
    "bench": ("tools.commands.bench", "benchmarks: load the hub and report throughput, latency, memory"),
}


LOGGING_COMMANDS = ("serve", "chargepoint", "sim", "bench", "flash", "ocpp")


def _version():
    try:
        from importlib.metadata import version

        return version("evhub")
    except Exception:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser():
    parser = argparse.ArgumentParser(prog="evhub", description="EV charge-point network hub and tools")
    parser.add_argument("--version", action="version", version="evhub %s" % _version())
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


def _hoist_verbose(argv):
    """Move -v/-vv/--verbose given anywhere (`evhub stations list -v`) to the front, where the
    global option lives; nothing after a bare ``--`` is touched. No subcommand uses -v itself."""
    front, rest = [], []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg == "--verbose" or (arg.startswith("-v") and arg.strip("-v") == "" and not arg.startswith("--")):
            front.append(arg)
        else:
            rest.append(arg)
    return front + rest


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(_hoist_verbose(sys.argv[1:] if argv is None else list(argv)))
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
        code = module.run(args) or 0
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `evhub stations list | head -1`: the reader left; that is not an error of ours. Point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())

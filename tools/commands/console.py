"""`evhub console PORT_URL`: a serial console that speaks evhub frames.

    evhub console /dev/ttyUSB0 [--baud 115200] [--key KEY [--id ID] | --db evhub.db]
    evhub console /dev/ttyUSB0 --as station --id CP-1 --key KEY     (on a hub's serial line)
    evhub console /dev/ttyUSB0 --as monitor                          (decode only)
    evhub console /dev/ttyUSB0 --raw                                 (the board's REPL)

PORT_URL is any pyserial URL: /dev/ttyUSB0, COM3, a pty path, socket://HOST:PORT,
rfc2217://HOST:PORT, loop://.

What the console is on the wire. A serial line has two ends. A charge point on a
serial line (``"uart"`` or ``"serial"`` in its config.json) expects a hub at the other
end, so by default (--as hub) the console IS that hub end: it answers the station's
HELLO with a challenge and checks its proof against the station's key (--key, or the
key in the hub's store --db, looked up by the id the station says hello with), then
acknowledges its BOOT and STATUS and answers its pings, as a hub does. Session records
are acknowledged only once stored in --db (the station deletes what is acknowledged):
with no store they stay in the station's journal and it sends them again. The commands you type become hub-to-station requests (TRIGGER, RESERVE_NOW,
CANCEL_RESERVATION, REMOTE_START, REMOTE_STOP, CHANGE_AVAILABILITY, CONFIGURE) and
their answers are shown. With no key to be found the console only monitors. A station
still in a session with whoever was on the line before (another console, a hub) talks
on as if nothing happened: the console stays silent until the station notices (three
heartbeats without an answer) and says hello again; resetting the station is quicker.
  --as station   for a hub's serial line (``evhub serve --serial URL``): the console
                 plays station --id with --key: hello, BOOT, then it acknowledges the
                 hub's requests (it does not act on them); ``status N STATUS`` reports.
  --as monitor   no session: frames are decoded and shown, ``raw`` sends exactly what
                 you type. For a tapped line, or to poke a peer with bad messages.

Every frame is one line: local time, direction (``<-`` received, ``->`` sent), kind
name, seq and fields as name=value. Frames dropped by the COBS/CRC-32 framing are
counted (crc_errors, decode_errors, oversize, resyncs) and a ``!!`` line shows the
totals whenever they change; ``stats`` shows them at any time.

The commands (``help`` lists those of the end you play) follow below.

Keys: Enter sends the line, Up/Down recall earlier ones, Ctrl-] (or Ctrl-C, or Ctrl-D on an
empty line, or ``quit``) leaves and restores the terminal. When stdin is not a terminal the
console reads one command per line; at the end of the input it keeps showing frames until
Ctrl-C, SIGTERM or --duration (end the input with ``quit`` to leave after the answers).

--raw is a plain terminal for the board's REPL (UART0): every key goes to the board
(Ctrl-C interrupts, Ctrl-D soft-resets it) and its output is shown as is; only Ctrl-]
leaves. Without a terminal, input lines are sent with CR line ends.
"""

import argparse
import os

from tools.client import secret_args
from tools.device.console import commands
from tools.device.console.run import run  # noqa: F401 (the command's entry point, as cli.py expects)


def configure(p):
    p.description = __doc__ + "\n" + commands.help_text()
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "url", metavar="PORT_URL", help="pyserial URL: /dev/ttyUSB0, a pty path, socket://HOST:PORT, loop://"
    )
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument("--raw", action="store_true", help="plain terminal for the board's REPL; Ctrl-] leaves")
    p.add_argument(
        "--as",
        dest="mode",
        choices=("hub", "station", "monitor"),
        default="hub",
        help="which end of the line the console plays (default hub: for a charge point on the line)",
    )
    secret_args.add(p, "--key", "EVHUB_KEY", "the station's key", extra_help=" (default: from the store --db)")
    p.add_argument("--id", help="the station's id (--as hub: accept only this station; --as station: required)")
    p.add_argument(
        "--db",
        default=os.environ.get("EVHUB_DB", "evhub.db"),
        help="hub store (default $EVHUB_DB or ./evhub.db, if it exists): station keys are looked up there, "
        "and the station's session records are stored there before they are acknowledged",
    )
    p.add_argument("--heartbeat", type=int, default=30, help="heartbeat seconds the hub end announces (default 30)")
    p.add_argument("--lat", type=float, default=0.0, help="--as station: position sent in BOOT")
    p.add_argument("--lon", type=float, default=0.0, help="--as station: position sent in BOOT")
    p.add_argument("--connectors", type=int, default=1, help="--as station: connectors sent in BOOT")
    p.add_argument("--max-kw", type=float, default=22.0, dest="max_kw", help="--as station: power sent in BOOT")
    p.add_argument("--duration", type=float, help="leave after this many seconds")

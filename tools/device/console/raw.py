"""`evhub console --raw`: a plain terminal for the board's REPL (UART0). Keys go to the board, its bytes
come back through RawFilter (tools/device/term_escape.py): nothing the board sends can drive the
person's terminal beyond what a REPL needs. Only Ctrl-] leaves.

Why not pyserial's Miniterm: its reader and writer threads block on the port and on stdin with no
timeout, so --duration, SIGTERM and the end of a piped input cannot stop it cleanly; and its rx
transformations see decoded text, while the filter must see the byte stream (an escape sequence or
a UTF-8 character split across two reads).
"""

import os
import select
import sys
import time

from serial import SerialException

from tools.device.console.ports import POLL_S, Stop, port_fd, read_waiting
from tools.device.term_escape import RawFilter


def run_raw(port, args):
    """A plain terminal: keys to the board, its bytes to the screen; Ctrl-] leaves."""
    stdin_fd = sys.stdin.fileno()
    tty_in = os.isatty(stdin_fd)
    out = getattr(sys.stdout, "buffer", None)
    fd = port_fd(port)
    saved = None
    shown = RawFilter()  # the board's bytes, minus escapes beyond what its REPL needs (tools/device/term_escape.py)
    end = None if args.duration is None else time.monotonic() + args.duration
    eof = False
    status = 0
    if tty_in:
        import termios
        import tty

        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd, termios.TCSANOW)  # TCSANOW: keys typed ahead are kept, not flushed
    sys.stderr.write("--- evhub console --raw on %s at %d baud; Ctrl-] leaves ---\r\n" % (args.url, args.baud))
    sys.stderr.flush()
    try:
        while end is None or time.monotonic() < end:
            fds = ([] if eof else [stdin_fd]) + ([fd] if fd is not None else [])
            ready = select.select(fds, [], [], POLL_S)[0] if fds else (time.sleep(POLL_S) or [])
            try:
                if stdin_fd in ready:
                    data = os.read(stdin_fd, 1024)
                    leave = b"\x1d" in data
                    data = data.split(b"\x1d", 1)[0]
                    if not tty_in:
                        data = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")  # Enter on the board is CR
                    if data:
                        port.write(data)
                    elif not leave:
                        eof = True
                    if leave:
                        break
                data = read_waiting(port, fd, ready)
            except (SerialException, OSError) as exc:  # the device went away
                sys.stderr.write("\r\n--- lost %s: %s ---\r\n" % (args.url, exc))
                status = 1
                break
            text = shown.feed(data) if data else ""
            if text:
                if out is not None:
                    out.write(text.encode("utf-8"))
                    out.flush()
                else:
                    sys.stdout.write(text)
                    sys.stdout.flush()
    except (KeyboardInterrupt, Stop):
        pass
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        sys.stderr.write("\r\n--- left %s ---\n" % args.url)
        sys.stderr.flush()
    return status

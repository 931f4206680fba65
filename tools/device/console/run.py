"""The console's run loops: the frame console (one end of the line, commands from stdin) and the
choice between it and --raw."""

import select
import signal
import sys
import threading
import time

from serial import SerialException

from hub.store.backend import DB_ERRORS
from tools.client import secret_args
from tools.device.console.endpoint import Monitor, StationEnd
from tools.device.console.hubend import HubEnd
from tools.device.console.lineedit import LineInput
from tools.device.console.ports import POLL_S, Stop, catch_sigterm, has_store, open_port, port_fd, read_waiting
from tools.device.console.raw import run_raw
from tools.device.console.typed import UsageError

TICK_S = 0.1  # session timers and `quit`
ENDS = {"hub": HubEnd, "station": StationEnd, "monitor": Monitor}


def run(args):
    if args.baud <= 0:
        print("evhub console: --baud must be positive", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("evhub console: --duration must be positive", file=sys.stderr)
        return 2
    try:
        secret_args.resolve(args, "--key", "EVHUB_KEY")
    except ValueError as exc:
        print("evhub console: %s" % exc, file=sys.stderr)
        return 2
    mode = args.mode
    if not args.raw and mode == "station":
        if not args.id:
            print("evhub console: --as station needs --id (and --key, or a --db that has it)", file=sys.stderr)
            return 2
        if not args.key and has_store(args.db):
            from hub.store.store import Store

            try:
                store = Store(args.db)
                try:
                    args.key = store.get_station_key(args.id)
                finally:
                    store.close()
            except (ValueError, OSError) + DB_ERRORS as exc:  # e.g. a store others can read (hub/secretfile.py)
                print("evhub console: cannot read the key from %s: %s" % (args.db, exc), file=sys.stderr)
                return 2
        if not args.key:
            print(
                "evhub console: no key for %s: give --key (or --db with the station in it)" % args.id, file=sys.stderr
            )
            return 2
    fallback = None
    if not args.raw and mode == "hub" and not args.key and not has_store(args.db):
        mode = "monitor"
        fallback = (
            "no --key and no store %s: monitoring only (give --key or --db to answer a station's hello)" % args.db
        )
    try:
        port = open_port(args.url, args.baud)
    except OSError as exc:
        print("evhub console: %s" % exc, file=sys.stderr)
        return 1
    old_term = catch_sigterm()
    try:
        if args.raw:
            return run_raw(port, args)
        return run_lines(port, args, mode, fallback)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        try:
            port.close()
        except Exception:  # closing a port that went away
            pass


def _write_stdout(text):
    sys.stdout.write(text)
    sys.stdout.flush()


def run_lines(port, args, mode, fallback):
    stdin_fd = sys.stdin.fileno()
    term = LineInput(stdin_fd, _write_stdout, "%s> " % mode)
    console = ENDS[mode](port, term.print, args)
    fd = port_fd(port)
    end = None if args.duration is None else time.monotonic() + args.duration
    status = 0
    old_cont = None
    with term:
        if term.tty and threading.current_thread() is threading.main_thread():

            def _on_cont(*_):
                term.cbreak()
                term.redraw()

            old_cont = signal.signal(signal.SIGCONT, _on_cont)
        try:
            if fallback:
                console.note(fallback)
            console.start()
            next_tick = time.monotonic()
            queued = []
            eof_noted = False
            while not console.done:
                now = time.monotonic()
                if end is not None and now >= end:
                    break
                fds = [] if term.eof else [stdin_fd]
                if fd is not None:
                    fds.append(fd)
                wait = TICK_S if fd is not None else POLL_S
                if fds:
                    ready, _w, _x = select.select(fds, [], [], min(wait, max(0.0, next_tick - now)))
                else:
                    time.sleep(POLL_S)
                    ready = []
                if stdin_fd in ready:
                    lines = term.read()
                    if lines is None or (term.eof and term.tty):
                        break
                    queued.extend(lines)
                try:
                    data = read_waiting(port, fd, ready)
                    if data:
                        console.feed(data)
                    while queued and time.monotonic() >= console.resume_at and console.quit_at is None:
                        line = queued.pop(0)
                        try:
                            console.command(line)
                        except UsageError as exc:
                            console.note(str(exc))
                    if term.eof and not queued and console.quit_at is None and not eof_noted:
                        eof_noted = True
                        console.note("end of input: still showing frames (Ctrl-C leaves)")
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + TICK_S
                        console.tick()
                except (SerialException, OSError) as exc:  # the device went away (read or write)
                    console.note("lost %s: %s" % (args.url, exc))
                    status = 1
                    break
        except (KeyboardInterrupt, Stop):
            pass
        finally:
            if old_cont is not None:
                signal.signal(signal.SIGCONT, old_cont)
            stats = console.framer.stats()
            console.note(
                "bye: %d frames in; crc_errors=%d decode_errors=%d oversize=%d resyncs=%d"
                % (stats["frames_ok"], stats["crc_errors"], stats["decode_errors"], stats["oversize"], stats["resyncs"])
            )
            if console.store is not None:
                console.store.close()
    return status

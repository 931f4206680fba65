"""The serial port under the console: opening any pyserial URL, and reading what is waiting on it
whether or not it has a file descriptor to select() on."""

import os
import signal
import threading

POLL_S = 0.02  # the longest wait for input when the port cannot be select()ed (loop://, socket://)


class Stop(Exception):
    """SIGTERM: leave as Ctrl-C does, restoring the terminal."""


def _on_sigterm(*_):
    raise Stop()


def catch_sigterm():
    """Install the SIGTERM handler (main thread only); returns the old one, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def has_store(db):
    """A --db to read keys from and record sessions in: a PostgreSQL URL, or a SQLite file that exists
    (the console never creates a store)."""
    from hub.store.backend import is_postgres, sqlite_path

    return is_postgres(db) or os.path.isfile(sqlite_path(db))


def open_port(url, baud):
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=0, write_timeout=2)
    except (serial.SerialException, OSError, ValueError) as exc:
        text = str(exc)
        if "Permission denied" in text:
            text += " (add yourself to the dialout group and log in again)"
        raise OSError("cannot open %s: %s" % (url, text)) from None


def port_fd(port):
    try:
        return port.fileno()
    except Exception:  # loop://, socket://, rfc2217:// have none: they are polled
        return None


def read_waiting(port, fd, ready):
    """The bytes waiting on the port: polled when it has no fd, else read when select() said so
    (ready with nothing to read raises if the device went away)."""
    if fd is None:
        waiting = port.in_waiting
        return port.read(waiting) if waiting else b""
    if fd in ready:
        return port.read(port.in_waiting or 1)
    return b""

"""`evhub console`: attached to real firmware over a pty pair, driven as a person would (through a
terminal of its own: we hold the master side of the console's pty, read its screen and type), and
fed from a pipe; the hub end, the station end against the real hub's serial line, the frame
counters, and --raw on the MicroPython REPL."""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time

import pytest

from procs import LoggedProcess
from fw_ptypair import PtyPair
from hubproc import REPO, HubProcess, evhub
from mpy import micropython_path
from transport.framing import encode_serial
from transport.codec import packb
from transport import kinds as K

KEY = "00112233445566778899aabbccddeeff"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CTRL_RBRACKET = "\x1d"


class Screen:
    """A program on a terminal of its own: `type` keys into it, `expect` what it shows.

    With tty=False the same program gets plain pipes instead (a script feeding it lines).
    """

    def __init__(self, argv, cwd=REPO, env=None, tty=True):
        full_env = dict(os.environ, PYTHONPATH=REPO, TERM="xterm", **(env or {}))
        if tty:
            self.master, self.slave = pty.openpty()
            self.before = termios.tcgetattr(self.slave)
            self.proc = subprocess.Popen(
                argv,
                stdin=self.slave,
                stdout=self.slave,
                stderr=self.slave,
                cwd=cwd,
                env=full_env,
                start_new_session=True,
            )
            self.out_fd, self.in_fd = self.master, self.master
        else:
            self.master = self.slave = None
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=full_env,
                start_new_session=True,
            )
            self.out_fd, self.in_fd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        self.text = ""
        self.seen = 0  # expect() searches what came after the last match

    def _pump(self, timeout):
        ready, _w, _x = select.select([self.out_fd], [], [], timeout)
        if ready:
            try:
                data = os.read(self.out_fd, 65536)
            except OSError:  # EIO: the program closed the terminal
                return False
            self.text += ANSI.sub("", data.decode("utf-8", "replace"))
            return bool(data)
        return False

    def expect(self, pattern, timeout=20):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.text, self.seen)
            if m:
                self.seen = m.end()
                return m
            if time.monotonic() >= deadline:
                raise AssertionError("no %r within %ss; the screen shows:\n%s" % (pattern, timeout, self.text[-4000:]))
            self._pump(0.1)

    def type(self, text, delay=0.01):
        if self.master is None:
            os.write(self.in_fd, text.encode())
            return
        for ch in text:
            os.write(self.master, ch.encode())
            time.sleep(delay)

    def end_input(self):
        self.proc.stdin.close()

    def wait(self, timeout=15):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.05)
        if self.proc.poll() is None:
            self.kill()
            raise AssertionError("the console did not leave within %ss:\n%s" % (timeout, self.text[-3000:]))
        while self._pump(0.05):
            pass
        return self.proc.returncode

    def restored(self):
        return termios.tcgetattr(self.slave) == self.before

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def close(self):
        self.kill()
        if self.master is None:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            return
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def console_argv(*args):
    return [sys.executable, "-m", "tools.cli", "console"] + [str(a) for a in args]


class Proc(LoggedProcess):
    """A background process with its output in a file."""

    def __init__(self, argv, log_path, cwd=REPO, env=None):
        LoggedProcess.__init__(self, argv, log_path, cwd=cwd, env=dict(os.environ, PYTHONPATH=REPO, **(env or {})))


@pytest.fixture
def pair():
    p = PtyPair()
    yield p
    p.close()


def micropython_station(tmp_path, station_id, serial_path, *flags):
    """`evhub bundle --mpy --serial PATH` run with `micropython main.py`: the real board firmware on a pty."""
    out = str(tmp_path / "board")
    evhub(
        "bundle", out, "--id", station_id, "--key", KEY, "--serial", serial_path, "--connectors", "2", "--mpy", *flags
    )
    env = {"MICROPYPATH": ".frozen"}
    return Proc([micropython_path(), "-X", "heapsize=160K", "main.py"], tmp_path / "board.out", cwd=out, env=env)


# --- through a terminal, as a person ------------------------------------------------------------------


def test_a_person_at_the_console_sees_the_frames_and_changes_the_board_firmwares_status(tmp_path, pair):
    screen = Screen(console_argv(pair.path1, "--key", KEY, "--id", "CP-TTY"))
    board = None
    try:
        screen.expect(r"waiting for a station's hello")
        board = micropython_station(tmp_path, "CP-TTY", pair.path2)
        screen.expect(r"<- hello +seq=0 proto=%d role=station id=CP-TTY nonce=<16 bytes" % K.PROTOCOL_VERSION)
        screen.expect(r"-> challenge ")
        screen.expect(r"station CP-TTY authenticated")
        screen.expect(r"<- boot +seq=\d+ lat=0.0 lon=0.0 connectors=2 max_kw=22.0 firmware=evhub-fw")
        screen.expect(r"<- status +seq=\d+ connector=2 status=Available")
        screen.type("help\r")
        screen.expect(r"availability N on\|off")
        screen.type("status\r")
        screen.expect(r"last known: 1 Available, 2 Available")
        screen.expect(r"-> trigger +seq=\d+ what=status")
        screen.expect(r"trigger status: ok")
        # typing with a correction: backspace over a wrong character
        screen.type("availability 2 ofx\x7ff\r")
        screen.expect(r"-> change_availability seq=\d+ connector=2 available=False")
        screen.expect(r"<- status +seq=\d+ connector=2 status=Unavailable")
        screen.expect(r"availability 2 off: ok")
        screen.type("reserve 5 1 V-1 now 30\r")
        screen.expect(r"-> reserve_now +seq=\d+ reservation_id=5 connector=1 vehicle_id=V-1")
        screen.expect(r"reserve 5: ok")  # the station acknowledges first, then reports what changed
        screen.expect(r"<- status +seq=\d+ connector=1 status=Reserved")
        screen.type("frobnicate\r")
        screen.expect(r"unknown command 'frobnicate'")
        screen.type("\x1b[A\x1b[A\x1b[A\r")  # Up three times: "availability 2 off" again, from the history
        screen.expect(r"-> change_availability seq=\d+ connector=2 available=False")
        screen.type("availability 2 on\r")
        screen.expect(r"<- status +seq=\d+ connector=2 status=Available")
        screen.type(CTRL_RBRACKET)
        assert screen.wait() == 0
        assert screen.restored(), "the console left the terminal in its own mode"
        assert "bye:" in screen.text and "Traceback" not in screen.text
    finally:
        screen.close()
        out = board.stop() if board else ""
    assert "connector 2 Unavailable" in out and "reservation 5 booked" in out, out
    assert "Traceback" not in out, out


def test_the_console_shows_frames_from_a_running_session_and_leaves_on_ctrl_d(tmp_path, pair):
    """A CPython charge point with a session in progress: remote start, meter values, remote stop."""
    from hub.store.store import Store

    db = str(tmp_path / "hub.db")  # where the console stores the session records it acknowledges
    store = Store(db)
    store.add_station("CP-PY", 1.0, 2.0, 1, 22.0, key=KEY)
    store.close()
    screen = Screen(console_argv(pair.path1, "--key", KEY, "--db", db))
    station = None
    try:
        screen.expect(r"waiting for a station's hello")
        station = Proc(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "chargepoint",
                "--id",
                "CP-PY",
                "--key",
                KEY,
                "--serial",
                pair.path2,
                "--journal",
                "none",
                "--speedup",
                "30",
            ],
            tmp_path / "cp.out",
        )
        screen.expect(r"station CP-PY authenticated")
        screen.expect(r"<- status +seq=\d+ connector=1 status=Available")
        screen.type("start 1 V-7\r")
        screen.expect(r"start V-7 on 1: ok")
        m = screen.expect(r"<- session_start +seq=\d+ session_id=(\S+) connector=1 vehicle_id=V-7")
        screen.expect(r"<- meter +seq=0 connector=1 session_id=%s energy_wh=\d+" % re.escape(m.group(1)), timeout=30)
        assert re.search(r"<- status +seq=\d+ connector=1 status=Charging", screen.text)
        screen.type("stop\r")
        screen.expect(r"-> remote_stop +seq=\d+ session_id=%s" % re.escape(m.group(1)))
        screen.expect(r"<- session_end +seq=\d+ session_id=%s .* reason=Remote" % re.escape(m.group(1)))
        screen.type("\x04")
        assert screen.wait() == 0 and screen.restored()
    finally:
        screen.close()
        if station:
            station.stop()


# --- from a pipe ------------------------------------------------------------------------------------------


def test_commands_from_a_pipe_with_the_key_from_the_store(tmp_path, pair):
    from hub.store.store import Store

    db = str(tmp_path / "hub.db")
    store = Store(db)
    key = store.add_station("CP-DB", 1.0, 2.0, 1, 22.0)
    store.close()
    console = Screen(console_argv(pair.path1, "--db", db), tty=False)
    station = None
    try:
        console.expect(r"waiting for a station's hello \(keys from %s\)" % re.escape(db))
        station = Proc(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "chargepoint",
                "--id",
                "CP-DB",
                "--key",
                key,
                "--serial",
                pair.path2,
                "--journal",
                "none",
            ],
            tmp_path / "cp.out",
        )
        console.expect(r"station CP-DB authenticated")
        console.expect(r"<- status +seq=\d+ connector=1 status=Available")
        console.type(
            "availability 0 off\n"
            "sleep 1\n"
            "trigger meter\n"
            "reserve 7 1 V-2 +15m 30\n"
            "config heartbeat_s 10\n"
            "config colour 1\n"
            "quit\n"
        )
        assert console.wait(20) == 0
    finally:
        console.close()
        if station:
            station.stop()
    out = console.text
    assert re.search(r"<- status +seq=\d+ connector=1 status=Unavailable", out), out
    assert re.search(r"<- meter +seq=0 connector=1 session_id=None energy_wh=0 power_w=0", out), out
    assert re.search(r"-> reserve_now +seq=\d+ reservation_id=7 connector=1 vehicle_id=V-2 start=\d+ end=\d+", out), out
    assert "config heartbeat_s: ok" in out and "config colour: REFUSED bad_field" in out, out
    assert "Traceback" not in out


def test_at_the_end_of_its_input_the_console_keeps_showing_frames_until_terminated(tmp_path, pair):
    console = Screen(console_argv(pair.path1, "--key", KEY, "--id", "CP-ONLY"), tty=False)
    station = None
    try:
        console.expect(r"waiting for a station's hello")
        console.end_input()
        console.expect(r"end of input: still showing frames")
        station = Proc(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "chargepoint",
                "--id",
                "CP-OTHER",
                "--key",
                KEY,
                "--serial",
                pair.path2,
                "--journal",
                "none",
            ],
            tmp_path / "cp.out",
        )
        console.expect(r"CP-OTHER says hello but --id is CP-ONLY: refused")
        console.expect(r"-> error +seq=0 code=5\(auth_failed\)")
        console.proc.terminate()
        assert console.wait() == 0
        assert "bye:" in console.text
    finally:
        console.close()
        if station:
            station.stop()


def test_a_station_still_in_a_session_from_before_says_hello_again_after_the_silence(tmp_path, pair):
    """The first console tells the station to ping every 2 s and leaves; the second stays silent
    to the old session's pings, so the station notices (3 heartbeats) and starts over."""
    first = Screen(console_argv(pair.path1, "--key", KEY, "--heartbeat", "2"), tty=False)
    station = None
    second = None
    try:
        first.expect(r"waiting for a station's hello")
        station = Proc(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "chargepoint",
                "--id",
                "CP-OLD",
                "--key",
                KEY,
                "--serial",
                pair.path2,
                "--journal",
                "none",
            ],
            tmp_path / "cp.out",
        )
        first.expect(r"station CP-OLD authenticated")
        first.type("quit\n")
        assert first.wait() == 0
        second = Screen(console_argv(pair.path1, "--key", KEY), tty=False)
        # The old session's pings are sealed with keys this console never had: shown as such, not read.
        second.expect(r"<- sealed +29 bytes, seq=\d+, MAC'd for a session this console does not hold")
        second.expect(r"talks as if in a session from before")
        second.expect(r"station CP-OLD authenticated", timeout=30)
        second.type("trigger status\nquit\n")
        second.expect(r"trigger status: ok")
        assert second.wait() == 0
    finally:
        first.close()
        if second:
            second.close()
        if station:
            station.stop()


def test_without_a_key_the_console_monitors(tmp_path):
    res = subprocess.run(
        console_argv("loop://", "--db", str(tmp_path / "none.db")),
        input='raw ["ping", 3, 1]\nquit\n',
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert res.returncode == 0
    assert "monitoring only" in res.stdout
    assert re.search(r"-> ping +seq=3 time=1", res.stdout) and re.search(r"<- ping +seq=3 time=1", res.stdout)


# --- line damage is counted ---------------------------------------------------------------------------------


def test_crc_errors_and_resyncs_are_counted(tmp_path, pair):
    console = Screen(console_argv(pair.path1, "--as", "monitor"), tty=False)
    try:
        console.expect(r"monitoring ")
        good = encode_serial(packb([5, 1, 1700000000]))
        bad = bytearray(encode_serial(packb([5, 2, 1700000000])))
        bad[3] ^= 0x40  # one flipped bit inside the frame
        fd = os.open(pair.path2, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, good + bytes(bad) + good)
        finally:
            os.close(fd)
        console.expect(r"crc_errors=1 decode_errors=0 oversize=0 resyncs=1 \(frames ok 2\)")
        console.type("stats\nquit\n")
        assert console.wait() == 0
    finally:
        console.close()
    assert len(re.findall(r"<- ping +seq=1 time=1700000000", console.text)) == 2, console.text
    assert "!! line" in console.text and "frames_ok=2 crc_errors=1" in console.text


# --- the station end, against the real hub's serial line -------------------------------------------------


def test_as_a_station_on_the_hubs_serial_line(tmp_path, pair):
    with HubProcess(tmp_path, extra_args=["--serial", pair.path1]) as hub:
        key = hub.add_station("CP-CON", lat=1.5, lon=2.5)
        screen = Screen(
            console_argv(pair.path2, "--as", "station", "--id", "CP-CON", "--key", key, "--lat", "1.5", "--lon", "2.5")
        )
        try:
            screen.expect(r"the hub welcomed us")
            screen.expect(r"boot: ok")
            screen.type("status 1 Faulted relay-welded\r")
            screen.expect(r"-> status +seq=\d+ connector=1 status=Faulted info=relay-welded")
            screen.expect(r"status 1 Faulted: ok")
            listing = evhub("stations", "list", "--hub", hub.url, "--db", hub.db, "--json").stdout
            assert '"status": "Faulted"' in listing, listing
            screen.type("trigger boot\r")
            screen.expect(r"`trigger` is for --as hub")
            screen.type(CTRL_RBRACKET)
            assert screen.wait() == 0 and screen.restored()
        finally:
            screen.close()


# --- --raw: the MicroPython REPL --------------------------------------------------------------------------------


def test_raw_is_a_plain_terminal_to_the_repl(tmp_path, pair):
    fd = os.open(pair.path2, os.O_RDWR | os.O_NOCTTY)
    repl = subprocess.Popen([micropython_path()], stdin=fd, stdout=fd, stderr=fd, cwd=str(tmp_path))
    os.close(fd)
    screen = Screen(console_argv(pair.path1, "--raw"))
    try:
        screen.expect(r"Ctrl-] leaves")
        screen.type("\r")
        screen.expect(r">>> ")
        screen.type("print(6 * 7)\r")
        screen.expect(r"\n42\r?\n")
        screen.type("\x03")  # Ctrl-C goes to the board (interrupt), it does not end the console
        screen.expect(r">>> ")
        screen.type(CTRL_RBRACKET)
        assert screen.wait() == 0
        assert screen.restored()
        assert repl.poll() is None, "the board's REPL must still be running"
    finally:
        screen.close()
        repl.kill()
        repl.wait()


# --- pieces ------------------------------------------------------------------------------------------------------


def test_start_times_and_message_lines():
    from tools.device.console.render import message_text
    from tools.device.console.typed import UsageError, parse_start

    now = 1800000000  # 2027-01-15 08:00 UTC
    assert parse_start("now", now) == now
    assert parse_start("+15m", now) == now + 900 and parse_start("+2h", now) == now + 7200
    assert parse_start("09:30", now) == now - now % 86400 + 9 * 3600 + 1800
    assert parse_start("07:00", now) == now - now % 86400 + 86400 + 7 * 3600  # already past: tomorrow
    assert parse_start("1800000600", now) == 1800000600
    with pytest.raises(UsageError):
        parse_start("soon", now)
    assert message_text([21, 4, 1, "Faulted", "relay welded"]) == (
        "status",
        'seq=4 connector=1 status=Faulted info="relay welded"',
    )
    assert message_text([7, 9, 12, "connector 1 is Unavailable"])[1].startswith("seq=9 code=12(invalid_state)")
    assert "invalid" in message_text([99, 1])[1] and message_text("junk")[0] == "?"


def test_help_documents_what_the_console_is_on_the_wire():
    res = evhub("console", "--help")
    for text in ("IS that hub end", "--as station", "Ctrl-]", "REMOTE_START", "availability N on|off", "--raw"):
        assert text in res.stdout, text


# --- session records: acknowledged only once stored -------------------------------------------------


def _charge_and_stop(console, tmp_path, key, station_id, serial_path, started):
    station = Proc(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "chargepoint",
            "--id",
            station_id,
            "--key",
            key,
            "--serial",
            serial_path,
            "--journal",
            str(tmp_path / "cp.journal"),
            "--speedup",
            "30",
        ],
        tmp_path / "cp.out",
    )
    started.append(station)  # stopped by the caller even if an expectation below fails (no stray device)
    console.expect(r"station %s authenticated" % station_id)
    console.expect(r"<- status +seq=\d+ connector=1 status=Available")
    console.type("start 1 V-7\n")
    m = console.expect(r"<- session_start +seq=\d+ session_id=(\S+) connector=1 vehicle_id=V-7")
    console.type("sleep 2\nstop\n")
    console.expect(r"<- session_end +seq=\d+ session_id=%s .* reason=Remote" % re.escape(m.group(1)))
    return station, m.group(1)


def test_the_console_as_hub_stores_session_records_before_acknowledging_them(tmp_path, pair):
    from hub.store.store import Store

    db = str(tmp_path / "hub.db")
    store = Store(db)
    key = store.add_station("CP-BILL", 1.0, 2.0, 1, 22.0)
    store.close()
    console = Screen(console_argv(pair.path1, "--db", db), tty=False)
    started = []
    try:
        console.expect(r"waiting for a station's hello")
        _station, sid = _charge_and_stop(console, tmp_path, key, "CP-BILL", pair.path2, started)
        console.expect(r"session_end %s stored in" % re.escape(sid))
        console.expect(r"-> ack +seq=\d+", timeout=10)
    finally:
        console.close()
        for station in started:
            station.stop()
    store = Store(db)
    try:
        s = store.get_session(sid)
    finally:
        store.close()
    assert s is not None and s["station_id"] == "CP-BILL" and s["vehicle_id"] == "V-7" and s["ended"] is not None
    assert s["reason"] == "Remote"


def test_the_console_with_no_store_does_not_acknowledge_session_records(tmp_path, pair):
    console = Screen(console_argv(pair.path1, "--key", KEY, "--db", str(tmp_path / "absent.db")), tty=False)
    station = None
    try:
        console.expect(r"waiting for a station's hello")
        station = Proc(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "chargepoint",
                "--id",
                "CP-NOSTORE",
                "--key",
                KEY,
                "--serial",
                pair.path2,
                "--journal",
                str(tmp_path / "cp.journal"),
                "--speedup",
                "30",
            ],
            tmp_path / "cp.out",
        )
        console.expect(r"station CP-NOSTORE authenticated")
        console.expect(r"<- status +seq=\d+ connector=1 status=Available")
        console.type("start 1 V-7\n")
        m = console.expect(r"<- session_start +seq=(\d+) session_id=(\S+) connector=1 vehicle_id=V-7")
        console.expect(r"session_start %s not acknowledged: no store" % re.escape(m.group(2)))
        # Unacknowledged, the record stays with the station, which sends it again (serial resend).
        again = console.expect(r"<- session_start +seq=(\d+) session_id=%s" % re.escape(m.group(2)), timeout=15)
        assert again.group(1) != m.group(1)
    finally:
        console.close()
        if station:
            station.stop()
    assert not os.path.exists(tmp_path / "absent.db")

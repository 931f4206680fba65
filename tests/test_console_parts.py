"""The console's pieces without a serial port: the one command table, each end of the line driven with
frames in memory, and a store that cannot be read."""

import types

import pytest

from hubproc import evhub
from tools.device.console import commands
from tools.device.console.endpoint import Monitor, StationEnd
from tools.device.console.hubend import HubEnd
from tools.device.console.typed import UsageError
from transport import kinds as K
from transport.codec import packb, unpackb
from transport.framing import SerialFramer
from transport.session import ClientSession

KEY = "k" * 32
ENDS = {"hub": HubEnd, "station": StationEnd, "monitor": Monitor}


class Port:
    """What the console writes, as bytes."""

    def __init__(self):
        self.written = bytearray()

    def write(self, data):
        self.written += data


def args(**kw):
    base = dict(url="loop://", key=KEY, id="CP-1", db="/nonexistent/evhub.db", heartbeat=30)
    base.update(lat=1.0, lon=2.0, connectors=2, max_kw=22.0)
    base.update(kw)
    return types.SimpleNamespace(**base)


def end(role, **kw):
    lines = []
    e = ENDS[role](Port(), lines.append, args(**kw))
    return e, lines


@pytest.mark.parametrize("role", commands.ROLES)
def test_every_command_in_the_table_is_implemented_by_its_end_and_help_lists_exactly_those(role):
    e, lines = end(role)
    names = list(commands.for_role(role))
    assert all(callable(getattr(e, "do_" + n, None)) for n in names), role
    e.do_help([])
    listed = [ln.split()[0] for ln in lines[1:] if not ln.startswith("   ")]  # not a wrapped line
    assert listed == names


def test_the_command_help_is_written_once_and_the_long_help_is_generated_from_it():
    text = commands.help_text()
    for c in commands.TABLE:
        assert c.usage in text and c.text in text
    res = evhub("console", "--help")
    assert commands.help_text() in res.stdout, "--help prints the table, not a copy of it"
    assert "reserve ID CONNECTOR VEHICLE" not in res.stdout.replace(commands.help_text(), ""), "written twice"


def test_a_command_of_another_end_is_refused_naming_the_end_it_belongs_to():
    e, _lines = end("monitor")
    with pytest.raises(UsageError, match="`reserve` is for --as hub"):
        e.command("reserve 1 1 V-1")
    with pytest.raises(UsageError, match="unknown command 'fly'"):
        e.command("fly")


def frames(port_bytes):
    return [unpackb(p) for p in SerialFramer().feed(bytes(port_bytes))]


def test_the_hub_end_authenticates_a_station_with_the_hubs_own_handshake_and_acknowledges_its_boot():
    hub, lines = end("hub")
    hub.start()
    station = ClientSession("station", "CP-1", KEY, heartbeat_s=30)
    to_hub, from_hub = SerialFramer(), SerialFramer()
    to_hub.seal = from_hub.seal = station.seal  # as a station's framer: sealed once the session is
    station.start()
    replies = []

    def exchange():
        for m in station.take_outgoing():
            hub.feed(to_hub.encode(packb(m)))
        for payload in from_hub.feed(bytes(hub.port.written)):
            replies.extend(station.receive(unpackb(payload)))
        hub.port.written.clear()

    for _ in range(4):  # hello -> challenge -> proof -> welcome
        exchange()
    assert station.authenticated and any("station CP-1 authenticated" in ln for ln in lines)
    seq = station.request(K.BOOT, 1.0, 2.0, 2, 22.0, "fw")
    exchange()
    assert any(getattr(r, "seq", None) == seq and r.kind == K.ACK for r in replies)
    assert any("CP-1 booted: 2 connector(s)" in ln for ln in lines)


def test_the_hub_end_does_not_acknowledge_a_session_record_it_cannot_store():
    hub, lines = end("hub")
    hub.session = types.SimpleNamespace(peer_id="CP-1", send=lambda *a: lines.append("ACK SENT"))
    msg = types.SimpleNamespace(kind=K.SESSION_END, seq=5, fields=["S-1", 1, "V-1", 0, 1, 10, 20, "Complete", None])
    hub.on_message(msg)
    assert "ACK SENT" not in lines and any("not acknowledged: no store" in ln for ln in lines)


def test_the_station_end_says_hello_and_acknowledges_what_the_hub_asks_without_acting():
    st, lines = end("station")
    st.start()
    sent = frames(st.port.written)
    assert sent and sent[0][0] == K.HELLO
    acked = []
    st.session = types.SimpleNamespace(send=lambda kind, seq: acked.append((kind, seq)))
    st.on_message(types.SimpleNamespace(kind=K.TRIGGER, seq=9, fields=["status"]))
    assert acked == [(K.ACK, 9)] and any("does not act on it" in ln for ln in lines)


def test_the_monitor_sends_a_raw_message_as_typed_with_the_kind_by_name():
    mon, lines = end("monitor")
    mon.command('raw ["trigger", 99, "meter"]')
    assert frames(mon.port.written) == [[K.TRIGGER, 99, "meter"]]
    assert any("trigger" in ln.lower() and "seq=99" in ln for ln in lines)


def test_a_station_key_store_that_cannot_be_reached_is_one_clear_line(tmp_path):
    res = evhub(
        "console",
        "loop://",
        "--as",
        "station",
        "--id",
        "CP-1",
        "--db",
        "postgresql://x@127.0.0.1:1/none",
        check=False,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "cannot read the key from postgresql://x@127.0.0.1:1/none" in res.stderr
    hub, lines = end("hub", key=None, db="postgresql://x@127.0.0.1:1/none")
    assert hub._lookup_key("station", "CP-1") is None
    assert any("cannot read keys from postgresql://x@127.0.0.1:1/none" in ln for ln in lines)

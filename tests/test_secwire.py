"""Protocol 2 security: mutual authentication, sealed frames, id probing and HELLO id validation.

Against the real hub process (tests/hubproc.py) and the real firmware (the CPython runner and the
MicroPython board), plus the sans-I/O pieces (transport.framing.Seal, the sessions) on their own.
"""

import socket
import threading
import time

import pytest

from firmware.runner import run_chargepoint
from hubproc import HubProcess
from test_firmware_micropython import Firmware, bundle_dir, fw_config, rom_board, wait_for  # noqa: F401 (fixtures)
from tools.client.hubclient import HubClient, HubError
from transport import kinds as K
from transport import serversession
from transport.codec import packb, unpackb
from transport.errors import E_AUTH_FAILED, E_BAD_FIELD, FrameError
from transport.framing import SerialFramer, StreamFramer, encode_stream
from transport.framing import Seal
from transport.session import Authenticated, ClientSession, Closed, auth_proof
from transport.serversession import ServerSession

KEY = b"00112233445566778899aabbccddeeff"


def _pair(strict=True):
    a, b = Seal(), Seal()
    a.start(b"k" * 32, b"j" * 32)
    b.start(b"j" * 32, b"k" * 32)
    return a, b


# --- the seal on its own ----------------------------------------------------------------------------


def test_a_sealed_frame_opens_on_the_other_side_and_nothing_else_does():
    a, b = _pair()
    frames = [a.seal(packb([K.PING, n, n])) for n in range(1, 4)]
    assert [unpackb(b.open(f)) for f in frames] == [[K.PING, n, n] for n in range(1, 4)]
    a2, b2 = _pair()
    f1, f2 = a2.seal(b"\x90"), a2.seal(b"\x91")
    cases = {
        "injected (bad tag)": (f1[:-1] + bytes([f1[-1] ^ 1]),),
        "replayed": (f1, f1),
        "reordered": (f2,),
        "truncated": (f1[:-3],),
        "unsealed": (packb([K.REMOTE_START, 1, 1, "V", None, None]),),
        "reflected": (b2.seal(b"\x90"),),
    }
    for what, seq in cases.items():
        _a, rx = _pair()
        with pytest.raises(FrameError):
            for f in seq:
                rx.open(f)


def test_on_serial_a_lost_frame_costs_only_itself_but_replays_and_forgeries_are_dropped():
    a, b = _pair()
    f1, f2, f3 = a.seal(b"\x01"), a.seal(b"\x02"), a.seal(b"\x03")
    assert b.open(f1, False) == b"\x01"
    assert b.open(f3, False) == b"\x03"  # f2 was lost on the line: the link goes on
    assert b.open(f2, False) is None and b.open(f3, False) is None  # late and replayed: dropped
    assert b.open(f3[:-1] + b"\x00", False) is None and b.rx == 3


def test_the_serial_framer_drops_a_forged_frame_and_delivers_the_next_good_one():
    a, b = _pair()
    tx, rx = SerialFramer(), SerialFramer()
    tx.seal, rx.seal = a, b
    good = tx.encode(b"\x91\x05")
    forged = SerialFramer().encode(b"\xc1\x00\x00\x00\x09" + b"\x90" + b"\x00" * 16)
    assert rx.feed(forged + good) == [b"\x91\x05"]


# --- the sessions -----------------------------------------------------------------------------------


def _handshake(server_key, client_key=KEY, peer_id="CP-1"):
    server = ServerSession(lambda r, i: server_key if i == "CP-1" else None)
    client = ClientSession("station", peer_id, client_key)
    sf, cf = StreamFramer(), StreamFramer()
    sf.seal, cf.seal = server.seal, client.seal
    client.start()
    events = []
    for _ in range(4):
        for m in client.take_outgoing():
            for p in sf.feed(cf.encode(packb(m))):
                events += server.receive(unpackb(p))
        for m in server.take_outgoing():
            try:
                for p in cf.feed(sf.encode(packb(m))):
                    events += client.receive(unpackb(p))
            except FrameError as exc:
                events.append(exc)
    return server, client, events


def test_both_sides_prove_the_key_and_the_client_opens_only_after_the_hub_proof():
    server, client, events = _handshake(KEY)
    assert client.authenticated and server.authenticated
    assert sum(isinstance(e, Authenticated) for e in events) == 2
    assert client.seal.rx >= 1 and server.seal.rx >= 0


def test_a_welcome_without_the_hub_proof_closes_the_client():
    client = ClientSession("station", "CP-1", KEY)
    client.start()
    client.take_outgoing()
    client.receive([K.CHALLENGE, 0, b"n" * 16])
    bad = auth_proof(b"not the key", client.client_nonce, b"n" * 16, "station", "CP-1")[1]
    (ev,) = client.receive([K.WELCOME, 0, 1800000000, 30, bad])
    assert isinstance(ev, Closed) and ev.code == E_AUTH_FAILED and not client.authenticated


def test_an_unknown_id_takes_the_same_path_as_a_known_one_with_a_wrong_key(monkeypatch):
    calls = []
    real_proof, real_equal = serversession.auth_proof, serversession.equal_digests
    monkeypatch.setattr(serversession, "auth_proof", lambda *a: calls.append("proof") or real_proof(*a))
    monkeypatch.setattr(serversession, "equal_digests", lambda *a: calls.append("compare") or real_equal(*a))
    results = []
    for peer_id in ("CP-1", "CP-404"):
        calls.clear()
        server, client, events = _handshake(KEY, client_key=b"wrong", peer_id=peer_id)
        closed = [e for e in events if isinstance(e, Closed)]
        results.append((list(calls), [(e.code, e.text) for e in closed], client.authenticated))
    assert results[0] == results[1] == (["proof", "compare"], [(E_AUTH_FAILED, "unknown id or wrong key")] * 2, False)


@pytest.mark.parametrize("peer_id", ["CP-1\nINFO forged line", "", "x" * 65, "CP 1", "CP-\u00e9", "CP-1\x1b[2J"])
def test_a_hello_id_outside_the_allowed_characters_is_refused_before_it_is_looked_up(peer_id):
    looked_up = []
    server = ServerSession(lambda r, i: looked_up.append(i))
    (ev,) = server.receive([K.HELLO, 0, K.PROTOCOL_VERSION, "station", peer_id, b"n" * 16])
    assert isinstance(ev, Closed) and ev.code == E_BAD_FIELD and looked_up == [] and server.peer_id is None
    assert peer_id not in repr(server.take_outgoing()) or peer_id == ""


# --- against the real hub ---------------------------------------------------------------------------


def _read_until_eof(sock, timeout=10):
    """Bytes until the hub closes the socket (AssertionError if it does not)."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("the hub did not close the link within %d s" % timeout) from None
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += data


@pytest.mark.parametrize("attack", ["injected", "replayed", "reordered", "truncated", "unsealed"])
def test_a_tampered_frame_on_an_open_link_is_refused_and_the_real_hub_drops_the_link(tmp_path, attack):
    with HubProcess(tmp_path) as hub:
        token = hub.add_vehicle("V-1")
        with HubClient(hub.url, "vehicle", "V-1", token) as v:
            v.request(K.LIST_RESERVATIONS)  # the link works
            seal = v.framer.seal
            ping = packb([K.PING, 77, 0])
            if attack == "injected":
                frame = encode_stream(b"\xc1" + (seal.tx + 1).to_bytes(4, "big") + ping + b"\x00" * 16)
            elif attack == "replayed":
                seq0 = seal.tx
                first = v.framer.encode(ping)
                seal.tx = seq0  # the same frame again, as an attacker who recorded it would send it
                frame = first + first
            elif attack == "reordered":
                one, two = v.framer.encode(ping), v.framer.encode(packb([K.PING, 78, 0]))
                frame = two + one
            elif attack == "truncated":
                sealed = seal.seal(ping)
                frame = encode_stream(sealed[:-4])
            else:
                frame = encode_stream(ping)
            v.sock.sendall(frame)
            _read_until_eof(v.sock)
        assert "framing error, closing" in hub.log()


def test_a_hello_id_with_a_newline_is_refused_by_the_real_hub_and_nothing_forged_reaches_its_log(tmp_path):
    with HubProcess(tmp_path) as hub:
        hub.add_vehicle("V-1")
        with pytest.raises(HubError) as exc:
            HubClient(hub.url, "vehicle", "V-1\nWARNING hub: forged", "k").connect()
        assert exc.value.code == E_BAD_FIELD and "A-Z a-z 0-9" in str(exc.value)
        with pytest.raises(HubError):
            HubClient(hub.url, "vehicle", "V-404", "k").connect()  # a later line: the log is flushed up to here
        wait_for(lambda: "link" in hub.log() and "refused" in hub.log(), 5, "the refusals in the log")
        assert "forged" not in hub.log()


# --- a fake hub that does not know the key ----------------------------------------------------------


class FakeHub:
    """Listens on loopback; does the handshake without knowing the station's key (WELCOME plain, or
    sealed with a guessed key), then sends REMOTE_START and CONFIGURE. Records what comes back."""

    def __init__(self, mode):
        self.mode = mode
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.after_auth = []  # payloads the station sent after its AUTH
        self.auths = 0
        self.eofs = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.srv.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _addr = self.srv.accept()
            except socket.timeout:
                continue
            with conn:
                self._serve(conn)

    def _serve(self, conn):
        framer, seal = StreamFramer(), Seal()
        framer.seal = seal
        conn.settimeout(0.5)
        hello = None
        nonce = b"h" * 16
        deadline = time.monotonic() + 10
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                self.eofs += 1
                return
            for p in framer.feed(data):
                if self.auths:
                    self.after_auth.append(p)
                    continue
                msg = unpackb(p)
                if msg[0] == K.HELLO:
                    hello = msg
                    conn.sendall(framer.encode(packb([K.CHALLENGE, 0, nonce])))
                elif msg[0] == K.AUTH:
                    self.auths += 1
                    macs = auth_proof(b"guessed", hello[5], nonce, hello[3], hello[4])
                    if self.mode == "sealed":
                        seal.start(macs[3], macs[2])
                        seal.rx = 10**6  # take whatever the station sends, sealed or not
                    out = [
                        [K.WELCOME, 0, int(time.time()), 30, macs[1]],
                        [K.REMOTE_START, 1, 1, "V-1", None, None],
                        [K.CONFIGURE, 2, "heartbeat_s", 5],
                    ]
                    try:
                        conn.sendall(b"".join(framer.encode(packb(m)) for m in out))
                    except OSError:
                        return

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.srv.close()


@pytest.mark.parametrize("mode", ["plain", "sealed"])
def test_a_fake_hub_without_the_key_never_gets_the_cpython_runner_past_the_handshake(tmp_path, mode):
    fake = FakeHub(mode)
    stop = threading.Event()
    cfg = {"id": "CP-F1", "key": KEY.decode(), "hub": {"host": "127.0.0.1", "port": fake.port}}
    t = threading.Thread(
        target=run_chargepoint,
        args=(cfg,),
        kwargs={"stop_event": stop, "journal": str(tmp_path / "cp.journal")},
        daemon=True,
    )
    t.start()
    try:
        wait_for(lambda: fake.auths >= 1 and fake.eofs >= 1, 15, "the station hanging up on the fake hub")
    finally:
        stop.set()
        t.join(timeout=10)
        fake.close()
    assert fake.after_auth == []  # no ACK to REMOTE_START or CONFIGURE, no BOOT, no journal record


@pytest.mark.parametrize("mode", ["plain", "sealed"])
def test_a_fake_hub_without_the_key_never_gets_the_micropython_firmware_past_the_handshake(
    tmp_path, bundle_dir, rom_board, mode
):
    fake = FakeHub(mode)
    fw = Firmware(
        bundle_dir, tmp_path, fw_config("CP-F2", KEY.decode(), hub={"host": "127.0.0.1", "port": fake.port}), rom_board
    )
    try:
        wait_for(lambda: fake.auths >= 1 and fake.eofs >= 1, 30, "the firmware hanging up on the fake hub")
    finally:
        out = fw.stop()
        fake.close()
    assert fake.after_auth == [], out
    assert "hub welcomed us" not in out and "Traceback" not in out, out

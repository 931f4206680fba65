"""Two sessions wired back to back, with a fake clock: handshake, refusals, heartbeat, replies."""

import hmac
import hashlib

import pytest
from hypothesis import given, strategies as st

from transport import kinds as K
from transport.errors import E_AUTH_FAILED, E_BAD_FIELD, E_MALFORMED, E_NOT_AUTHENTICATED, E_UNKNOWN_KIND, E_FORBIDDEN
from transport.errors import ProtocolError
from transport.session import (
    Authenticated,
    ClientSession,
    Closed,
    Message,
    PeerSilent,
    Reply,
    ServerSession,
    Timeout,
    hmac_sha256,
)

KEY = "00112233445566778899aabbccddeeff"


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return int(self.t * 1000)  # a board's monotonic clock: integer ms (t is in seconds)


def pair(client_key=KEY, known=None, role="station", device_id="CP-1"):
    clock = FakeClock()
    wall = lambda: 1_800_000_000 + int(clock.t)  # noqa: E731
    known = {("station", "CP-1"): KEY} if known is None else known
    server = ServerSession(lambda r, i: known.get((r, i)), clock=clock, wall=wall, heartbeat_s=30)
    client = ClientSession(role, device_id, client_key, clock=clock, wall=wall, heartbeat_s=30)
    return clock, client, server


def pump(a, b, rounds=6):
    """Deliver queued messages both ways until quiet; returns (events at a, events at b)."""
    ea, eb = [], []
    for _ in range(rounds):
        moved = False
        for msg in a.take_outgoing():
            eb.extend(b.receive(msg))
            moved = True
        for msg in b.take_outgoing():
            ea.extend(a.receive(msg))
            moved = True
        if not moved:
            break
    return ea, eb


def test_hmac_matches_the_standard_library():
    for key in (b"", b"k", b"x" * 64, b"y" * 100):
        assert hmac_sha256(key, b"data") == hmac.new(key, b"data", hashlib.sha256).digest()


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_for_any_key_and_data(key, data):
    assert hmac_sha256(key, data) == hmac.new(key, data, hashlib.sha256).digest()


def test_handshake_with_the_right_key_opens_both_ends():
    _, client, server = pair()
    client.start()
    ec, es = pump(client, server)
    assert client.authenticated and server.authenticated
    assert isinstance(ec[0], Authenticated) and isinstance(es[0], Authenticated)
    assert server.peer_id == "CP-1" and server.role == "station"


def test_wrong_key_is_refused_with_auth_failed():
    _, client, server = pair(client_key="ff" * 16)
    client.start()
    ec, es = pump(client, server)
    assert not server.authenticated and not client.authenticated
    assert isinstance(es[0], Closed) and es[0].code == E_AUTH_FAILED
    assert isinstance(ec[0], Closed) and ec[0].code == E_AUTH_FAILED


def test_unknown_device_is_refused_like_a_wrong_key():
    _, client, server = pair(device_id="CP-404")
    client.start()
    _, es = pump(client, server)
    assert es[0].code == E_AUTH_FAILED


def test_replayed_proof_on_a_new_link_is_refused():
    _, client, server = pair()
    client.start()
    hello = client.take_outgoing()[0]
    server.receive(hello)
    challenge = server.take_outgoing()[0]
    client.receive(challenge)
    proof_msg = client.take_outgoing()[0]
    server.receive(proof_msg)
    assert server.authenticated
    # An eavesdropper replays hello and proof on a fresh link: the hub's nonce differs.
    _, _, server2 = pair()
    server2.receive(hello)
    server2.take_outgoing()
    events = server2.receive(proof_msg)
    assert isinstance(events[0], Closed) and events[0].code == E_AUTH_FAILED


def test_second_auth_on_an_open_link_is_refused_and_link_stays_open():
    _, client, server = pair()
    client.start()
    pump(client, server)
    server.receive([K.AUTH, 5, b"x" * 32])
    err = server.take_outgoing()[0]
    assert err[0] == K.ERROR and err[2] == E_AUTH_FAILED and err[1] == 5
    assert server.authenticated


def test_message_before_hello_is_refused():
    _, _, server = pair()
    events = server.receive([K.BOOT, 1, 1.0, 2.0, 1, 22, "fw"])
    assert isinstance(events[0], Closed) and events[0].code == E_NOT_AUTHENTICATED


@pytest.mark.parametrize(
    "bad, code",
    [
        ("not a list", E_MALFORMED),
        ([K.STATUS], E_MALFORMED),
        ([999, 3], E_UNKNOWN_KIND),
        ([K.STATUS, 3, "one", "Available", None], E_BAD_FIELD),
        ([K.STATUS, 3, 1], E_BAD_FIELD),
        ([K.STATUS, 3, True, "Available", None], E_BAD_FIELD),
        ([K.STATUS, -1, 1, "Available", None], E_MALFORMED),
    ],
)
def test_bad_messages_on_an_open_link_get_the_defined_error(bad, code):
    _, client, server = pair()
    client.start()
    pump(client, server)
    assert server.receive(bad) == []
    err = server.take_outgoing()[0]
    assert err[0] == K.ERROR and err[2] == code and isinstance(err[3], str) and err[3]
    assert server.authenticated


def test_a_station_may_not_send_vehicle_kinds():
    _, client, server = pair()
    client.start()
    pump(client, server)
    server.receive([K.RESERVE, 9, "CP-1", 1, 2])
    err = server.take_outgoing()[0]
    assert err[:3] == [K.ERROR, 9, E_FORBIDDEN]


def test_request_gets_its_reply_correlated_by_seq():
    _, client, server = pair()
    client.start()
    pump(client, server)
    seq = client.request(K.BOOT, -12.2, -38.9, 2, 22.0, "fw-1")
    _, es = pump(client, server)
    assert isinstance(es[0], Message) and es[0].kind == K.BOOT and es[0].seq == seq
    server.send(K.ACK, seq)
    ec, _ = pump(client, server)
    assert isinstance(ec[0], Reply) and ec[0].ok and ec[0].request_kind == K.BOOT


def test_unanswered_request_times_out_on_the_injected_clock():
    clock, client, server = pair()
    client.start()
    pump(client, server)
    seq = client.request(K.STATUS, 1, "Available", None)
    client.take_outgoing()
    clock.t += 16
    events = client.tick()
    assert any(isinstance(e, Timeout) and e.seq == seq for e in events)


def test_client_pings_each_heartbeat_and_hub_answers_with_its_time():
    clock, client, server = pair()
    client.start()
    pump(client, server)
    clock.t += 30
    client.tick()
    out = client.take_outgoing()
    assert out[0][0] == K.PING
    server.receive(out[0])
    pong = server.take_outgoing()[0]
    assert pong[0] == K.PONG and pong[1] == out[0][1] and pong[2] == int(1_800_000_000 + clock.t)


def test_silence_for_three_heartbeats_is_reported_once():
    clock, client, server = pair()
    client.start()
    pump(client, server)
    clock.t += 91
    assert any(isinstance(e, PeerSilent) for e in server.tick())
    assert not any(isinstance(e, PeerSilent) for e in server.tick())


def test_a_peer_request_with_the_same_seq_as_ours_does_not_steal_our_reply():
    _, client, server = pair()
    client.start()
    pump(client, server)
    seq = client.request(K.BOOT, -12.2, -38.9, 1, 22.0, "fw")
    client.take_outgoing()
    # The hub's own request happens to use the same number.
    events = client.receive([K.RESERVE_NOW, seq, 7, 0, "V-1", 100, 200])
    assert isinstance(events[0], Message) and events[0].kind == K.RESERVE_NOW
    events = client.receive([K.ACK, seq])
    assert isinstance(events[0], Reply) and events[0].request_kind == K.BOOT


def test_extra_trailing_fields_are_ignored_so_handlers_see_the_known_shape():
    from transport.messages import parse

    kind, seq, fields = parse([K.RESERVE, 4, "CP-1", 10, 20, "r-1", "future", 1])
    assert (kind, seq, list(fields)) == (K.RESERVE, 4, ["CP-1", 10, 20, "r-1"])


def test_an_older_peer_may_leave_out_a_trailing_field_that_may_be_nil_but_no_other():
    from transport.messages import parse

    kind, seq, fields = parse([K.RESERVE, 4, "CP-1", 10, 20])  # a vehicle from before request_id
    assert (kind, seq, list(fields)) == (K.RESERVE, 4, ["CP-1", 10, 20, None])
    with pytest.raises(ProtocolError) as exc:
        parse([K.RESERVE, 4, "CP-1", 10])  # `end` may not be nil: still missing
    assert exc.value.code == E_BAD_FIELD and "missing field 'end'" in exc.value.text

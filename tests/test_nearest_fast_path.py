"""The hub's NEAREST fast path (hub/io/link.py) answers exactly as the general path would.

Every message is fed twice to a Link + Router with the real locator and codec: once as
the hub runs (a well-formed NEAREST on an open vehicle session skips session.receive()
and the event objects), once with the fast path switched off. The bytes written, the
session's state, the link's and the router's counters must be the same.
"""

import pytest
from hypothesis import given, settings, strategies as st

import hub.io.link
from hub.actors.registry import StationView
from tools.bench.inproc import inproc_link
from transport import kinds as K
from transport.codec import packb
from transport.framing import encode_stream
from transport.session import S_OPEN

STATIONS = [("CP-%d" % i, -12.0 - 0.01 * i, -38.0 + 0.013 * (i % 7)) for i in range(40)]


def make_link(role="vehicle", state=S_OPEN):
    view = {}
    for n, (sid, lat, lon) in enumerate(STATIONS):
        status = ("Available", "Charging", "Offline")[n % 3]
        view[sid] = StationView(sid, lat, lon, status, None, None, 2, (22.0, 50.0)[n % 2], False, None, {1: status})
    return inproc_link(view, role, state, "EV-1", clock=lambda: 100.0, wall=lambda: 1_800_000_000.0, label="test")


def run(messages, fast, **kw):
    link, router, out = make_link(**kw)
    saved = hub.io.link._NEAREST
    if not fast:
        hub.io.link._NEAREST = object()  # never equal to a kind: every message takes the general path
    try:
        for m in messages:
            link.data_received(encode_stream(m if type(m) is bytes else packb(m)))
    finally:
        hub.io.link._NEAREST = saved
    state = {k: v for k, v in vars(link.session).items() if k not in ("clock", "wall", "lookup_key", "_urandom")}
    state["seal"] = vars(state["seal"])  # compared by value (sequence numbers), not identity
    return b"".join(out), state, (link.frames_in, link.bad_messages, link.closed), dict(router.counters)


NEAREST = K.NEAREST
CASES = [
    [NEAREST, 1, -12.1, -38.02, 5, None],
    [NEAREST, 2, -12, -38, 3, {}],  # ints are numbers
    [NEAREST, 3, -12.1, -38.02, 5, {"available": True}],
    [NEAREST, 4, -12.1, -38.02, 5, {"min_kw": 50}],
    [NEAREST, 5, -12.1, -38.02, 5, {"eta_min": 30, "min_kw": 22}],
    [NEAREST, 6, -12.1, -38.02, 5, None, "a newer peer's extra field"],
    [NEAREST, 0xFFFFFFFF, -12.1, -38.02, 20, None],
    [NEAREST, 0, -12.1, -38.02, 1, None],
    # bad input: each must get the general path's reply
    [NEAREST, 7, True, -38.0, 5, None],
    [NEAREST, 8, -12.1, -38.0, True, None],
    [NEAREST, 9, -12.1, -38.0, 5.0, None],
    [NEAREST, 10, -12.1, -38.0, 0, None],
    [NEAREST, 11, -12.1, -38.0, 51, None],
    [NEAREST, 12, 91.0, -38.0, 5, None],
    [NEAREST, 13, float("nan"), -38.0, 5, None],
    [NEAREST, 14, -12.1, float("inf"), 5, None],
    [NEAREST, 15, -12.1, -38.0, 5, []],
    [NEAREST, 16, -12.1, -38.0],  # k missing (filters, which may be nil, may be left out: read as nil)
    [NEAREST, -1, -12.1, -38.0, 5, None],
    [NEAREST, 2**32, -12.1, -38.0, 5, None],
    [NEAREST, True, -12.1, -38.0, 5, None],
    [NEAREST, "17", -12.1, -38.0, 5, None],
    [float(NEAREST), 18, -12.1, -38.0, 5, None],
    (NEAREST, 19, -12.1, -38.0, 5, None),
    [NEAREST, 20, -12.1, -38.0, 5, {"eta_min": "soon"}],
    [K.HELLO, 21, 1, "vehicle", "EV-1", b"n" * 16],
    [K.PING, 22, 5],
    b"\xc1",
]


@pytest.mark.parametrize("role", ["vehicle", "station", "operator"])
def test_every_case_gets_the_same_bytes_and_state_with_and_without_the_fast_path(role):
    fast = run(CASES, True, role=role)
    slow = run(CASES, False, role=role)
    assert fast == slow
    if role == "vehicle":
        assert fast[3]["messages_in"] == 15  # 9 well-formed (a tuple packs as an array) + 6 the router refuses


def test_a_closed_or_unopened_session_never_takes_the_fast_path():
    for state in ("closed", "challenged"):
        assert run(CASES[:3], True, state=state) == run(CASES[:3], False, state=state)


def test_the_fast_path_notes_the_peer_is_alive_as_receive_does():
    link, _router, out = make_link()
    link.session._last_rx = -1.0
    link.session._silent_reported = True
    link.data_received(encode_stream(packb(CASES[0])))
    assert link.session._last_rx == 100_000 and link.session._silent_reported is False  # session clocks count ms
    assert out and link.session.tick() == []


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**33), 2**33),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.dictionaries(
        st.sampled_from(["available", "min_kw", "eta_min", "x"]),
        st.one_of(st.booleans(), st.integers(0, 100), st.none()),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    msg=st.lists(values, min_size=0, max_size=8),
    kind_nearest=st.booleans(),
    lat=st.floats(-12.5, -11.9),
    lon=st.floats(-38.1, -37.9),
    k=st.integers(-2, 20),
)
def test_random_messages_get_the_same_answers_on_both_paths(msg, kind_nearest, lat, lon, k):
    if kind_nearest:
        msg = (
            [NEAREST] + msg[:1] + [lat, lon, k if k <= 20 else 51] + msg[1:]
        )  # replies past ~40 stations exceed a frame
    assert run([msg], True) == run([msg], False)


def test_the_router_packs_a_seq_as_the_codec_does():
    from hub.router import _pack_uint

    for n in (0, 1, 127, 128, 255, 256, 65535, 65536, 2**31, 2**32 - 1):
        assert _pack_uint(n) == packb(n)


def test_a_station_packed_in_halves_around_its_distance_is_the_codec_packing_of_its_map():
    from transport.codec import unpackb

    _link, router, _out = make_link()
    sid = STATIONS[4][0]
    v = router.registry_view[sid]
    _v, head, tail = router._pack_station(sid, v)
    entry = head + packb(1.25) + tail
    expect = {
        "id": sid,
        "lat": v.lat,
        "lon": v.lon,
        "distance_km": 1.25,
        "status": v.status,
        "free_in_min": v.free_in_min,
        "connectors": v.connectors,
        "max_kw": v.max_kw,
    }
    assert unpackb(entry) == expect
    assert entry == packb(expect)  # the map header counts every pair, in the order the general path packs them

"""Issue 14 item 4 against the real hub process: the hub and the station agree on every reservation.

RESERVE_NOW carries the connector the book chose; a station's refusal is logged and acted on (moved
to another connector, else cancelled and the vehicle told); a station is sent only what its table
holds (16) and the rest as room frees; a vehicle's retried RESERVE never books twice; over a serial
line that loses frames, hub->station requests are resent and done once."""

import sqlite3
import threading
import time

from firmware.runner import Fleet
from fw_ptypair import PtyPair
from hubproc import HubProcess
from test_authz import QUICK_EV, answer, fake_station
from test_bundle import wait_for
from tools.client.hubclient import HubClient, HubError
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_INVALID_STATE


def rows(hub, sql, *args):
    con = sqlite3.connect(hub.db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def refuse(station, code, text, timeout=5):
    """Wait for a RESERVE_NOW at a fake station and answer it with ERROR; returns it."""
    msg = station.wait_event((K.RESERVE_NOW,), timeout=timeout)
    assert msg is not None, "the station got no reserve_now"
    station.session.send_error(code, text, msg.seq)
    station._flush()
    return msg


def hub_with_cap(tmp_path, cap, extra=()):
    cfg = tmp_path / "hub.toml"
    cfg.write_text("[hub]\nmax_open_reservations_per_vehicle = %d\n" % cap)
    return HubProcess(tmp_path, extra_args=["--config", str(cfg)] + list(extra))


class Stations:
    """firmware.runner Fleet (the CPython runner of the firmware core) in a thread; its devices' tables
    are read from the test (a read of a list the loop thread replaces whole is safe enough to poll)."""

    def __init__(self, configs):
        self.fleet = Fleet(configs)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.fleet.run, args=(self.stop,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)

    def held(self, station_id):
        """The reservation ids the station's table holds."""
        return sorted(r.id for r in list(self.fleet.by_id[station_id].cp.reservations.items))


def tcp_config(hub, station_id, key, connectors=1):
    host, port = hub.url[len("tcp://") :].split(":")
    return {
        "id": station_id,
        "key": key,
        "hub": {"host": host, "port": int(port)},
        "connectors": connectors,
        "meter_interval_s": 60,
        "finishing_s": 1,
    }


# --- the connector, and refusals --------------------------------------------------------------------------


def test_reserve_now_carries_the_connector_the_book_chose(tmp_path):
    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-2", connectors=2)
        tokens = {v: hub.add_vehicle(v) for v in ("V-A", "V-B")}
        station = fake_station(hub, "CP-2", key, statuses=("Available", "Available"))
        start = int(time.time()) + 3600
        sent = {}
        for v, token in tokens.items():
            with HubClient(hub.url, "vehicle", v, token) as c:
                _k, (ok, rid, _alts, _why) = c.request(K.RESERVE, "CP-2", start, start + 1800, None)
                assert ok
                booked = {r["reservation_id"]: r["connector"] for r in c.request(K.LIST_RESERVATIONS)[1][0]}
            msg = answer(station, (K.RESERVE_NOW,))
            sent[msg.fields[0]] = msg.fields[1]
            assert msg.fields[0] == rid and msg.fields[1] == booked[rid]
        assert sorted(sent.values()) == [1, 2]  # the book's choice, not "any" (0)
        station.close()


def test_a_station_refusing_the_connector_gets_the_reservation_on_its_other_connector(tmp_path):
    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-2", connectors=2)
        token = hub.add_vehicle("V-A")
        station = fake_station(hub, "CP-2", key, statuses=("Faulted", "Available"))
        start = int(time.time()) + 60
        with HubClient(hub.url, "vehicle", "V-A", token) as v:
            _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-2", start, start + 1800, None)
            assert ok
            first = refuse(station, E_INVALID_STATE, "connector 1 is Faulted")
            assert first.fields[:2] == [rid, 1]
            again = answer(station, (K.RESERVE_NOW,))
            assert again.fields[:2] == [rid, 2]
            wait_for(
                lambda: rows(hub, "SELECT connector, state FROM reservations WHERE id = ?", rid) == [(2, "confirmed")],
                5,
                "the move in the store",
            )
            mine = v.request(K.LIST_RESERVATIONS)[1][0]
            assert [(r["reservation_id"], r["connector"]) for r in mine] == [(rid, 2)]
        line = [ln for ln in hub.log().splitlines() if "RESERVE_NOW %d (connector 1) refused" % rid in ln]
        assert line and "station CP-2" in line[0] and "connector 1 is Faulted" in line[0] and "WARNING" in line[0]
        station.close()


def test_a_refusal_with_no_other_connector_cancels_the_reservation_and_tells_the_vehicle(tmp_path):
    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-1", connectors=1)
        token = hub.add_vehicle("V-A")
        station = fake_station(hub, "CP-1", key)
        start = int(time.time()) + 60
        with HubClient(hub.url, "vehicle", "V-A", token) as v:
            _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-1", start, start + 1800, None)
            assert ok
            refuse(station, E_BAD_FIELD, "reservation window already over")
            told = v.wait_event((K.RESERVATIONS,), timeout=10)
            assert told is not None and told.seq == 0, "the vehicle was not told"
            assert [(r["reservation_id"], r["state"]) for r in told.fields[0]] == [(rid, "cancelled")]
            assert v.request(K.LIST_RESERVATIONS)[1][0] == []
        assert rows(hub, "SELECT state FROM reservations WHERE id = ?", rid) == [("cancelled",)]
        line = [ln for ln in hub.log().splitlines() if "RESERVE_NOW %d" % rid in ln]
        assert line and "station CP-1" in line[0] and "window already over" in line[0] and "WARNING" in line[0]
        station.close()


# --- the station's table holds 16 ------------------------------------------------------------------------


def test_a_17th_and_20th_reservation_are_confirmed_and_reach_the_station_as_room_frees(tmp_path):
    with hub_with_cap(tmp_path, 25) as hub:
        key = hub.add_station("CP-1", connectors=1)
        token = hub.add_vehicle("V-A")
        with Stations([tcp_config(hub, "CP-1", key)]) as fw, HubClient(hub.url, "vehicle", "V-A", token) as v:
            wait_for(lambda: "station CP-1: boot" in hub.log(), 10, "the station's BOOT")
            first = int(time.time()) + 2 * 3600
            ids = []
            for i in range(20):  # back to back, 20 half hours: days inside the hub's 30, beyond the table's 16
                _k, (ok, rid, _a, why) = v.request(K.RESERVE, "CP-1", first + i * 1800, first + (i + 1) * 1800, None)
                assert ok, "reservation %d refused: %s" % (i + 1, why)
                ids.append(rid)
            wait_for(lambda: fw.held("CP-1") == sorted(ids[:16]), 10, "the first 16 at the station")
            v.request(K.CANCEL, ids[0])
            wait_for(lambda: fw.held("CP-1") == sorted(ids[1:17]), 10, "the 17th at the station")
            for rid in ids[1:4]:
                v.request(K.CANCEL, rid)
            wait_for(lambda: fw.held("CP-1") == sorted(ids[4:20]), 10, "the 20th at the station")
        assert "refused" not in hub.log() and "table full" not in hub.log()


def test_an_earlier_reservation_displaces_the_last_one_on_a_full_station_table(tmp_path):
    with hub_with_cap(tmp_path, 25) as hub:
        key = hub.add_station("CP-1", connectors=1)
        token = hub.add_vehicle("V-A")
        with Stations([tcp_config(hub, "CP-1", key)]) as fw, HubClient(hub.url, "vehicle", "V-A", token) as v:
            wait_for(lambda: "station CP-1: boot" in hub.log(), 10, "the station's BOOT")
            first = int(time.time()) + 4 * 3600
            ids = [
                v.request(K.RESERVE, "CP-1", first + i * 1800, first + (i + 1) * 1800, None)[1][1] for i in range(16)
            ]
            wait_for(lambda: fw.held("CP-1") == sorted(ids), 10, "16 at the station")
            early = v.request(K.RESERVE, "CP-1", first - 3600, first - 1800, None)[1][1]
            wait_for(lambda: fw.held("CP-1") == sorted([early] + ids[:15]), 10, "the earlier one in, the last one out")
        assert "refused" not in hub.log()


# --- retries that do not double-book ---------------------------------------------------------------------


def test_a_reserve_retried_after_a_lost_answer_holds_one_reservation(tmp_path):
    with HubProcess(tmp_path) as hub:
        hub.add_station("CP-1", connectors=1)
        token = hub.add_vehicle("V-A")
        start = int(time.time()) + 3600
        lost = HubClient(hub.url, "vehicle", "V-A", token).connect()
        lost.session.request(K.RESERVE, "CP-1", start, start + 1800, "k-1")  # sent; its answer is never read
        lost._flush()
        wait_for(lambda: rows(hub, "SELECT COUNT(*) FROM reservations") == [(1,)], 5, "the first booking")
        lost.close()
        with HubClient(hub.url, "vehicle", "V-A", token) as v:
            _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-1", start, start + 1800, "k-1")
            assert ok
            other = v.request(K.RESERVE, "CP-1", start + 1800, start + 3600, "k-2")[1]
            assert other[0] and other[1] != rid  # a new key is a new reservation
        assert rows(hub, "SELECT id, request_id FROM reservations WHERE vehicle_id = 'V-A' ORDER BY id") == [
            (rid, "k-1"),
            (other[1], "k-2"),
        ]


def test_hubclient_reserve_asks_again_with_the_same_request_id_after_a_timeout_and_books_once(tmp_path, monkeypatch):
    with HubProcess(tmp_path) as hub:
        hub.add_station("CP-1", connectors=1)
        token = hub.add_vehicle("V-A")
        start = int(time.time()) + 3600
        real = HubClient.wait_reply
        lost = []

        def first_answer_lost(self, seq):
            if not lost:  # the RESERVE reached the hub; its answer "does not come"
                wait_for(lambda: rows(hub, "SELECT COUNT(*) FROM reservations") == [(1,)], 5, "the first booking")
                lost.append(seq)
                raise HubError("the hub at %s did not answer within 10 s" % self.url)
            return real(self, seq)

        monkeypatch.setattr(HubClient, "wait_reply", first_answer_lost)
        with HubClient(hub.url, "vehicle", "V-A", token) as v:
            _k, (ok, rid, _a, _r) = v.reserve("CP-1", start, start + 1800)
        assert ok and lost
        assert [(r[0], len(r[1])) for r in rows(hub, "SELECT id, request_id FROM reservations")] == [(rid, 16)]
        assert "repeated, answered with reservation %d" % rid in hub.log()


def test_a_reserve_from_an_older_vehicle_without_a_request_id_is_still_booked(tmp_path):
    with HubProcess(tmp_path) as hub:
        hub.add_station("CP-1", connectors=1)
        token = hub.add_vehicle("V-A")
        start = int(time.time()) + 3600
        with HubClient(hub.url, "vehicle", "V-A", token) as v:
            for i in range(2):  # without a key, two asks are two reservations, as before
                v.session.request(K.RESERVE, "CP-1", start + i * 1800, start + (i + 1) * 1800)  # three fields
                v._flush()
            wait_for(
                lambda: rows(hub, "SELECT COUNT(*) FROM reservations WHERE request_id IS NULL") == [(2,)],
                5,
                "both bookings",
            )


# --- a serial line that loses frames -----------------------------------------------------------------------


class LossyPtyPair(PtyPair):
    """Drops chosen chunks: `drop_hub` chunks from the hub side next, and once armed by a chunk from the
    hub, `drop_station` chunks from the station side (its answer to that request)."""

    def __init__(self):
        self.drop_hub = 0
        self.arm_station = 0
        self.drop_station = 0
        self.dropped = [0, 0]
        self.side = 0
        PtyPair.__init__(self)

    def carry(self, data):
        if self.side == 0:  # from the hub
            if self.drop_hub:
                self.drop_hub -= 1
                self.dropped[0] += 1
                return b""
            if self.arm_station:
                self.drop_station, self.arm_station = self.arm_station, 0
            return data
        if self.drop_station:
            self.drop_station -= 1
            self.dropped[1] += 1
            return b""
        return data


def test_hub_requests_lost_on_a_serial_line_are_resent_and_done_once(tmp_path):
    pair = LossyPtyPair()
    try:
        with HubProcess(tmp_path, extra_args=["--serial", pair.path1]) as hub:
            key = hub.add_station("CP-S")
            token = hub.add_vehicle("V-S")
            cfg = {"id": "CP-S", "key": key, "serial": pair.path2, "meter_interval_s": 60, "finishing_s": 1}
            with Stations([cfg]) as fw, HubClient(hub.url, "vehicle", "V-S", token, timeout=20) as v:
                wait_for(lambda: "station CP-S: connector 1" in hub.log(), 30, "the station's statuses over the line")
                now = int(time.time())
                pair.drop_hub = 1  # the RESERVE_NOW this booking causes is lost
                _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-S", now, now + 1800, None)
                assert ok
                wait_for(lambda: fw.held("CP-S") == [rid], 15, "the reservation at the station after a resend")
                assert pair.dropped[0] == 1
                pair.arm_station = 1  # the station's ACK to the REMOTE_START is lost: the hub sends it again
                v.request(K.START_CHARGE, "CP-S", rid, QUICK_EV)  # ACKed: the repeat is ACKed, not refused
                assert pair.dropped[1] == 1
                assert v.wait_event((K.SESSION_STARTED,), timeout=15) is not None
                wait_for(
                    lambda: rows(hub, "SELECT COUNT(*) FROM sessions WHERE ended IS NOT NULL") == [(1,)],
                    60,
                    "the session's end",
                )
        assert rows(hub, "SELECT COUNT(*) FROM sessions") == [(1,)]
        assert "remote_start unanswered, sent again" in hub.log()
    finally:
        pair.close()

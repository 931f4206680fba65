"""OCPP 1.6J chargers beside our own boards: the real hub, the real `evhub ocpp` central system,
and a real charge point from the `ocpp` library over a real WebSocket on loopback.

A vehicle on evhub's protocol finds the OCPP charger, starts it remotely (walk-in at a Preparing
connector), and gets SESSION_STARTED and COMPLETE with the energy from StopTransaction; the hub's
store holds the session once even when the charger replays its StartTransaction and
StopTransaction. Chargers with a wrong key or an unknown id are refused at the upgrade.
"""

import asyncio
import base64
import os
import re
import sqlite3
import sys
import threading
import time

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, RemoteStartStopStatus
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hubproc import REPO, HubProcess
from procs import LoggedProcess
from tools.client.hubclient import HubClient
from transport import kinds as K
from waiting import wait_for

LISTEN_RE = re.compile(r"OCPP 1.6J central system on (wss?)://127.0.0.1:(\d+)")
TLS_DIR = os.path.join(os.path.dirname(__file__), "data", "tls")
EV = {"max_kw": 11.0}


def start_central(tmp_path, hub, *listen_args):
    central = LoggedProcess(
        [sys.executable, "-m", "tools.cli", "ocpp", "--db", hub.db, "--hub", hub.url] + list(listen_args),
        tmp_path / "ocpp.log",
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    try:
        m = wait_for(lambda: LISTEN_RE.search(central.output()), 20, "the central system")
    except AssertionError:
        central.stop()
        raise
    return central, "%s://127.0.0.1:%s" % m.groups()


class _InHub:
    """The central system running inside `evhub serve --ocpp`: its log is the hub's."""

    def __init__(self, hub):
        self.hub = hub

    def output(self):
        return self.hub.log()


@pytest.fixture
def hub_and_central(tmp_path):
    """A real `evhub serve --ocpp ws://127.0.0.1:0 --ocpp-allow-profile1` (Security Profile 1: plain ws://,
    Basic auth): the hub and its central system in one process."""
    with HubProcess(tmp_path, extra_args=["--ocpp", "ws://127.0.0.1:0", "--ocpp-allow-profile1"]) as hub:
        m = wait_for(lambda: LISTEN_RE.search(hub.log()), 20, "the OCPP listener")
        yield hub, _InHub(hub), "%s://127.0.0.1:%s" % m.groups()


class Charger(ChargePoint):
    """A charge point as a commercial one behaves: it accepts a remote start and then runs the
    transaction itself (never from inside the handler: the library would deadlock)."""

    started = None

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag, connector_id=None, **_):
        self.started = asyncio.get_running_loop().create_task(self.transaction(id_tag, connector_id or 1))
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    async def transaction(self, id_tag, connector):
        t0 = int(time.time())
        start = call.StartTransaction(connector_id=connector, id_tag=id_tag, meter_start=1000, timestamp=iso(t0))
        first = await self.call(start)
        again = await self.call(start)  # a replay after a lost answer: the same transaction id
        assert again.transaction_id == first.transaction_id
        await self.call(call.StatusNotification(connector_id=connector, error_code="NoError", status="Charging"))
        await self.call(
            call.MeterValues(
                connector_id=connector,
                transaction_id=first.transaction_id,
                meter_value=[
                    {
                        "timestamp": iso(t0 + 1),
                        "sampledValue": [
                            {"value": "1.75", "unit": "kWh"},
                            {"value": "7.2", "unit": "kW", "measurand": "Power.Active.Import"},
                        ],
                    }
                ],
            )
        )
        stop = call.StopTransaction(
            meter_stop=4500, timestamp=iso(t0 + 2), transaction_id=first.transaction_id, reason="EVDisconnected"
        )
        await self.call(stop)
        await self.call(stop)  # replayed from the offline queue: recorded once
        await self.call(call.StatusNotification(connector_id=connector, error_code="NoError", status="Finishing"))
        return first.transaction_id


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


async def run_charger(url, station_id, key, vehicle_done, ssl_context=None):
    async with connect(
        "%s/%s" % (url, station_id),
        subprotocols=["ocpp1.6"],
        ssl=ssl_context,
        additional_headers=basic(station_id, key),
    ) as ws:
        cp = Charger(station_id, ws)
        runner = asyncio.create_task(cp.start())
        await cp.call(
            call.BootNotification(charge_point_vendor="ACME", charge_point_model="Wallbox 22", firmware_version="4.2")
        )
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))  # car plugged
        while cp.started is None and not vehicle_done.is_set():
            await asyncio.sleep(0.05)
        assert cp.started is not None, "no RemoteStartTransaction reached the charger"
        txid = await asyncio.wait_for(cp.started, 30)
        while not vehicle_done.is_set():
            await asyncio.sleep(0.05)
        runner.cancel()
        return txid


def test_a_vehicle_starts_an_ocpp_charger_remotely_and_gets_complete_with_its_energy(hub_and_central):
    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    token = hub.add_vehicle("V-1")
    done = threading.Event()
    result = {}

    def vehicle():
        try:
            with HubClient(hub.url, "vehicle", "V-1", token, timeout=20) as v:
                wait_for(lambda: "station CP-OCPP: connector 1 Available -> Preparing" in hub.log(), 20, "Preparing")
                result["start"] = v.request(K.START_CHARGE, "CP-OCPP", None, EV)
                result["started"] = v.wait_event((K.SESSION_STARTED,), timeout=20)
                result["complete"] = v.wait_event((K.COMPLETE,), timeout=20)
                result["progress"] = [e.fields for e in v.events if e.kind == K.CHARGE_PROGRESS]
        finally:
            done.set()

    t = threading.Thread(target=vehicle)
    t.start()
    txid = asyncio.run(asyncio.wait_for(run_charger(url, "CP-OCPP", key, done), 60))
    t.join(timeout=30)
    sid = "CP-OCPP:%d" % txid
    assert result["started"] is not None and result["started"].fields[0] == sid, (central.output(), hub.log()[-3000:])
    complete = result["complete"]
    assert complete is not None, hub.log()[-3000:]
    assert complete.fields[0] == sid and complete.fields[2] == 3500 and complete.fields[4] == "EVDisconnected"
    # MeterValues ("1.75" kWh on a register that started at 1000 Wh, "7.2" kW) reached the vehicle as progress
    assert [sid, "CP-OCPP", 750, 7200] in [list(p) for p in result["progress"]], result["progress"]
    con = sqlite3.connect(hub.db)
    try:
        rows = con.execute("SELECT session_id, vehicle_id, energy_wh, reason FROM sessions").fetchall()
        tx = con.execute("SELECT COUNT(*), MIN(stopped IS NOT NULL) FROM ocpp_transactions").fetchone()
    finally:
        con.close()
    assert rows == [(sid, "V-1", 3500, "EVDisconnected")]
    assert tx == (1, 1)
    assert "station CP-OCPP: boot firmware=ACME Wallbox 22 4.2" in hub.log()
    assert "Traceback" not in central.output() and "Traceback" not in hub.log()


@pytest.mark.parametrize(
    "who, password, status",
    [("CP-OCPP", "wrong-key", 401), ("CP-NOBODY", "x", 404), ("CP-OCPP", None, 401), ("CP-BOARD", "KEY", 404)],
)
def test_a_charger_with_a_wrong_key_an_unknown_id_or_not_provisioned_for_ocpp_is_refused_at_the_upgrade(
    hub_and_central, who, password, status
):
    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    assert len(key) == 20 and key.isalnum()  # a Basic-auth password an OCPP charger can hold
    board_key = hub.add_station("CP-BOARD", connectors=1)  # one of our boards: evhub's protocol only
    password = board_key if password == "KEY" else password

    async def attempt():
        headers = basic(who, password) if password is not None else {}
        async with connect("%s/%s" % (url, who), subprotocols=["ocpp1.6"], additional_headers=headers):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(attempt())
    assert refused.value.response.status_code == status
    wait_for(lambda: "OCPP: refused %s" % who in central.output(), 10, "the refusal in the log")
    assert "station %s" % who not in hub.log()


def test_security_profile_2_serves_wss_and_a_charger_that_trusts_the_certificate_boots(tmp_path):
    import ssl

    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-TLS", connectors=1, protocol="ocpp1.6")
        central, url = start_central(
            tmp_path,
            hub,
            "--listen",
            "wss://127.0.0.1:0",
            "--tls-cert",
            os.path.join(TLS_DIR, "hub.crt"),
            "--tls-key",
            os.path.join(TLS_DIR, "hub.key"),
        )
        try:
            assert url.startswith("wss://") and "Security Profile 2" in central.output()
            trust = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "hub.crt"))

            async def boot():
                async with connect(
                    "%s/CP-TLS" % url, subprotocols=["ocpp1.6"], ssl=trust, additional_headers=basic("CP-TLS", key)
                ) as ws:
                    cp = ChargePoint("CP-TLS", ws)
                    runner = asyncio.create_task(cp.start())
                    result = await cp.call(
                        call.BootNotification(charge_point_vendor="ACME", charge_point_model="DC 50")
                    )
                    runner.cancel()
                    return result.status

            assert asyncio.run(asyncio.wait_for(boot(), 30)) == "Accepted"
            wait_for(lambda: "station CP-TLS: boot firmware=ACME DC 50" in hub.log(), 10, "BOOT at the hub")
        finally:
            central.stop()


def test_plain_ws_without_allowing_profile_1_is_refused_with_a_clear_message(tmp_path):
    from hubproc import evhub

    res = evhub("ocpp", "--db", str(tmp_path / "hub.db"), "--listen", "ws://127.0.0.1:0", check=False)
    assert res.returncode == 2 and "Security Profile 1" in res.stderr and "--allow-profile1" in res.stderr
    assert "Traceback" not in res.stderr


def test_evhub_serve_with_ocpp_runs_the_central_system_and_a_vehicle_finds_the_charger_available(tmp_path):
    with HubProcess(tmp_path, extra_args=["--ocpp", "ws://127.0.0.1:0", "--ocpp-allow-profile1"]) as hub:
        key = hub.add_station("CP-IN", lat=-12.25, lon=-38.95, connectors=2, protocol="ocpp1.6")
        token = hub.add_vehicle("V-9")
        url = "ws://127.0.0.1:%s" % wait_for(lambda: LISTEN_RE.search(hub.log()), 10, "the OCPP listener").group(2)

        async def charger():
            async with connect(
                "%s/CP-IN" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-IN", key)
            ) as ws:
                cp = ChargePoint("CP-IN", ws)
                runner = asyncio.create_task(cp.start())
                await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Twin"))
                for connector in (1, 2):
                    await cp.call(
                        call.StatusNotification(connector_id=connector, error_code="NoError", status="Available")
                    )
                with HubClient(hub.url, "vehicle", "V-9", token) as v:
                    _k, (found,) = await asyncio.to_thread(v.request, K.NEAREST, -12.25, -38.95, 3, None)
                    for connector in (1, 2):  # both paused by the charger (its power budget): busy
                        await cp.call(
                            call.StatusNotification(
                                connector_id=connector, error_code="NoError", status="SuspendedEVSE"
                            )
                        )
                    _k, (busy,) = await asyncio.to_thread(v.request, K.NEAREST, -12.25, -38.95, 3, None)
                runner.cancel()
                return found, busy

        found, busy = asyncio.run(asyncio.wait_for(charger(), 30))
    [station] = [s for s in found if s["id"] == "CP-IN"]
    assert station["status"] == "Available", station
    [station] = [s for s in busy if s["id"] == "CP-IN"]
    assert station["status"] == "Occupied", station
    assert "OCPP: station CP-IN connected" in hub.log()


def test_authorize_is_answered_from_the_id_tag_table_and_a_removed_vehicles_card_is_blocked(hub_and_central):
    from hubproc import evhub

    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    evhub("vehicles", "add", "--id", "V-CARD", "--id-tag", "card-1", "--db", hub.db, cwd=hub.tmp, env=hub.env)
    evhub("vehicles", "add", "--id", "V-GONE", "--id-tag", "CARD-2", "--db", hub.db, cwd=hub.tmp, env=hub.env)
    evhub("vehicles", "remove", "V-GONE", "--db", hub.db, cwd=hub.tmp, env=hub.env)

    async def authorize():
        async with connect(
            "%s/CP-OCPP" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OCPP", key)
        ) as ws:
            cp = ChargePoint("CP-OCPP", ws)
            runner = asyncio.create_task(cp.start())
            answers = [
                (await cp.call(call.Authorize(id_tag=tag))).id_tag_info["status"]
                for tag in ("CARD-1", "Card-2", "NEVER-SEEN")
            ]
            runner.cancel()
            return answers

    assert asyncio.run(asyncio.wait_for(authorize(), 30)) == ["Accepted", "Blocked", "Accepted"]


def test_a_reservation_reaches_the_charger_as_reserve_now_at_its_start_and_the_holder_charges_to_complete(
    hub_and_central,
):
    """ReserveNow when the window opens (not at booking), then the holder's remote start: RemoteStartTransaction,
    StartTransaction with the reservationId, meter values, StopTransaction, COMPLETE with the energy."""
    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    token = hub.add_vehicle("V-R")
    got = []

    class Reservable(Charger):
        reservation = None

        @on(Action.reserve_now)
        def on_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **_):
            got.append((connector_id, expiry_date, id_tag, reservation_id, time.time()))
            self.reservation = reservation_id
            return call_result.ReserveNow(status="Accepted")

        async def transaction(self, id_tag, connector):
            t0 = int(time.time())
            first = await self.call(
                call.StartTransaction(
                    connector_id=connector,
                    id_tag=id_tag,
                    meter_start=500,
                    timestamp=iso(t0),
                    reservation_id=self.reservation,
                )
            )
            await self.call(
                call.MeterValues(
                    connector_id=connector,
                    transaction_id=first.transaction_id,
                    meter_value=[{"timestamp": iso(t0 + 1), "sampledValue": [{"value": "900"}]}],
                )
            )
            await self.call(
                call.StopTransaction(
                    meter_stop=2700,
                    timestamp=iso(t0 + 600),
                    transaction_id=first.transaction_id,
                    reason="EVDisconnected",
                )
            )
            return first.transaction_id

    async def charger(start):
        async with connect(
            "%s/CP-OCPP" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OCPP", key)
        ) as ws:
            cp = Reservable("CP-OCPP", ws)
            runner = asyncio.create_task(cp.start())
            await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Wallbox 22"))
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            with HubClient(hub.url, "vehicle", "V-R", token) as v:
                _k, (ok, rid, _alts, reason) = await asyncio.to_thread(
                    v.request, K.RESERVE, "CP-OCPP", start, start + 1800
                )
                assert ok, reason
                assert not got, "ReserveNow went out before the window opened"
                deadline = time.monotonic() + 15
                while not got and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Reserved"))
                await asyncio.to_thread(v.request, K.START_CHARGE, "CP-OCPP", rid, EV)
                txid = await asyncio.wait_for(cp.started, 20)
                complete = await asyncio.to_thread(v.wait_event, (K.COMPLETE,), 20)
            runner.cancel()
            return rid, txid, complete

    start = int(time.time()) + 3
    rid, txid, complete = asyncio.run(asyncio.wait_for(charger(start), 60))
    assert len(got) == 1, got
    connector, expiry, tag, reservation_id, at = got[0]
    assert reservation_id == rid and connector == 1 and tag.startswith("EV") and len(tag) == 20
    assert expiry == iso(start + 600)  # released as a no-show after the grace, as the hub's book does
    assert start - 0.5 <= at <= start + 3, (at, start)
    assert complete is not None and complete.fields[0] == "CP-OCPP:%d" % txid and complete.fields[2] == 2200
    con = sqlite3.connect(hub.db)
    try:
        rows = con.execute("SELECT vehicle_id, reservation_id, energy_wh FROM sessions").fetchall()
        state = con.execute("SELECT state FROM reservations WHERE id = ?", (rid,)).fetchone()[0]
    finally:
        con.close()
    assert rows == [("V-R", rid, 2200)] and state == "fulfilled"


# --- bad and hostile input -----------------------------------------------------------------------


async def _raw(url, station_id, key):
    return await connect(
        "%s/%s" % (url, station_id), subprotocols=["ocpp1.6"], additional_headers=basic(station_id, key), max_size=None
    )


def test_schema_invalid_calls_get_1_6_call_errors_and_the_connection_stays(hub_and_central):
    import json

    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")

    async def probe():
        ws = await _raw(url, "CP-OCPP", key)
        answers = []
        for frame in (
            [
                2,
                "a1",
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Available", "bogus": 1},
            ],
            [2, "a2", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}],
            [2, "a3", "FlyToTheMoon", {}],
            [2, "a4", "Heartbeat", {}],
        ):
            await ws.send(json.dumps(frame))
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        await ws.close()
        return answers

    bad_field, bad_type, unknown, heartbeat = asyncio.run(probe())
    assert bad_field[:3] == [4, "a1", "FormationViolation"]
    assert bad_type[:3] == [4, "a2", "TypeConstraintViolation"]
    assert unknown[0] == 4 and unknown[2] in ("NotImplemented", "NotSupported")
    assert heartbeat[0] == 3 and "currentTime" in heartbeat[2]  # still served after the bad ones


async def _drain(ws):
    """Read (as a charger does) until the central system has closed the connection."""
    try:
        async for _ in ws:
            pass
    except Exception:
        pass


def test_a_flood_of_calls_or_an_oversized_message_closes_only_that_charger(hub_and_central):
    import json

    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    key2 = hub.add_station("CP-CALM", connectors=1, protocol="ocpp1.6")

    async def attack():
        flood = await _raw(url, "CP-OCPP", key)
        calm = await _raw(url, "CP-CALM", key2)
        for n in range(400):  # bounded: far past the burst allowance
            try:
                await flood.send(json.dumps([2, "f%d" % n, "Heartbeat", {}]))
            except Exception:
                break
        await asyncio.wait_for(_drain(flood), 10)
        big = await _raw(url, "CP-OCPP", key)
        await big.send(json.dumps([2, "b", "DataTransfer", {"vendorId": "x", "data": "y" * 200_000}]))
        await asyncio.wait_for(_drain(big), 10)
        await calm.send(json.dumps([2, "c", "Heartbeat", {}]))
        answer = json.loads(await asyncio.wait_for(calm.recv(), 10))
        await calm.close()
        return flood.close_code, big.close_code, answer

    flood_code, big_code, answer = asyncio.run(attack())
    assert flood_code == 1008 and big_code == 1009
    assert answer[0] == 3
    wait_for(lambda: "more than 20 OCPP messages/s" in central.output(), 10, "the flood in the log")


def test_a_second_connection_with_the_same_id_wins_and_the_older_is_closed_and_logged(hub_and_central):
    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")

    async def twice():
        first = await _raw(url, "CP-OCPP", key)
        wait_for(lambda: "OCPP: station CP-OCPP connected" in central.output(), 10, "the first connection")
        second = await _raw(url, "CP-OCPP", key)
        await asyncio.wait_for(first.wait_closed(), 10)
        cp = ChargePoint("CP-OCPP", second)
        runner = asyncio.create_task(cp.start())
        result = await cp.call(call.Heartbeat())
        runner.cancel()
        await second.close()
        return result

    assert asyncio.run(asyncio.wait_for(twice(), 30)).current_time
    assert "OCPP: station CP-OCPP connected again" in central.output()


def test_reserve_now_is_sent_again_when_the_charger_reconnects_inside_the_window(hub_and_central):
    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    token = hub.add_vehicle("V-R")
    got = []

    class Reservable(ChargePoint):
        @on(Action.reserve_now)
        def on_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **_):
            got.append(reservation_id)
            return call_result.ReserveNow(status="Accepted")

    async def session(reserve_at=None):
        async with connect(
            "%s/CP-OCPP" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OCPP", key)
        ) as ws:
            cp = Reservable("CP-OCPP", ws)
            runner = asyncio.create_task(cp.start())
            await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Wallbox 22"))
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            seen = len(got)
            if reserve_at is not None:
                with HubClient(hub.url, "vehicle", "V-R", token) as v:
                    _k, (ok, _rid, _alts, reason) = await asyncio.to_thread(
                        v.request, K.RESERVE, "CP-OCPP", reserve_at, reserve_at + 1800
                    )
                assert ok, reason
            deadline = time.monotonic() + 10
            while len(got) == seen and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            runner.cancel()

    asyncio.run(asyncio.wait_for(session(int(time.time())), 30))
    asyncio.run(asyncio.wait_for(session(), 30))  # the charger rebooted inside the window
    assert len(got) == 2 and got[0] == got[1], got


def test_a_charger_that_never_answers_a_remote_start_gets_the_vehicle_a_timeout_error_not_a_hang(hub_and_central):
    from tools.client.hubclient import HubError

    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    token = hub.add_vehicle("V-1")

    class Mute(ChargePoint):
        @on(Action.remote_start_transaction)
        async def on_remote_start(self, id_tag, **_):
            await asyncio.sleep(3600)  # never answers

    async def charger():
        async with connect(
            "%s/CP-OCPP" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OCPP", key)
        ) as ws:
            cp = Mute("CP-OCPP", ws)
            runner = asyncio.create_task(cp.start())
            await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Mute"))
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
            t0 = time.monotonic()
            with HubClient(hub.url, "vehicle", "V-1", token, timeout=30) as v:
                try:
                    await asyncio.to_thread(v.request, K.START_CHARGE, "CP-OCPP", None, EV)
                    outcome = "started"
                except HubError as exc:
                    outcome = str(exc)
            runner.cancel()
            return outcome, time.monotonic() - t0

    outcome, took = asyncio.run(asyncio.wait_for(charger(), 60))
    assert "did not answer" in outcome and took < 25, (outcome, took)


def test_a_websocket_dropped_mid_transaction_loses_nothing_the_stop_sent_after_reconnecting_completes_it(
    hub_and_central,
):
    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    token = hub.add_vehicle("V-1")

    async def first_half(v):
        async with connect(
            "%s/CP-OCPP" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OCPP", key)
        ) as ws:
            cp = Charger("CP-OCPP", ws)
            runner = asyncio.create_task(cp.start())
            await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Flaky"))
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))

            async def start_only(id_tag, connector):  # the link drops right after StartTransaction
                t0 = int(time.time())
                return (
                    await cp.call(
                        call.StartTransaction(connector_id=connector, id_tag=id_tag, meter_start=100, timestamp=iso(t0))
                    )
                ).transaction_id, t0

            cp.transaction = start_only
            await asyncio.to_thread(v.request, K.START_CHARGE, "CP-OCPP", None, EV)
            txid, t0 = await asyncio.wait_for(cp.started, 20)
            runner.cancel()
        return txid, t0  # the WebSocket is gone (closed without a StopTransaction)

    async def second_half(txid, t0):
        async with connect(
            "%s/CP-OCPP" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OCPP", key)
        ) as ws:
            cp = ChargePoint("CP-OCPP", ws)
            runner = asyncio.create_task(cp.start())
            await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Flaky"))
            await cp.call(
                call.StopTransaction(
                    meter_stop=2100, timestamp=iso(t0 + 900), transaction_id=txid, reason="EVDisconnected"
                )
            )  # from its offline queue
            runner.cancel()

    with HubClient(hub.url, "vehicle", "V-1", token, timeout=20) as v:
        txid, t0 = asyncio.run(asyncio.wait_for(first_half(v), 30))
        wait_for(lambda: "station CP-OCPP: offline" in hub.log(), 10, "the hub to see the charger go")
        asyncio.run(asyncio.wait_for(second_half(txid, t0), 30))
        complete = v.wait_event((K.COMPLETE,), timeout=20)
    assert complete is not None and complete.fields[0] == "CP-OCPP:%d" % txid and complete.fields[2] == 2000
    con = sqlite3.connect(hub.db)
    try:
        assert con.execute("SELECT COUNT(*), SUM(energy_wh) FROM sessions WHERE ended IS NOT NULL").fetchone() == (
            1,
            2000,
        )
    finally:
        con.close()


def test_a_charger_answering_reserve_now_occupied_at_the_window_start_gets_the_vehicle_told(hub_and_central):
    """A walk-in car holds the connector when the window opens: the charger answers Occupied; that is the
    station's ERROR to RESERVE_NOW, and the hub cancels the reservation (one connector, nowhere to move it)
    and tells the vehicle (an unsolicited RESERVATIONS)."""
    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    token = hub.add_vehicle("V-R")

    class Busy(ChargePoint):
        @on(Action.reserve_now)
        def on_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **_):
            return call_result.ReserveNow(status="Occupied")

    async def charger():
        async with connect(
            "%s/CP-OCPP" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OCPP", key)
        ) as ws:
            cp = Busy("CP-OCPP", ws)
            runner = asyncio.create_task(cp.start())
            await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Busy"))
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            now = int(time.time())
            with HubClient(hub.url, "vehicle", "V-R", token) as v:
                _k, (ok, rid, _alts, reason) = await asyncio.to_thread(v.request, K.RESERVE, "CP-OCPP", now, now + 1800)
                assert ok, reason
                told = await asyncio.to_thread(v.wait_event, (K.RESERVATIONS,), 15)
            runner.cancel()
            return rid, told

    rid, told = asyncio.run(asyncio.wait_for(charger(), 40))
    assert told is not None, hub.log()[-2000:]
    assert [r["state"] for r in told.fields[0] if r["reservation_id"] == rid] == ["cancelled"]
    assert "station CP-OCPP: ReserveNow %d for V-R: Occupied" % rid in hub.log()
    con = sqlite3.connect(hub.db)
    try:
        assert con.execute("SELECT state FROM reservations WHERE id = ?", (rid,)).fetchone()[0] == "cancelled"
    finally:
        con.close()


def test_a_charger_cannot_end_another_chargers_transaction_and_a_bad_timestamp_is_a_formation_violation(
    hub_and_central,
):
    from ocpp.exceptions import FormationViolationError, FormatViolationError

    hub, central, url = hub_and_central
    key_a = hub.add_station("CP-A", connectors=1, protocol="ocpp1.6")
    key_b = hub.add_station("CP-B", connectors=1, protocol="ocpp1.6")

    async def play():
        async with (
            connect("%s/CP-A" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-A", key_a)) as wa,
            connect("%s/CP-B" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-B", key_b)) as wb,
        ):
            a, b = ChargePoint("CP-A", wa), ChargePoint("CP-B", wb)
            runners = [asyncio.create_task(a.start()), asyncio.create_task(b.start())]
            for cp in (a, b):
                await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="X"))
            t0 = int(time.time())
            started = await a.call(
                call.StartTransaction(connector_id=1, id_tag="LOCAL-CARD", meter_start=0, timestamp=iso(t0))
            )
            await b.call(
                call.StopTransaction(meter_stop=99999, timestamp=iso(t0 + 60), transaction_id=started.transaction_id)
            )  # not B's
            still_open = _open_sessions(hub.db)
            refused = None
            try:
                await b.call(
                    call.StartTransaction(connector_id=1, id_tag="X", meter_start=0, timestamp="yesterday"),
                    suppress=False,
                )
            except (FormationViolationError, FormatViolationError) as exc:
                refused = exc
            await a.call(
                call.StopTransaction(meter_stop=700, timestamp=iso(t0 + 120), transaction_id=started.transaction_id)
            )
            for r in runners:
                r.cancel()
            return started.transaction_id, still_open, refused

    txid, still_open, refused = asyncio.run(asyncio.wait_for(play(), 30))
    assert still_open == ["CP-A:%d" % txid], still_open
    assert refused is not None
    con = sqlite3.connect(hub.db)
    try:
        # an unknown card: a local session, with the card kept as the claim
        assert con.execute("SELECT vehicle_id, claimed_vehicle_id, energy_wh FROM sessions").fetchall() == [
            (None, "idtag:LOCAL-CARD", 700)
        ]
    finally:
        con.close()
    assert "StopTransaction for transaction %d, not one of its own" % txid in hub.log()


def _open_sessions(db):
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT session_id FROM sessions WHERE ended IS NULL")]
    finally:
        con.close()


def test_occupied_at_the_windows_start_for_a_reservation_booked_earlier_reaches_the_vehicle(hub_and_central):
    """ReserveNow goes out by timer when the window opens; the charger answers Occupied (a walk-in): the
    central system tells the hub (RESERVATION_REFUSED), which cancels the reservation (one connector) and
    tells the vehicle."""
    hub, central, url = hub_and_central
    key = hub.add_station("CP-OCPP", connectors=1, protocol="ocpp1.6")
    token = hub.add_vehicle("V-R")
    asked = []

    class WalkedIn(ChargePoint):
        @on(Action.reserve_now)
        def on_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **_):
            asked.append(reservation_id)
            return call_result.ReserveNow(status="Occupied")

    async def charger(start):
        async with connect(
            "%s/CP-OCPP" % url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OCPP", key)
        ) as ws:
            cp = WalkedIn("CP-OCPP", ws)
            runner = asyncio.create_task(cp.start())
            await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="Busy"))
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            with HubClient(hub.url, "vehicle", "V-R", token) as v:
                _k, (ok, rid, _alts, reason) = await asyncio.to_thread(
                    v.request, K.RESERVE, "CP-OCPP", start, start + 1800
                )
                assert ok, reason
                assert not asked  # booked ahead: nothing sent yet
                told = await asyncio.to_thread(v.wait_event, (K.RESERVATIONS,), 20)
            runner.cancel()
            return rid, told

    rid, told = asyncio.run(asyncio.wait_for(charger(int(time.time()) + 3), 40))
    assert asked == [rid]
    assert told is not None and [r["state"] for r in told.fields[0] if r["reservation_id"] == rid] == ["cancelled"]
    assert "reservation %d (connector 1) dropped by the station" % rid in hub.log()

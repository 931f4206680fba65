"""`evhub bench --scenario ocpp`: OCPP 1.6J chargers through the hub's central system.

A real `evhub serve --ocpp` on loopback with N OCPP stations provisioned; N chargers from the `ocpp`
library's charge-point side connect over real WebSockets (in this process, one event loop), boot,
then each sends StatusNotification and MeterValues in turn for the measured window, at most
PER_CHARGER_RATE a second (a real charger sends a few a minute; the central system closes one past
20/s), every call awaited. Reported: connect time, calls/s through the bridge (each one a hub
record: STATUS acknowledged, METER forwarded), call latency, and the hub's RSS per connected charger.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
import time
from typing import Any

from tools.bench.runner import BenchError, start_serve
from tools.common import procstat
from tools.common.hubproc import HubStartError

PER_CHARGER_RATE = 15.0  # calls/s each charger sends at most (the central system allows 20)


def run(opts: dict[str, Any]) -> dict[str, Any]:
    n = opts["connections"]
    tmp = tempfile.mkdtemp(prefix="evhub-bench-ocpp-")
    try:
        db = os.path.join(tmp, "hub.db")
        keys = _provision(db, n)
        cfg = os.path.join(tmp, "hub.toml")
        with open(cfg, "w") as f:
            f.write("[hub]\nmax_links = %d\n" % max(20000, n + 100))
        hub = start_serve(tmp, db, ["--config", cfg, "--ocpp", "ws://127.0.0.1:0", "--ocpp-allow-profile1"])
        try:
            try:
                url = hub.ocpp_url()
            except HubStartError as exc:
                raise BenchError(str(exc)) from None
            rss_before = (procstat.memory_mb(hub.pid) or {}).get("rss_mb")
            cpu0 = procstat.cpu_seconds(hub.pid)
            result = asyncio.run(_drive(url, keys, opts["duration"], opts["warmup"], hub.pid))
            rss_after = result.pop("rss_connected_mb")
            cpu1 = procstat.cpu_seconds(hub.pid)
        finally:
            hub.stop()
    finally:
        if not opts.get("keep_tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
    per_charger_kb = None
    if rss_before is not None and rss_after is not None:
        per_charger_kb = round((rss_after - rss_before) * 1024.0 / n, 1)
    result.update(
        {
            "scenario": "ocpp",
            "chargers": n,
            "duration_s": opts["duration"],
            "hub_rss_before_mb": None if rss_before is None else round(rss_before, 1),
            "hub_rss_connected_mb": None if rss_after is None else round(rss_after, 1),
            "hub_rss_per_charger_kb": per_charger_kb,
            "hub_cpu_s": round((cpu1 or 0) - (cpu0 or 0), 2),
        }
    )
    return result


def _provision(db: str, n: int) -> dict[str, str]:
    from hub.store import ops as store_ops
    from hub.ocpp.mapping import new_ocpp_key
    from hub.store.store import Store

    store = Store(db)
    try:
        keys = {}
        for i in range(n):
            sid = "OCPP-%05d" % i
            keys[sid] = store.add_station(
                sid, -12.0 - (i % 100) * 0.01, -38.9 - (i // 100) * 0.01, 2, 22.0, key=new_ocpp_key()
            )
            store_ops.set_protocol(store, sid, "ocpp1.6")
        return keys
    finally:
        store.close()


async def _drive(url: str, keys: dict[str, str], duration: float, warmup: float, hub_pid: int) -> dict[str, Any]:
    import logging

    from ocpp.v16 import ChargePoint, call
    from websockets.asyncio.client import connect

    for name in ("ocpp", "websockets"):  # the library logs every frame at INFO
        logging.getLogger(name).setLevel(logging.WARNING)

    latencies: list[float] = []
    errors: list[str] = []
    counting = asyncio.Event()
    stop = asyncio.Event()
    ready = 0

    async def charger(sid: str, key: str, connected: asyncio.Event) -> None:
        nonlocal ready
        auth = base64.b64encode(("%s:%s" % (sid, key)).encode()).decode()
        try:
            async with connect(
                "%s/%s" % (url, sid),
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": "Basic " + auth},
                open_timeout=60,
            ) as ws:
                cp = ChargePoint(sid, ws, response_timeout=30)
                runner = asyncio.create_task(cp.start())
                await cp.call(call.BootNotification(charge_point_vendor="Bench", charge_point_model="AC"))
                ready += 1
                if ready == len(keys):
                    connected.set()
                await connected.wait()
                register = 0
                period = 1.0 / PER_CHARGER_RATE
                n = 0
                while not stop.is_set():
                    t0 = time.perf_counter()
                    if n % 2 == 0:
                        msg: Any = call.StatusNotification(
                            connector_id=1, error_code="NoError", status="Charging" if n % 4 == 0 else "SuspendedEV"
                        )
                    else:
                        register += 37
                        msg = call.MeterValues(
                            connector_id=1,
                            meter_value=[
                                {"timestamp": "2026-12-04T12:00:00Z", "sampledValue": [{"value": str(register)}]}
                            ],
                        )
                    await cp.call(msg)
                    took = time.perf_counter() - t0
                    if counting.is_set():
                        latencies.append(took)
                    n += 1
                    await asyncio.sleep(max(0.0, period - took))
                runner.cancel()
        except Exception as exc:  # counted and reported, never hidden
            errors.append("%s: %s" % (sid, exc))
            ready += 1
            if ready == len(keys):
                connected.set()

    connected = asyncio.Event()
    t_connect = time.monotonic()
    tasks = [asyncio.create_task(charger(sid, key, connected)) for sid, key in keys.items()]
    try:
        await asyncio.wait_for(connected.wait(), 120)
    except asyncio.TimeoutError:
        raise BenchError("only %d of %d chargers connected within 120 s" % (ready, len(keys))) from None
    connect_s = time.monotonic() - t_connect
    await asyncio.sleep(0.5)
    rss_connected = (procstat.memory_mb(hub_pid) or {}).get("rss_mb")
    await asyncio.sleep(warmup)
    counting.set()
    t0 = time.monotonic()
    await asyncio.sleep(duration)
    counted = len(latencies)
    elapsed = time.monotonic() - t0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(latencies[:counted])

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else None

    return {
        "connect_s": round(connect_s, 2),
        "calls_per_s": round(counted / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": len(errors),
        "error_samples": errors[:5],
        "rss_connected_mb": rss_connected,
    }


def render(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "scenario ocpp: %d OCPP 1.6J chargers over WebSockets through `evhub serve --ocpp`, %gs measured"
            % (r["chargers"], r["duration_s"]),
            "  connected in %s s; %s calls/s (StatusNotification and MeterValues, each a hub record)   p50 %s ms  p99 %s ms"
            "   errors %d" % (r["connect_s"], r["calls_per_s"], r["p50_ms"], r["p99_ms"], r["errors"]),
            "  hub RSS %s MB before, %s MB connected: %s KB per charger; hub CPU %s s"
            % (r["hub_rss_before_mb"], r["hub_rss_connected_mb"], r["hub_rss_per_charger_kb"], r["hub_cpu_s"]),
        ]
        + (["  errors: %s" % "; ".join(r["error_samples"])] if r.get("error_samples") else [])
    )

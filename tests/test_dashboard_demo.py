"""A screenshot of the dashboard during `make demo` (shorter), kept in tests/artifacts/ (gitignored)."""

import os
import re
import sys
import time

from procs import LoggedProcess
from test_dashboard import ARTIFACTS, page  # noqa: F401  (the Playwright page fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB_RE = re.compile(r"http api listening on http://[\d.]+:(\d+)")


def test_the_dashboard_during_the_demo_names_the_cities_and_is_saved_as_a_screenshot(page, tmp_path):  # noqa: F811
    work = tmp_path / "sim"
    # As `make demo` runs it (--seed 7), shorter and smaller, with the HTTP API on a free loopback port.
    sim = LoggedProcess(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "sim",
            "--stations",
            "12",
            "--vehicles",
            "30",
            "--duration",
            "40",
            "--speedup",
            "60",
            "--seed",
            "7",
            "--json",
            "--http",
            "127.0.0.1:0",
            "--workdir",
            str(work),
        ],
        str(tmp_path / "sim.out"),
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            try:
                m = WEB_RE.search((work / "hub.log").read_text(errors="replace"))
            except OSError:
                m = None
            port = m and int(m.group(1))
            assert port or (time.monotonic() < deadline and sim.proc.poll() is None), sim.output()
            if not port:
                time.sleep(0.1)
        page.goto("http://127.0.0.1:%d/" % port)
        page.wait_for_selector('body[data-ready="1"]', timeout=15000)
        page.wait_for_selector("#conn.live", timeout=15000)
        page.wait_for_selector("#stations-table tbody tr .place", timeout=15000)
        places = page.locator("#stations-table tbody tr .place").all_inner_texts()
        assert any("Feira de Santana" in p for p in places), places
        page.wait_for_selector("#map g.vehicle", timeout=20000)  # vehicles reported positions: the demo is running
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "dashboard-demo.png")
        page.screenshot(path=shot, full_page=False)
        assert os.path.getsize(shot) > 10000
        assert not page.errors, page.errors
    finally:
        out = sim.stop()
    assert "Traceback" not in out, out


def test_a_capacity_mismatch_is_marked_in_the_table_and_explained_in_the_station_detail(page, tmp_path):  # noqa: F811
    import contextlib

    from test_http_api import HttpHub
    from tools.client.hubclient import HubClient
    from transport import kinds as K

    with HttpHub(tmp_path) as hub:
        key = hub.add_station("CP-1", connectors=2, max_kw=7.4)
        c = HubClient(hub.url, "station", "CP-1", key).connect()
        with contextlib.closing(c):
            c.request(K.BOOT, -12.2664, -38.9663, 1, 22.0, "test-fw")
            c.request(K.STATUS, 1, "Available", None)
            page.goto("http://127.0.0.1:%d/" % hub.http_port)
            page.wait_for_selector('body[data-ready="1"]', timeout=15000)
            marker = page.wait_for_selector('#stations-table tr[data-station="CP-1"] .mismatch', timeout=10000)
            assert "provisioned 2 × 7.4 kW" in marker.get_attribute("title")
            page.click('#map g.station[data-station="CP-1"] circle')
            page.wait_for_selector("#detail:not([hidden])")
            facts = page.inner_text("#detail-facts")
            assert "Capacity mismatch" in facts and "station reports 1 × 22 kW; using 1 × 7.4 kW" in facts, facts
            assert not page.errors, page.errors

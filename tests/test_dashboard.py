"""The dashboard page in a real headless browser (Debian's chromium, driven by Playwright).

Needs /usr/bin/chromium and the `playwright` Python package (`make browser-deps` installs both;
Playwright's own browser download is never used). If they are missing this test tries to
install them (root + apt-get, pip); it is skipped, loudly, only when that is impossible.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import pytest

from test_http_api import TOKEN, HttpHub, boot_station
from tools.client.hubclient import HubClient
from transport import kinds as K

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _try(cmd, timeout):
    try:
        return (
            subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _browser_or_skip():
    """sync_playwright, installing chromium/playwright first if they are missing and we can."""
    problems = []
    if not os.path.exists(CHROMIUM):
        if os.geteuid() == 0 and shutil.which("apt-get"):
            _try(["apt-get", "update", "-q"], 600)
            _try(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], 1200)
        if not os.path.exists(CHROMIUM):
            problems.append("%s is not installed and `apt-get install chromium` was not possible" % CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _try([sys.executable, "-m", "pip", "install", "--quiet", "playwright"], 600)
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            problems.append("the playwright package is not installed and `pip install playwright` failed")
    if problems:
        reason = "DASHBOARD BROWSER TEST NOT RUN: " + "; ".join(problems) + " (run `make browser-deps` as root)"
        warnings.warn(reason)
        print("\n!!! " + reason, file=sys.stderr)
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture
def page():
    sync_playwright = _browser_or_skip()
    profile = tempfile.mkdtemp(prefix="evhub-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": 1440, "height": 900}
            )
            pg = ctx.pages[0] if ctx.pages else ctx.new_page()
            pg.errors = []
            pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
            pg.on("console", lambda msg: msg.type == "error" and pg.errors.append(msg.text))
            try:
                yield pg
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _rows(pg):
    return pg.eval_on_selector_all(
        "#stations-table tbody tr",
        "rows => rows.map(r => [r.dataset.station, r.querySelector('.status').textContent,"
        " r.querySelector('.free').textContent])",
    )


def test_the_dashboard_shows_the_hubs_stations_and_a_status_change_arrives_without_a_reload(tmp_path, page):
    with HttpHub(tmp_path) as hub:
        positions = {
            "CP-1": (-12.2664, -38.9663),
            "CP-2": (-12.2500, -38.9400),
            "CP-3": (-12.2900, -38.9200),
            "CP-4": (-12.2300, -38.9800),
        }
        keys = {sid: hub.add_station(sid, lat=lat, lon=lon, connectors=2) for sid, (lat, lon) in positions.items()}
        vehicle_token = hub.add_vehicle("V-1")
        hub.wait_for("/api/stations", lambda b: len(b["stations"]) == 4)
        with (
            boot_station(hub, "CP-1", keys["CP-1"], 2, *positions["CP-1"]) as cp1,
            boot_station(hub, "CP-2", keys["CP-2"], 2, *positions["CP-2"]) as cp2,
            boot_station(hub, "CP-3", keys["CP-3"], 2, *positions["CP-3"]) as cp3,
            HubClient(hub.url, "vehicle", "V-1", vehicle_token) as vehicle,
        ):
            now = int(time.time())
            for n in (1, 2):
                cp2.request(K.STATUS, n, "Charging", None)
            cp2.request(K.SESSION_START, "S-22", 1, "V-2", None, 0, now)
            cp3.request(K.STATUS, 1, "Faulted", "ground fault")
            status, _h, _b = hub.request(
                "POST",
                "/api/reservations",
                token=TOKEN,
                body={"station_id": "CP-3", "vehicle_id": "V-3", "start": now + 1800, "duration_min": 45},
            )
            assert status == 201
            later = now + 2 * 86400  # a window on another day is shown with its date
            status, _h, _b = hub.request(
                "POST",
                "/api/reservations",
                token=TOKEN,
                body={"station_id": "CP-1", "vehicle_id": "V-4", "start": later, "duration_min": 30},
            )
            assert status == 201
            vehicle.send(K.POSITION, -12.26, -38.95, now, 0.6)
            hub.wait_for("/api/vehicles", lambda b: b["vehicles"])

            page.goto("http://127.0.0.1:%d/" % hub.http_port)
            page.wait_for_selector('body[data-ready="1"]', timeout=10000)
            page.wait_for_selector("#conn.live", timeout=10000)
            page.wait_for_function("document.querySelectorAll('#stations-table tbody tr').length === 4", timeout=10000)
            assert _rows(page) == [
                ["CP-1", "Available", "Free now"],
                ["CP-2", "Occupied", "Free in 45 min"],
                ["CP-3", "Available", "Free now"],
                ["CP-4", "Offline", "Offline"],
            ]
            assert page.locator("#map g.station").count() == 4
            assert page.locator('#map g.station[data-station="CP-4"].st-Offline').count() == 1
            offline_conns = page.inner_text('#stations-table tr[data-station="CP-4"] .conns')
            assert "offline" in offline_conns and "free" not in offline_conns  # not a green "2/2 free"
            page.wait_for_selector('#map g.vehicle[data-vehicle="V-1"]', timeout=10000)
            assert page.text_content('#map g.vehicle[data-vehicle="V-1"] text') == "V-1"  # vehicles carry their id
            session_row = page.inner_text('#sessions-table tr[data-session="S-22"]').split("\t")
            # The session S-22 has its own row, on its station and connector (V-2 is shown as "–": a
            # station's word alone does not attribute a session to a vehicle).
            assert session_row[:2] == ["CP-2 #1", "–"], session_row
            assert "V-3" in page.inner_text("#reservations-table")
            later_row = page.inner_text('#reservations-table tr:has-text("V-4")')
            assert re.search(r"\S+ \d{2}:\d{2}–\d{2}:\d{2}", later_row), later_row  # the date precedes the window

            page.evaluate("window.__sameDocument = 'yes'")  # gone if the page reloads
            cp1.request(K.STATUS, 1, "Charging", None)
            cp1.request(K.STATUS, 2, "Charging", None)
            page.wait_for_selector('#stations-table tr[data-station="CP-1"] .badge.st-Occupied', timeout=5000)
            page.wait_for_selector('#map g.station[data-station="CP-1"].st-Occupied', timeout=5000)
            assert page.evaluate("window.__sameDocument") == "yes"
            assert "CP-1: Available → Occupied" in page.inner_text("#log")

            car = "document.querySelector('#map g.vehicle[data-vehicle=\"V-1\"]').style.transform"
            before = page.evaluate("() => " + car)
            vehicle.send(K.POSITION, -12.27, -38.93, now + 60, 0.59)  # the vehicle moves on the map
            page.wait_for_function("(before) => " + car + " !== before", arg=before, timeout=8000)

            page.click('#map g.station[data-station="CP-3"] circle')
            page.wait_for_selector("#detail:not([hidden])")
            page.wait_for_function(
                "document.querySelector('#detail-reservations').textContent.includes('V-3')", timeout=5000
            )
            connectors = page.inner_text("#detail-connectors")
            assert "#1 Faulted" in connectors and "#2 Available" in connectors
            assert page.inner_text("#detail-title") == "CP-3"

            page.wait_for_timeout(2000)  # let colour fades and the vehicle's glide finish for the picture
            os.makedirs(ARTIFACTS, exist_ok=True)
            shot = os.path.join(ARTIFACTS, "dashboard.png")
            page.screenshot(path=shot, full_page=False)
            assert os.path.getsize(shot) > 10000
            assert page.errors == [], page.errors  # no script errors, no CSP violations

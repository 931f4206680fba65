"""The sim's live view fits the terminal it is drawn on: no line wraps, no more lines than rows."""

import io
import re

import pytest

from tools.sim.display import LiveDisplay, fit
from tools.sim.world import place_stations

ESC = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Tty(io.StringIO):
    encoding = "utf-8"


def _snapshot(stations):
    return {
        "phase": "running",
        "sim_time": 1_800_000_000,
        "sim_start": 1_799_999_000,
        "elapsed": 12.0,
        "duration": 45.0,
        "speedup": 60.0,
        "hub_rss_kb": 30000,
        "stations": {s.id: ("Available", "Reserved", "Occupied", "Offline")[i % 4] for i, s in enumerate(stations)},
        "stats": {
            "reservations_confirmed": 85,
            "reservations_conflicted": 29,
            "alternatives_taken": 23,
            "sessions_started": 66,
            "reservations_cancelled": 19,
            "sessions_completed": 37,
            "energy_wh": 1372100,
            "errors": 0,
        },
        "states": {},
        "positions": [(s.lat, s.lon, "moving") for s in stations],
    }


@pytest.mark.parametrize("cols,rows", [(80, 24), (100, 40), (60, 15), (200, 60)])
def test_every_line_of_the_live_view_fits_the_terminal(monkeypatch, cols, rows):
    monkeypatch.setenv("COLUMNS", str(cols))
    monkeypatch.setenv("LINES", str(rows))
    stations = place_stations(50, 7)
    out = Tty()
    title = "50 stations · 200 vehicles · 45 s at x60 (45 simulated minutes) · seed 7 · a long title to be cut"
    display = LiveDisplay(stations, title, out)
    for _ in range(3):
        display.update(_snapshot(stations))
    lines = [ESC.sub("", line) for line in out.getvalue().split("\n")]
    assert max(len(line) for line in lines) < cols
    assert display.lines < rows


def test_a_resized_terminal_is_redrawn_from_a_clean_screen(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("LINES", "40")
    stations = place_stations(20, 7)
    out = Tty()
    display = LiveDisplay(stations, "title", out)
    display.update(_snapshot(stations))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    display.update(_snapshot(stations))
    assert "\x1b[2J" in out.getvalue()
    assert display.lines < 24


def test_fit_cuts_visible_text_and_keeps_colour_codes():
    coloured = "\x1b[1;32mgreen\x1b[0m and more text"
    assert ESC.sub("", fit(coloured, 8)) == "green an"
    assert fit("short", 80) == "short"

"""What `evhub sim` shows: a live map and counters on a terminal, and the summary at the end.

The live view redraws one block in place once a second (ANSI cursor movement, no
curses): a map of the stations coloured by status with the vehicles around them,
then stations by status, vehicles by activity, reservations and sessions.
"""

import datetime
import re
import shutil
import unicodedata

from tools.sim.vehicle import CHARGING, HEADING, MOVING, RESERVING, SEARCHING, STRANDED, TO_STATION

RESET = "\x1b[0m"
COLOURS = {
    "Available": "\x1b[1;32m",
    "Reserved": "\x1b[1;33m",
    "Occupied": "\x1b[1;31m",
    "Offline": "\x1b[90m",
    "Unavailable": "\x1b[90m",
    "Faulted": "\x1b[1;35m",
}
DIM, BOLD, CYAN = "\x1b[2m", "\x1b[1m", "\x1b[36m"
RANK = {"Faulted": 5, "Occupied": 4, "Reserved": 3, "Available": 2, "Unavailable": 1, "Offline": 0}
STATUS_ORDER = ("Available", "Reserved", "Occupied", "Offline", "Unavailable", "Faulted")


UNICODE = {
    "station": "●",
    "vehicle": "·",
    "heading": "»",
    "charging": "⚡",
    "full": "█",
    "empty": "░",
    "h": "─",
    "v": "│",
    "tl": "┌",
    "tr": "┐",
    "bl": "└",
    "br": "┘",
    "dot": "·",
}
ASCII = {
    "station": "o",
    "vehicle": ".",
    "heading": ">",
    "charging": "+",
    "full": "#",
    "empty": "-",
    "h": "-",
    "v": "|",
    "tl": "+",
    "tr": "+",
    "bl": "+",
    "br": "+",
    "dot": "-",
}


def glyphs_for(stream):
    """Box drawing and bullets where the terminal takes UTF-8, plain ASCII where it does not."""
    enc = (getattr(stream, "encoding", None) or "ascii").lower().replace("-", "")
    return UNICODE if enc in ("utf8", "utf_8") else ASCII


def _c(text, code, colour):
    return "%s%s%s" % (code, text, RESET) if colour and code else text


_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def fit(line, cols):
    """`line` cut to `cols` visible cells (ANSI colour codes cost none), so no line ever wraps: a
    wrapped line would make the in-place redraw climb too few rows and leave debris behind."""
    out, visible, pos = [], 0, 0
    for m in _ESCAPE.finditer(line):
        text = line[pos : m.start()]
        if visible + len(text) > cols:
            out.append(text[: cols - visible])
            return "".join(out) + RESET
        out.append(text)
        visible += len(text)
        out.append(m.group())
        pos = m.end()
    text = line[pos:]
    if visible + len(text) > cols:
        return "".join(out) + text[: cols - visible] + RESET
    return "".join(out) + text


def local_hm(epoch):
    return datetime.datetime.fromtimestamp(epoch).strftime("%H:%M")


class LiveDisplay:
    def __init__(self, stations, title, out, colour=True):
        self.stations = stations
        self.title = title
        self.out = out
        self.colour = colour
        self.g = glyphs_for(out)
        self.lines = 0
        self.title = title.replace("·", self.g["dot"])
        lats = [s.lat for s in stations]
        lons = [s.lon for s in stations]
        pad_lat = max(0.02, (max(lats) - min(lats)) * 0.05)
        pad_lon = max(0.02, (max(lons) - min(lons)) * 0.05)
        self.box = (min(lats) - pad_lat, max(lats) + pad_lat, min(lons) - pad_lon, max(lons) + pad_lon)
        self.size = None
        self._layout()
        self.out.write("\x1b[?25l")  # hide the cursor while redrawing

    def _layout(self):
        """Size the map to the terminal, again whenever the terminal is resized."""
        cols, rows = shutil.get_terminal_size((100, 40))
        if (cols, rows) == self.size:
            return False
        self.size = (cols, rows)
        self.cols, self.rows = cols, rows
        # 6 lines of header and footer plus the map's frame; the panel beside the map needs ~24
        # columns. Too small a terminal gets no map (the counters still fit 80x24 and less).
        self.map_h = max(0, min(18, rows - 8))
        span_lat, span_lon = self.box[1] - self.box[0], self.box[3] - self.box[2]
        # A terminal cell is about twice as tall as it is wide.
        self.map_w = int(max(20, min(cols - 30, 72, self.map_h * 2.0 * span_lon / span_lat))) if self.map_h else 0
        if self.map_h < 6 or cols - 30 < 20:
            self.map_h = self.map_w = 0
        self.labels = self._place_labels() if self.map_h else []
        return True

    def _cell(self, lat, lon):
        lat0, lat1, lon0, lon1 = self.box
        x = int((lon - lon0) / (lon1 - lon0) * (self.map_w - 1) + 0.5)
        y = int((lat1 - lat) / (lat1 - lat0) * (self.map_h - 1) + 0.5)
        if 0 <= x < self.map_w and 0 <= y < self.map_h:
            return y, x
        return None

    def _map(self, snap):
        g = self.g
        grid = [[" "] * self.map_w for _ in range(self.map_h)]
        for lat, lon, state in snap.get("positions", ()):
            cell = self._cell(lat, lon)
            if cell is not None and state != CHARGING:
                grid[cell[0]][cell[1]] = _c(
                    g["heading"] if state in HEADING else g["vehicle"],
                    "\x1b[33m" if state in HEADING else DIM,
                    self.colour,
                )
        shown = {}
        statuses = snap.get("stations", {})
        for s in self.stations:
            cell = self._cell(s.lat, s.lon)
            if cell is None:
                continue
            status = statuses.get(s.id, "Offline")
            if cell not in shown or RANK.get(status, 0) > RANK.get(shown[cell], 0):
                shown[cell] = status
        for (y, x), status in shown.items():
            grid[y][x] = _c(g["station"], COLOURS.get(status), self.colour)
        for (y, x), name in self.labels:
            for i, ch in enumerate(name):
                grid[y][x + i] = _c(ch, CYAN, self.colour)
        frame = _c(g["v"], DIM, self.colour)
        return [frame + "".join(row) + frame for row in grid]

    def _place_labels(self):
        """Names of the cities with most stations, beside their markers where they fit without hiding one."""
        by_city = {}
        for s in self.stations:
            by_city.setdefault(s.city, []).append(s)
        stations = {self._cell(s.lat, s.lon) for s in self.stations}
        labels, taken = [], set(stations)
        for city, ss in sorted(by_city.items(), key=lambda kv: -len(kv[1]))[:6]:
            if len(ss) < 2:
                break
            if self.g is ASCII:  # "São Gonçalo" -> "Sao Goncalo"
                city = unicodedata.normalize("NFKD", city).encode("ascii", "ignore").decode()
            cells = [c for c in (self._cell(s.lat, s.lon) for s in ss) if c is not None]
            if not cells:
                continue
            top, bottom = min(c[0] for c in cells), max(c[0] for c in cells)
            left, right = min(c[1] for c in cells), max(c[1] for c in cells)
            mid = (left + right) // 2 - len(city) // 2
            for y, x in (
                (bottom + 1, mid),
                (top - 1, mid),
                ((top + bottom) // 2, right + 2),
                ((top + bottom) // 2, left - len(city) - 1),
            ):
                span = {(y, x + i) for i in range(-1, len(city) + 1)}
                inside = 0 <= y < self.map_h and x >= 0 and x + len(city) <= self.map_w
                if inside and not span & taken:
                    labels.append(((y, x), city))
                    taken |= span
                    break
        return labels

    def _panel(self, snap):
        g = self.g
        counts = {}
        for status in snap.get("stations", {}).values():
            counts[status] = counts.get(status, 0) + 1
        states = snap.get("states", {})
        rows = ["%s" % _c("stations", BOLD, self.colour)]
        rows += [
            "%s %-11s %4d" % (_c(g["station"], COLOURS.get(k), self.colour), k, counts.get(k, 0))
            for k in STATUS_ORDER[:4] + tuple(k for k in STATUS_ORDER[4:] if counts.get(k))
        ]
        rows += ["", _c("vehicles", BOLD, self.colour)]
        looking = states.get(SEARCHING, 0) + states.get(RESERVING, 0)
        driving = sum(states.get(k, 0) for k in MOVING) - looking - states.get(TO_STATION, 0)
        rows += [
            "%s %-11s %4d" % (_c(g["vehicle"], DIM, self.colour), "driving", driving),
            "%s %-11s %4d" % ("?", "booking", looking),
            "%s %-11s %4d"
            % (_c(g["heading"], "\x1b[33m", self.colour), "to charger", sum(states.get(k, 0) for k in HEADING)),
            "%s %-11s %4d" % (g["charging"], "charging", states.get(CHARGING, 0)),
        ]
        if states.get(STRANDED):
            rows.append("%s %-11s %4d" % ("!", "stranded", states[STRANDED]))
        return rows

    def update(self, snap):
        g = self.g
        resized = self._layout()
        lines = []
        stats = snap.get("stats", {})
        sim_min = (snap["sim_time"] - snap["sim_start"]) / 60.0
        width = 24
        done = min(1.0, snap["elapsed"] / snap["duration"]) if snap["duration"] else 1.0
        bar = g["full"] * int(done * width) + g["empty"] * (width - int(done * width))
        lines.append(" %s  %s" % (_c("evhub sim", BOLD, self.colour), self.title))
        lines.append(
            " %s %3.0f/%.0f s   simulated %s (+%d min)   %s"
            % (bar, snap["elapsed"], snap["duration"], local_hm(snap["sim_time"]), sim_min, snap["phase"])
        )
        panel = self._panel(snap)
        if self.map_h:
            body = [_c(g["tl"] + g["h"] * self.map_w + g["tr"], DIM, self.colour)] + self._map(snap)
            body.append(_c(g["bl"] + g["h"] * self.map_w + g["br"], DIM, self.colour))
            for i, row in enumerate(body):
                side = panel[i - 1] if 1 <= i <= len(panel) else ""
                lines.append(" " + row + "   " + side)
        else:
            lines.extend(" " + row for row in panel)
        lines.append(
            " bookings  %d confirmed, %d conflicts (%d took an alternative), %d used, %d cancelled"
            % (
                stats.get("reservations_confirmed", 0),
                stats.get("reservations_conflicted", 0),
                stats.get("alternatives_taken", 0),
                stats.get("sessions_started", 0),
                stats.get("reservations_cancelled", 0) + stats.get("cancelled_at_end", 0),
            )
        )
        extra = "   hub RSS %.0f MB" % (snap["hub_rss_kb"] / 1024.0) if snap.get("hub_rss_kb") else ""
        errors = stats.get("errors", 0)
        lines.append(
            " sessions  %d ended, %.1f kWh delivered   errors %s%s"
            % (
                stats.get("sessions_completed", 0) + stats.get("sessions_stopped", 0),
                stats.get("energy_wh", 0) / 1000.0,
                _c(str(errors), "\x1b[1;31m" if errors else "\x1b[32m", self.colour),
                extra,
            )
        )
        self._draw(lines, resized)

    def _draw(self, lines, resized=False):
        out = self.out
        if resized and self.lines:
            # Resized: what was drawn may have wrapped; start again on a clean screen.
            out.write("\x1b[2J\x1b[H")
            self.lines = 0
        lines = [fit(line, self.cols - 1) for line in lines[: max(1, self.rows - 1)]]
        if self.lines:
            out.write("\x1b[%dF" % self.lines)
        for line in lines:
            out.write("\x1b[2K" + line + "\n")
        for _ in range(self.lines - len(lines)):
            out.write("\x1b[2K\n")
        self.lines = max(self.lines, len(lines))
        out.flush()

    def close(self):
        self.out.write("\x1b[?25h")
        self.out.flush()


def format_summary(s, colour=False):
    ok = s["errors"] == 0
    lines = [
        "%s %d stations%s, %d vehicles, %.0f s at x%g (%.0f simulated minutes), seed %s%s"
        % (
            _c("evhub sim:", BOLD, colour),
            s["stations"],
            " (%d of them OCPP 1.6J chargers)" % s["ocpp_stations"] if s.get("ocpp_stations") else "",
            s["vehicles"],
            s["duration_s"],
            s["speedup"],
            s["simulated_min"],
            s["seed"],
            " (interrupted)" if s["interrupted"] else "",
        ),
        "  reservations  %d confirmed, %d conflicts (%d took an alternative)"
        % (s["reservations_confirmed"], s["reservations_conflicted"], s["alternatives_taken"]),
        "                %d fulfilled + %d cancelled (%d at the end, %d dropped by a station) + %d expired"
        " + %d open  %s"
        % (
            s["reservations_fulfilled"],
            s["reservations_cancelled"],
            s["reservations_cancelled_at_end"],
            s.get("reservations_dropped", 0),
            s["reservations_expired"],
            s["reservations_open"],
            _c("books balance", "\x1b[32m", colour)
            if s["books_balanced"]
            else _c("BOOKS DO NOT BALANCE", "\x1b[1;31m", colour),
        ),
        "  sessions      %d completed, %d stopped at the end: %.1f kWh (hub store: %.1f kWh)"
        % (s["sessions_completed"], s["sessions_stopped_at_end"], s["energy_kwh"], s["energy_kwh_store"]),
        "  vehicles      %d positions sent, %d nearest queries, %d start retries, %d stranded"
        % (s["positions_sent"], s["nearest_queries"], s["start_retries"], s["stranded"]),
        "  hub           CPU %.1f s (%s%% of one core), peak RSS %s MB; simulator CPU %.1f s, RSS %s MB"
        % (s["hub_cpu_s"], s["hub_cpu_pct"], s["hub_rss_peak_mb"], s["sim_cpu_s"], s["sim_rss_peak_mb"]),
        "  errors        %s" % (_c("0", "\x1b[1;32m", colour) if ok else _c(str(s["errors"]), "\x1b[1;31m", colour)),
    ]
    for d in s["error_details"]:
        lines.append("                - %s" % d)
    if s.get("workdir"):
        lines.append("  kept          %s (hub.db, hub.log, sim.log)" % s["workdir"])
    return "\n".join(lines)

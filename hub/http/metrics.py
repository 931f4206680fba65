"""GET /metrics: the hub's numbers in the Prometheus text exposition format (version 0.0.4).

Counters end in _total and only grow while the hub runs; gauges are the value now.
Frames in/out are summed over the links: a link's own tally is kept after it closes,
as last seen by a scrape or by the sampler that runs every SAMPLE_EVERY_S.
"""

import asyncio
import logging
import time

from hub.domain.states import ReservationState
from hub.http.server import Response, Route
from transport import kinds as K

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 5.0
# router counter -> error kind label
ERROR_COUNTERS = {
    "bad_messages": "bad_message",
    "auth_failures": "auth_failed",
    "handshake_errors": "handshake",
    "handshake_timeouts": "handshake_timeout",
    "refused_links": "link_refused",
    "slow_readers_cut": "slow_reader",
    "logins_throttled": "login_throttled",
    "unauth_evicted": "unauth_evicted",
}


def _label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self):
        self.lines = []

    def metric(self, name, kind, help_text, samples):
        """samples: value, or [(labels dict, value)]."""
        self.lines.append("# HELP %s %s" % (name, help_text))
        self.lines.append("# TYPE %s %s" % (name, kind))
        if not isinstance(samples, list):
            samples = [({}, samples)]
        for labels, value in samples:
            lbl = ",".join('%s="%s"' % (k, _label(v)) for k, v in sorted(labels.items()))
            self.lines.append("%s%s %s" % (name, "{%s}" % lbl if lbl else "", _num(value)))

    def text(self):
        return "\n".join(self.lines) + "\n"


def _num(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class FrameTally:
    """Frames in and out over every link the hub has had, surviving link close."""

    def __init__(self):
        self.seen = {}  # link id -> (frames_in, frames_out) last seen
        self.retired_in = 0
        self.retired_out = 0

    def sample(self, links):
        current = {}
        for link_id, link in list(links.items()):
            current[link_id] = (link.frames_in, link.frames_out)
        for link_id, (fin, fout) in self.seen.items():
            if link_id not in current:
                self.retired_in += fin
                self.retired_out += fout
        self.seen = current
        return (
            self.retired_in + sum(v[0] for v in current.values()),
            self.retired_out + sum(v[1] for v in current.values()),
        )


class Metrics:
    def __init__(self, api, bus, live, http, events):
        self.api = api
        self.bus = bus
        self.live = live
        self.http = http
        self.events = events  # the EventStream (client count)
        self.tally = FrameTally()
        self._task = None
        self.started = time.time()

    def routes(self):
        return [Route("GET", "/metrics", self.metrics)]

    def start(self, loop):
        self._task = loop.create_task(self._sample_forever())

    def stop(self):
        if self._task is not None:
            self._task.cancel()

    async def _sample_forever(self):
        while True:
            await asyncio.sleep(SAMPLE_EVERY_S)
            self.tally.sample(self.api.gateway.links)

    async def _open_reservations(self):
        try:
            return await self.api.call_book(len)
        except Exception as exc:  # the scrape still answers without this one number
            log.warning("metrics: open reservations unavailable: %s", exc)
            return None

    async def metrics(self, req):
        api = self.api
        counters = dict(api.router.counters)
        links = api.gateway.links
        roles = {"station": 0, "vehicle": 0, "operator": 0, "handshake": 0}
        for link in list(links.values()):
            role = link.session.role if link.session.authenticated else "handshake"
            roles[role] = roles.get(role, 0) + 1
        frames_in, frames_out = self.tally.sample(links)
        view = list(api.view.values())
        by_status = {s: 0 for s in K.STATION_STATUSES}
        for v in view:
            by_status[v.status] = by_status.get(v.status, 0) + 1
        open_reservations = await self._open_reservations()
        live = self.live
        w = _Writer()
        w.metric("evhub_up", "gauge", "1 while the hub answers.", 1)
        w.metric("evhub_start_time_seconds", "gauge", "When this hub process started (UTC epoch).", self.started)
        w.metric(
            "evhub_links",
            "gauge",
            "Open links by role (handshake = not yet authenticated).",
            [({"role": r}, n) for r, n in sorted(roles.items())],
        )
        w.metric("evhub_links_opened_total", "counter", "Links accepted since start.", counters.get("links_opened", 0))
        w.metric(
            "evhub_messages_in_total",
            "counter",
            "Messages from peers dispatched to the hub.",
            counters.get("messages_in", 0),
        )
        w.metric(
            "evhub_frames_total",
            "counter",
            "Frames on all links, handshake and heartbeats included.",
            [({"direction": "in"}, frames_in), ({"direction": "out"}, frames_out)],
        )
        w.metric("evhub_messages_out_total", "counter", "Frames sent to peers (replies, requests, events).", frames_out)
        w.metric("evhub_positions_total", "counter", "Vehicle position reports received.", counters.get("positions", 0))
        w.metric(
            "evhub_errors_total",
            "counter",
            "Errors by kind.",
            [({"kind": label}, counters.get(name, 0)) for name, label in sorted(ERROR_COUNTERS.items())]
            + [({"kind": "http_%d" % code}, n) for code, n in sorted(self.http.requests.items()) if code >= 400],
        )
        w.metric(
            "evhub_http_requests_total",
            "counter",
            "HTTP requests answered, by status code.",
            [({"code": str(code)}, n) for code, n in sorted(self.http.requests.items())],
        )
        w.metric(
            "evhub_stations",
            "gauge",
            "Stations by the status shown to drivers.",
            [({"status": s}, n) for s, n in sorted(by_status.items())],
        )
        w.metric("evhub_stations_online", "gauge", "Stations with a live link.", sum(1 for v in view if v.online))
        w.metric("evhub_status_changes_total", "counter", "Station status changes seen.", live.status_changes)
        w.metric("evhub_vehicles_tracked", "gauge", "Vehicles with a known position.", len(api.tracker_last))
        if open_reservations is not None:
            w.metric(
                "evhub_reservations_open",
                "gauge",
                "Confirmed reservations not yet fulfilled or ended.",
                open_reservations,
            )
        w.metric(
            "evhub_reservations_total",
            "counter",
            "Reservation changes since start, by resulting state.",
            [({"state": s}, live.reservations.get(s, 0)) for s in ReservationState],
        )
        w.metric("evhub_sessions_active", "gauge", "Charging sessions running now.", len(live.sessions))
        w.metric(
            "evhub_sessions_total",
            "counter",
            "Charging sessions since start, by event.",
            [({"event": "started"}, live.sessions_started), ({"event": "completed"}, live.sessions_completed)],
        )
        w.metric(
            "evhub_energy_wh_total", "counter", "Energy delivered by completed sessions, Wh.", live.energy_wh_total
        )
        w.metric(
            "evhub_energy_wh_live",
            "gauge",
            "Energy delivered so far by running sessions, Wh.",
            sum(s.get("energy_wh") or 0 for s in live.sessions.values()),
        )
        w.metric("evhub_meter_values_total", "counter", "Meter values received.", live.meter_values)
        w.metric(
            "evhub_events_total",
            "counter",
            "Events published to the event stream, by type.",
            [({"type": k}, n) for k, n in sorted(self.bus.counts.items())],
        )
        w.metric("evhub_event_clients", "gauge", "Clients on /api/events.", self.events.clients)
        w.metric(
            "evhub_event_clients_dropped_total",
            "counter",
            "Event-stream clients cut off for falling behind.",
            self.bus.dropped_clients,
        )
        return Response(200, w.text().encode(), "text/plain; version=0.0.4; charset=utf-8")

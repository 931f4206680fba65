"""The loop's own picture of what is happening now, fed by the EventBus (a listener).

The registry owns live sessions on its thread; rather than asking it, the HTTP side
keeps a mirror built from the events the registry publishes (session start, meter
values, session end), plus the running totals /metrics reports. Loop thread only.
"""

import collections

MAX_LIVE_SESSIONS = 100_000  # a station that never ends its sessions cannot grow this forever


class LiveState:
    def __init__(self):
        self.sessions = {}  # session_id -> dict (the session_start document, updated by meter values)
        self.sessions_started = 0
        self.sessions_completed = 0
        self.energy_wh_total = 0
        self.meter_values = 0
        self.reservations = collections.Counter()  # state -> changes seen (confirmed, cancelled, ...)
        self.status_changes = 0

    def __call__(self, kind, doc):
        if kind == "meter":
            self.meter_values += 1
            s = self.sessions.get(doc.get("session_id"))
            if s is not None:
                s["energy_wh"] = doc["energy_wh"]
                s["power_w"] = doc["power_w"]
                s["meter_time"] = doc.get("time")
        elif kind == "session_start":
            self.sessions_started += 1
            if len(self.sessions) < MAX_LIVE_SESSIONS:
                self.sessions[doc["session_id"]] = dict(doc)
        elif kind == "session_end":
            self.sessions_completed += 1
            self.energy_wh_total += doc.get("energy_wh") or 0
            self.sessions.pop(doc["session_id"], None)
        elif kind == "reservation":
            self.reservations[doc["state"]] += 1
        elif kind == "station":
            if doc.get("previous_status") is not None and doc["previous_status"] != doc["status"]:
                self.status_changes += 1

    def sessions_at(self, station_id=None):
        out = [dict(s) for s in self.sessions.values() if station_id is None or s["station_id"] == station_id]
        out.sort(key=lambda s: (s.get("started") or 0, s["session_id"]))
        return out

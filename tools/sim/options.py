"""SimOptions: what one `evhub sim` run is asked to do, and the limits each value is checked against
(a ValueError names the flag)."""

import time


class SimOptions:
    def __init__(
        self,
        stations=50,
        vehicles=200,
        duration=60.0,
        speedup=60.0,
        seed=None,
        per_agent=25,
        tick_s=0.25,
        workdir=None,
        keep=False,
        report_s=60,
        http=None,
        ocpp_share=0.0,
        db=None,
        hubs=1,
    ):
        self.stations = stations
        self.vehicles = vehicles
        self.duration = duration
        self.speedup = speedup
        self.seed = seed if seed is not None else int(time.time()) % 100000
        self.per_agent = per_agent
        self.tick_s = tick_s
        self.workdir = workdir
        self.keep = keep
        self.report_s = report_s
        self.http = http  # HOST:PORT for the hub's HTTP API and dashboard (loopback), or None
        self.ocpp_share = ocpp_share  # the fraction of stations that are OCPP 1.6J chargers (tools/sim/ocpp.py)
        self.db = db  # a postgresql:// URL of an EMPTY database, or None: hub.db in the work directory
        self.hubs = hubs  # hubs started on that database (several need PostgreSQL)

    def check(self):
        for bad, text in (
            (not 1 <= self.stations <= 2000, "--stations must be 1..2000"),
            (not 0 <= self.vehicles <= 5000, "--vehicles must be 0..5000"),
            (not 1 <= self.duration <= 86400, "--duration must be 1..86400 seconds"),
            (not 1 <= self.speedup <= 3600, "--speedup must be 1..3600"),
            (not 1 <= self.per_agent <= 1000, "--vehicles-per-agent must be 1..1000"),
            (not 1 <= self.report_s <= 3600, "--position-every must be 1..3600 simulated seconds"),
            (not 0 <= self.ocpp_share <= 1, "--ocpp-share must be 0..1"),
            (not 1 <= self.hubs <= 8, "--hubs must be 1..8"),
            (
                self.hubs > 1 and not str(self.db or "").startswith(("postgresql://", "postgres://")),
                "--hubs needs --db postgresql://...: several hubs share one PostgreSQL database",
            ),
        ):
            if bad:
                raise ValueError(text)

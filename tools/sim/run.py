"""Run one laptop simulation: the real hub process, CPython charge points and vehicle agents.

    sim = Simulation(SimOptions(stations=50, vehicles=200, duration=45, speedup=60, seed=7))
    summary = sim.run(progress=callback)   # callback(snapshot) about once a second

Phases: provision a fresh store; start `evhub serve` on a free loopback port with
the simulation's --speedup/--epoch0; start the charge points (firmware.runner.Fleet,
one thread) and wait until the hub sees them all; start the vehicle agents (Pykka
actors) and their links (VehicleNet, one asyncio thread); run for `duration` real
seconds; wind down (vehicles cancel unused reservations and stop running charges);
stop everything; then close the books from the hub's own store (tools/sim/books.py).
"""

import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

from hub.clock import HubClock
from tools.common import procstat
from hub.store.backend import mask
from tools.common.hubproc import HubStartError, ServeProcess, repo_env, serve_argv
from tools.sim import books as sim_books
from tools.sim.options import SimOptions  # noqa: F401  (the callers' name for it: Simulation(SimOptions(...)))
from tools.sim.world import make_vehicles, place_stations, places
from tools.sim.vehicle import Params
from tools.sim.agent import VehicleAgent

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30
HUB_STOP_TIMEOUT_S = 15
WIND_DOWN_TIMEOUT_S = 30


class SimError(Exception):
    """The simulation could not be set up (the hub did not start, stations did not come online...)."""


class _ErrorCounter(logging.Handler):
    """Counts ERROR records of this process (charge points, actors); vehicles count their own."""

    def __init__(self):
        logging.Handler.__init__(self, logging.ERROR)
        self.texts = []

    def emit(self, record):
        if len(self.texts) < 50:
            self.texts.append("%s: %s" % (record.name, record.getMessage()[:200]))
        else:
            self.texts.append(None)


class Simulation:
    def __init__(self, opts):
        opts.check()
        self.opts = opts
        self.epoch0 = time.time()
        self.clock = HubClock(opts.speedup, self.epoch0)
        self.stations = place_stations(opts.stations, opts.seed)
        # Which stations are OCPP chargers: a seeded choice, so a seed gives the same mixed fleet.
        n_ocpp = round(opts.ocpp_share * len(self.stations))
        self.ocpp_ids = set(random.Random("ocpp:%s" % opts.seed).sample([s.id for s in self.stations], n_ocpp))
        self.ocpp_fleet = None
        self.ocpp_url = None
        self.vehicle_specs = make_vehicles(opts.vehicles, opts.seed, self.stations)
        self.workdir = os.path.abspath(opts.workdir) if opts.workdir else tempfile.mkdtemp(prefix="evhub-sim-")
        self.db = opts.db or os.path.join(self.workdir, "hub.db")
        self.hub_log = os.path.join(self.workdir, "hub.log")
        self.hub = None  # the ServeProcess (the first hub: the operator link, HTTP and OCPP are on it)
        self.hub_proc = None
        self.port = None
        self.more_hubs = []  # --hubs N: the other hubs on the same PostgreSQL database
        self.ports = []  # every hub's port, the first hub's first
        self.fleet = None
        self.fleet_stop = threading.Event()
        self.fleet_thread = None
        self.net = None
        self.agents = []
        self.operator = None
        self.errors = _ErrorCounter()
        self.interrupted = False
        self.phase = "setup"
        self.started_at = None
        self.sim_start = None
        self.last_snapshot = None
        self.net_errors = []
        self._shown = None
        self.hub_peak_rss_kb = None

    # --- set up ------------------------------------------------------------------------

    def _hub_memory(self):
        """The hub's resident KB now (None once it is gone); keeps the kernel's peak (VmHWM) for the books."""
        mem = procstat.memory_kb(self.hub_proc.pid)
        if mem is None:
            return None
        self.hub_peak_rss_kb = max(self.hub_peak_rss_kb or 0, mem.get("hwm_kb", 0))
        return mem.get("rss_kb")

    def _provision(self):
        from hub.store import ops as store_ops
        from hub.store.store import Store

        from hub.ocpp.mapping import new_ocpp_key

        store = Store(self.db)
        try:
            if store.station_count() or store.all_vehicles():
                # the books are checked against the whole database: another run's rows would not balance
                raise SimError("the store %s is not empty: give the simulation an empty database" % store.label)
            self.keys = {
                s.id: store.add_station(
                    s.id, s.lat, s.lon, s.connectors, s.max_kw, key=new_ocpp_key() if s.id in self.ocpp_ids else None
                )
                for s in self.stations
            }
            for sid in self.ocpp_ids:
                store_ops.set_protocol(store, sid, "ocpp1.6")
            store_ops.set_names(store, [(s.id, s.city) for s in self.stations])  # the dashboard names the cities
            self.tokens = {v.id: store.add_vehicle(v.id) for v in self.vehicle_specs}
        finally:
            store.close()

    def _start_hub(self):
        extra = ["--speedup", repr(float(self.opts.speedup)), "--epoch0", repr(self.epoch0)]
        if self.opts.hubs > 1:
            extra += ["--hub-id", "A"]
        if self.opts.http:
            extra += ["--http", self.opts.http]
        if self.ocpp_ids:  # loopback only, so Profile 1 (no TLS) is fine here
            extra += ["--ocpp", "ws://127.0.0.1:0", "--ocpp-allow-profile1"]
        # Its own session: a Ctrl-C on the terminal reaches us, and we stop the hub in order.
        self.hub = ServeProcess(
            serve_argv(self.db, extra=extra),
            self.hub_log,
            cwd=self.workdir,
            env=repo_env(),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.hub_proc = self.hub.proc
        try:
            self.port = self.hub.wait_listening(STARTUP_TIMEOUT_S)
            if self.ocpp_ids:
                self.ocpp_url = self.hub.ocpp_url()
        except HubStartError as exc:
            raise SimError(str(exc)) from None
        self.ports = [self.port]
        for i in range(1, self.opts.hubs):
            name = "ABCDEFGH"[i]
            more = ServeProcess(
                serve_argv(
                    self.db,
                    extra=[
                        "--speedup",
                        repr(float(self.opts.speedup)),
                        "--epoch0",
                        repr(self.epoch0),
                        "--hub-id",
                        name,
                    ],
                ),
                os.path.join(self.workdir, "hub-%s.log" % name),
                cwd=self.workdir,
                env=repo_env(),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            self.more_hubs.append(more)
            try:
                self.ports.append(more.wait_listening(STARTUP_TIMEOUT_S))
            except HubStartError as exc:
                raise SimError(str(exc)) from None
        if self.more_hubs:
            log.info("sim: %d hubs on %s, ports %s", len(self.ports), mask(self.db), self.ports)
        if self.opts.http:
            web = self.hub.http_url()
            log.info("sim: dashboard at %s/", web or "?")
            if web:
                print("evhub sim: dashboard at %s/" % web, file=sys.stderr, flush=True)

    def _hubs_for(self, i):
        """A station's hub, or with several hubs its list: each station starts at another one."""
        if len(self.ports) < 2:
            return {"host": "127.0.0.1", "port": self.port}
        order = self.ports[i % len(self.ports) :] + self.ports[: i % len(self.ports)]
        return [{"host": "127.0.0.1", "port": p} for p in order[:4]]

    def _start_chargepoints(self):
        from firmware.runner import Fleet

        configs = [
            {
                "id": s.id,
                "key": self.keys[s.id],
                "hub": self._hubs_for(i),
                "lat": s.lat,
                "lon": s.lon,
                "connectors": s.connectors,
                "max_kw": s.max_kw,
            }
            for i, s in enumerate(self.stations)
            if s.id not in self.ocpp_ids
        ]
        if self.ocpp_ids:
            from tools.sim.ocpp import OcppFleet

            self.ocpp_fleet = OcppFleet(
                [s for s in self.stations if s.id in self.ocpp_ids],
                self.keys,
                self.ocpp_url,
                self.opts.speedup,
                self.epoch0,
                self.opts.seed,
            )
            self.ocpp_fleet.start()
        self.fleet = Fleet(configs, speedup=self.opts.speedup, epoch0=self.epoch0, tick_s=self.opts.tick_s)
        self.fleet_thread = threading.Thread(
            target=self.fleet.run, args=(self.fleet_stop,), name="chargepoints", daemon=True
        )
        self.fleet_thread.start()

    def _wait_for(self, what, test, timeout=STARTUP_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while not test():
            if time.monotonic() > deadline:
                raise SimError("%s within %d s" % (what, timeout))
            if self.hub_proc.poll() is not None:
                raise SimError("the hub exited with %s" % self.hub_proc.returncode)
            time.sleep(0.1)

    def _operator_request(self, kind):
        """One request on the operator link (read-only, loopback); reconnects after a failure."""
        from tools.client.hubclient import HubError
        from tools.client.operator_auth import operator_client

        try:
            if self.operator is None:
                self.operator = operator_client("tcp://127.0.0.1:%d" % self.port, self.db).connect()
            return self.operator.request(kind)[1][0]
        except HubError as exc:
            if self.operator is not None:
                self.operator.close()
                self.operator = None
            raise SimError("operator link: %s" % exc) from None

    def _station_list(self):
        from transport import kinds as K

        return self._operator_request(K.STATIONS_LIST)

    def _start_vehicles(self):
        from tools.sim.net import VehicleNet

        self.net = VehicleNet("127.0.0.1", self.ports if len(self.ports) > 1 else self.port)
        self.net.every(self.opts.tick_s, self._tick_agents)
        params = Params(report_s=self.opts.report_s)
        station_map = {s.id: s for s in self.stations}
        where = places(self.stations)
        specs = self.vehicle_specs
        for i in range(0, len(specs), self.opts.per_agent):
            group = specs[i : i + self.opts.per_agent]
            self.agents.append((VehicleAgent.start(group, params, where, station_map, self.net, self.clock), group))
        self.net.start()
        for ref, group in self.agents:
            for spec in group:
                self.net.add(spec.id, self.tokens[spec.id], ref)

    def _tick_agents(self):
        now = self.clock()
        for ref, _group in self.agents:
            ref.tell(("tick", now))

    # --- watching -------------------------------------------------------------------------

    def snapshot(self, with_stations=True):
        """What the display shows: stations by status (from the hub), vehicles (from the agents)."""
        snap = {
            "phase": self.phase,
            "sim_time": self.clock(),
            "sim_start": self.sim_start or self.clock(),
            "elapsed": 0.0 if self.started_at is None else time.monotonic() - self.started_at,
            "duration": self.opts.duration,
            "speedup": self.opts.speedup,
        }
        if with_stations:
            try:
                snap["stations"] = {s["id"]: s["status"] for s in self._station_list()}
            except Exception as exc:  # the display must not end the simulation
                log.warning("station list failed: %s", exc)
                snap["stations"] = {}
        stats, states, positions, settled = {}, {}, [], 0
        for ref, group in self.agents:
            try:
                part = ref.ask(("snapshot",), timeout=10)
            except Exception as exc:
                stats["errors"] = stats.get("errors", 0) + len(group)
                stats.setdefault("error_texts", []).append("vehicle agent unreachable: %r" % (exc,))
                continue
            for k, v in part["stats"].items():
                if isinstance(v, list):
                    stats.setdefault(k, []).extend(v)
                else:
                    stats[k] = stats.get(k, 0) + v
            for k, v in part["states"].items():
                states[k] = states.get(k, 0) + v
            positions.extend(part["positions"])
            settled += part["settled"]
        snap.update(stats=stats, states=states, positions=positions, settled=settled)
        if self.hub_proc is not None:
            snap["hub_rss_kb"] = self._hub_memory()
            snap["hub_cpu_s"] = procstat.cpu_seconds(self.hub_proc.pid)
        self.last_snapshot = snap
        return snap

    # --- the whole run ------------------------------------------------------------------------

    def run(self, progress=None):
        logging.getLogger().addHandler(self.errors)
        try:
            return self._run(progress)
        finally:
            self._stop_all()
            logging.getLogger().removeHandler(self.errors)

    def _run(self, progress):
        opts = self.opts
        t0 = time.monotonic()
        self._provision()
        self._start_hub()
        self._start_chargepoints()
        self.phase = "stations"
        self._wait_for(
            "not every station came online",
            lambda: sum(1 for s in self._station_list() if s["status"] != "Offline") >= len(self.stations),
        )
        self.phase = "vehicles"
        self._start_vehicles()
        self._wait_for("not every vehicle connected", lambda: self.net.up_count() >= len(self.vehicle_specs))
        setup_s = time.monotonic() - t0
        cpu0 = procstat.cpu_seconds(self.hub_proc.pid)
        self.phase = "running"
        self.started_at = time.monotonic()
        sim0 = self.sim_start = self.clock()
        try:
            while True:
                left = opts.duration - (time.monotonic() - self.started_at)
                if left <= 0:
                    break
                time.sleep(min(1.0, left))
                snap = self.snapshot()
                if progress is not None:
                    progress(snap)
                    self._shown = snap
        except KeyboardInterrupt:
            self.interrupted = True
        run_s = time.monotonic() - self.started_at
        sim_minutes = (self.clock() - sim0) / 60.0
        hub_cpu = (procstat.cpu_seconds(self.hub_proc.pid) or 0) - (cpu0 or 0)
        self.phase = "winding down"
        wind = self._wind_down(progress)
        final = self.snapshot(with_stations=False)
        hub_stats = self._hub_stats()
        self._stop_all()
        books = sim_books.read(self.db)
        return sim_books.summarize(self, final, books, wind, hub_stats, hub_cpu, run_s, setup_s, sim_minutes)

    def _hub_stats(self):
        """The hub's own counters (HUB_STATS): messages in, bad messages, refused logins..."""
        from transport import kinds as K

        try:
            return self._operator_request(K.HUB_STATS)
        except SimError as exc:
            log.error("could not read the hub's counters: %s", exc)
            return {}

    def cleanup(self, summary):
        """Remove the work directory after a clean run (kept with --keep, a given --workdir, or errors)."""
        if summary is not None and summary["errors"] == 0 and not self.opts.keep and self.opts.workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            return None
        return self.workdir

    def _wind_down(self, progress):
        """Vehicles cancel and stop; wait until they are settled and the stations' records are stored."""
        for ref, _group in self.agents:
            ref.tell(("wind_down",))
        if progress is not None and self._shown is not None:
            progress(dict(self._shown, phase="closing the books", elapsed=time.monotonic() - self.started_at))
        t0 = time.monotonic()
        snap = None
        while time.monotonic() - t0 < WIND_DOWN_TIMEOUT_S:
            time.sleep(0.2)
            snap = self.snapshot(with_stations=False)
            if snap["settled"] >= len(self.vehicle_specs) and self._records_pending() == 0:
                break
        return {
            "seconds": round(time.monotonic() - t0, 2),
            "unsettled": len(self.vehicle_specs) - (snap["settled"] if snap else 0),
            "records_pending": self._records_pending(),
        }

    def _records_pending(self):
        boards = sum(len(d.cp.journal.pending()) for d in self.fleet.devices) if self.fleet else 0
        return boards + (self.ocpp_fleet.pending() if self.ocpp_fleet is not None else 0)

    def _stop_all(self):
        """Stop in reverse order of start; safe to call twice and after a failed start."""
        if self.net is not None:
            self.net.stop()
            self.net_errors = list(self.net.errors)
            self.net = None
        for ref, _group in self.agents:
            try:
                ref.stop(timeout=5)
            except Exception:
                pass
        if self.operator is not None:
            self.operator.close()
            self.operator = None
        if self.ocpp_fleet is not None:
            self.ocpp_fleet.stop()
        if self.fleet_thread is not None:
            self.fleet_stop.set()
            self.fleet_thread.join(10)
            self.fleet_thread = None
        for more in self.more_hubs:
            if more.proc.poll() is None:
                more.stop(HUB_STOP_TIMEOUT_S)
        if self.hub is not None and self.hub_proc.poll() is None:
            self._hub_memory()
            self.hub.stop(HUB_STOP_TIMEOUT_S)
            if self.hub_proc.returncode == -signal.SIGKILL:
                log.error("the hub did not stop within %d s; killed", HUB_STOP_TIMEOUT_S)


def _die_with_parent():
    """In the hub's child process (Linux): get SIGTERM if the simulator dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

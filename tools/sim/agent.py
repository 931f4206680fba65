"""Vehicle agents as Pykka actors: each VehicleAgent owns a group of simulated vehicles.

Every tick, every reply and every hub event for its vehicles arrives as a message in
the agent's inbox, and the agent runs the vehicles' decisions (``tools.sim.vehicle.Vehicle``,
sans-I/O) on its own thread, so a vehicle's state is only ever touched by one thread.
What the vehicles want sent goes to ``tools.sim.net.VehicleNet`` in one batch per message.

Why a group per actor, not an actor per vehicle: a Pykka ThreadingActor is an OS
thread. 200 vehicles as 200 actors cost 200 threads that all wake on every tick; as
groups of 25 (the default) they are 8 threads, and all 200 sockets live in VehicleNet's
one asyncio loop. ``per_agent=1`` (``evhub sim --vehicles-per-agent 1``) still gives
each vehicle its own actor. Measured on the demo (200 vehicles, 50 stations, 20 s at x60):
groups of 25 took 0.7 s of simulator CPU, an actor per vehicle 2.1 s.
"""

import logging

import pykka

from tools.sim.vehicle import DONE, Stats, Vehicle

log = logging.getLogger(__name__)


class VehicleAgent(pykka.ThreadingActor):
    """A Pykka actor owning a group of Vehicles. Messages (tuples, op first):

    ("tick", now)          time passes for every vehicle
    ("net", [events])      from VehicleNet: (vehicle id, what, tag, kind, fields)
    ("wind_down",)         end of the simulation: close the books
    ("snapshot",)          -> {"stats", "states", "positions", "settled"} (asked by the runner, not by an actor)
    """

    def __init__(self, specs, params, places, station_map, net, clock):
        super().__init__()
        self.specs = list(specs)
        self.params = params
        self.places = places
        self.station_map = station_map
        self.net = net
        self.clock = clock
        self.stats = Stats()
        self.out = []
        self.vehicles = {}

    def on_start(self):
        now = self.clock()
        for spec in self.specs:
            self.vehicles[spec.id] = Vehicle(
                spec, self.params, self.places, self.station_map, self.out, self.stats, now
            )

    def _each(self, fn):
        for v in self.vehicles.values():
            try:
                fn(v)
            except Exception as exc:  # one vehicle's bug must not stop the others
                log.exception("vehicle %s: crashed", v.id)
                v.stats.add("errors")
                v.errors.append("%s: crashed: %r" % (v.id, exc))
                v.state = DONE
                v.pending.clear()

    def on_receive(self, message):
        op = message[0]
        try:
            if op == "tick":
                now = message[1]
                self._each(lambda v: v.tick(now))
            elif op == "net":
                now = self.clock()
                for vid, what, tag, kind, fields in message[1]:
                    v = self.vehicles.get(vid)
                    if v is not None:
                        self._one(v, what, tag, kind, fields, now)
            elif op == "wind_down":
                self._each(lambda v: v.wind_down())
            elif op == "snapshot":
                return self._snapshot()
            return None
        finally:
            if self.out:
                ops = list(self.out)
                del self.out[:]
                self.net.submit(ops)

    def _one(self, v, what, tag, kind, fields, now):
        try:
            v.on_net(what, tag, kind, fields, now)
        except Exception as exc:
            log.exception("vehicle %s: crashed on %s", v.id, what)
            v.stats.add("errors")
            v.errors.append("%s: crashed: %r" % (v.id, exc))
            v.state = DONE
            v.pending.clear()

    def _snapshot(self):
        states = {}
        for v in self.vehicles.values():
            states[v.state] = states.get(v.state, 0) + 1
        stats = {k: (list(v) if isinstance(v, list) else v) for k, v in self.stats.items()}
        return {
            "stats": stats,
            "states": states,
            "positions": [(v.lat, v.lon, v.state) for v in self.vehicles.values()],
            "settled": sum(1 for v in self.vehicles.values() if v.settled),
        }

"""VehicleTracker: the last known position (and charge) of every vehicle.

Positions arrive every 60 s per vehicle, tens of thousands a second in total,
so the gateway sends them here in batches, one `tell` per loop wakeup.
"""

import logging

import pykka

log = logging.getLogger(__name__)


class VehicleTracker(pykka.ThreadingActor):
    def __init__(self):
        super().__init__()
        self.last = {}  # vehicle id -> (lat, lon, time, soc); read by the HTTP API/sim as a snapshot
        self.updates = 0

    def on_receive(self, message):
        op = message[0]
        if op == "positions":
            last = self.last
            for vehicle_id, lat, lon, when, soc in message[1]:
                last[vehicle_id] = (lat, lon, when, soc)
            self.updates += len(message[1])
        elif op == "count":
            return self.updates
        elif op == "get":
            return self.last.get(message[1])
        return None

"""A vehicle's quick charge, as the end-to-end tests drive it: reserve now, start, wait for COMPLETE."""

import time

from transport import kinds as K

QUICK_EV = {"max_kw": 50.0, "capacity_kwh": 0.05, "soc": 0.2, "target_soc": 0.9}  # 35 Wh, ~6 s at 22 kW


def charge_to_complete(vehicle, station_id, ev=QUICK_EV, timeout=30):
    """Reserve `station_id` from now for an hour (a start needs one), start a charge, return the COMPLETE event.

    `vehicle` is a connected tools.client.hubclient.HubClient; a refusal or a timeout raises HubError.
    """
    now = int(time.time())
    vehicle.request(K.RESERVE, station_id, now, now + 3600)
    vehicle.request(K.START_CHARGE, station_id, None, ev)
    return vehicle.wait_event((K.COMPLETE,), timeout=timeout)

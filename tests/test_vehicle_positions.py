"""/api/vehicles lists provisioned vehicles before they report, and last positions survive a restart."""

import time

from test_http_api import HttpHub
from tools.client.hubclient import HubClient
from transport import kinds as K


def test_provisioned_vehicles_are_listed_before_they_report_and_positions_survive_a_hub_restart(tmp_path):
    hub = HttpHub(tmp_path).start()
    try:
        token = hub.add_vehicle("V-1")
        hub.add_vehicle("V-2")
        listed = hub.wait_for("/api/vehicles", lambda b: len(b["vehicles"]) == 2)["vehicles"]
        assert [(v["id"], v["lat"], v["connected"]) for v in listed] == [("V-1", None, False), ("V-2", None, False)]
        with HubClient(hub.url, "vehicle", "V-1", token) as v:
            for i in range(50):  # many positions, one row: the last one
                v.send(K.POSITION, -12.25 - i * 0.001, -38.95, int(time.time()), 0.42)
            v.request(K.LIST_RESERVATIONS)  # a round trip: the hub has read every position before it
            hub.wait_for("/api/vehicles", lambda b: b["vehicles"][0]["lat"] == -12.299)
        assert hub.stop() == 0  # a clean stop writes what changed since the last flush
        hub.start()
        after = hub.get("/api/vehicles")["vehicles"]
        assert [(v["id"], v["lat"], v["lon"], v["soc"]) for v in after] == [
            ("V-1", -12.299, -38.95, 0.42),
            ("V-2", None, None, None),
        ]
        assert "1 last vehicle positions loaded" in hub.log()
    finally:
        hub.stop()
    assert "Traceback" not in hub.log()

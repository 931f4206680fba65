"""What a station may offer when its provisioning and its BOOT disagree.

`evhub stations add --connectors 2 --max-kw 7.4` and a charge point booting with 1 connector at
22 kW must never silently diverge: the hub logs a WARNING, shows the mismatch (dashboard, API)
and uses the SAFE values: the smaller power (never offer more than the site was provisioned for,
nor more than the station says it can deliver) and the smaller connector count (the connectors
both agree exist).
"""

import logging
from typing import Optional, TypedDict

from hub.domain.boardfloats import board_float
from hub.domain.ports import Row

log = logging.getLogger(__name__)


class Capacity(TypedDict):
    connectors: int
    max_kw: float


class Mismatch(TypedDict):
    """What the dashboard and the API show for a station whose BOOT disagrees with its provisioning."""

    provisioned: Capacity
    reported: Capacity
    used: Capacity


def reconcile(
    station_id: str, row: Optional[Row], connectors: int, max_kw: float
) -> tuple[int, float, Optional[Mismatch]]:
    """(connectors, max_kw, mismatch doc or None) for a station that booted reporting these.

    `row` is the store's provisioning row (None for a station the store does not know)."""
    if row is None:
        return connectors, max_kw, None
    prov_c, prov_kw = int(row["connectors"]), float(row["max_kw"])
    # A board reports float32: 7.4 provisioned reads back as 7.400000095..., which is no mismatch.
    same_kw = board_float(prov_kw) == max_kw or prov_kw == max_kw
    if prov_c == connectors and same_kw:
        return connectors, max_kw, None
    use_c = min(prov_c, connectors)
    use_kw = prov_kw if same_kw else min(prov_kw, max_kw)
    doc: Mismatch = {
        "provisioned": {"connectors": prov_c, "max_kw": prov_kw},
        "reported": {"connectors": connectors, "max_kw": max_kw},
        "used": {"connectors": use_c, "max_kw": use_kw},
    }
    log.warning(
        "station %s: capacity mismatch: provisioned %d connectors at %s kW, station reports %d at %s kW;"
        " using %d at %s kW (fix with `evhub stations update` or the station's config)",
        station_id,
        prov_c,
        prov_kw,
        connectors,
        max_kw,
        use_c,
        use_kw,
    )
    return use_c, use_kw, doc

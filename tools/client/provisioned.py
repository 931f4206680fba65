"""A charge point's capacity as provisioned: `evhub chargepoint` adopts it from the hub's store.

Why the CLI reads the store rather than the hub sending it: the number of connectors sizes the
firmware core's tables at boot (the board's core is shared and its connector count is not a
run-time CONFIGURE key), so it must be known before the station starts; and the README's
`evhub stations add ... --connectors 2` then `evhub chargepoint --id CP-1` run next to the hub's
./evhub.db. On a board, the bundle's config.json carries the values; if they still differ the hub
warns and uses the safe ones (hub/domain/capacity.py). The store is opened read-only and never created.
"""

from __future__ import annotations

import logging
import os

from hub.store.backend import DB_ERRORS, is_postgres, mask
from hub.store.store import Store

log = logging.getLogger(__name__)

KEYS = ("lat", "lon", "connectors", "max_kw")


def lookup(db_path: str, station_id: str) -> dict | None:
    """{lat, lon, connectors, max_kw} of `station_id` in the store at db_path, or None (no store,
    not provisioned there, or unreadable)."""
    if not is_postgres(db_path) and not os.path.isfile(db_path):
        return None
    try:
        store = Store(db_path)
        try:
            row = store.get_station(station_id)
        finally:
            store.close()
    except DB_ERRORS + (ValueError, OSError) as exc:
        log.warning("cannot read %s for %s's provisioning: %s", mask(db_path), station_id, exc)
        return None
    return None if row is None else {k: row[k] for k in KEYS}


def adopt(cfg: dict, db_path: str, station_id: str) -> str | None:
    """Fills lat/lon/connectors/max_kw missing from cfg with the provisioned values; returns a line
    saying what was adopted, or None."""
    row = lookup(db_path, station_id)
    if row is None:
        return None
    taken = [k for k in KEYS if cfg.get(k) is None]
    for k in taken:
        cfg[k] = row[k]
    if not taken:
        return None
    return "%s as provisioned in %s: %s" % (station_id, db_path, ", ".join("%s=%s" % (k, row[k]) for k in taken))

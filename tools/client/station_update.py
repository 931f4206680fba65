"""`evhub stations update ID [--lat --lon --connectors --max-kw --name]`: fix a provisioned station
in place (no new key), e.g. after a capacity mismatch warning (hub/domain/capacity.py)."""

from __future__ import annotations

import argparse
import os
import sys

from hub.store import ops as store_ops
from tools.common.exitcodes import EXIT_NOT_FOUND, EXIT_USAGE


def _fail(text: str, code: int = EXIT_USAGE) -> int:
    print("evhub stations update: %s" % text, file=sys.stderr)
    return code


def update(args: argparse.Namespace) -> int:
    from hub.store.store import Store
    from tools.client.stationrows import validate_station
    from tools.common.storepath import describe, store_exists

    if not store_exists(args.db):
        return _fail("no store at %s (--db or $EVHUB_DB)" % os.path.abspath(args.db))
    changes = {
        k: getattr(args, k) for k in ("lat", "lon", "connectors", "max_kw", "name") if getattr(args, k) is not None
    }
    if not changes:
        return _fail("nothing to change: give --lat, --lon, --connectors, --max-kw or --name")
    store = Store(args.db)
    try:
        row = store.get_station(args.id)
        if row is None:
            return _fail("station %s is not provisioned in %s" % (args.id, args.db), EXIT_NOT_FOUND)
        merged = dict(row, **changes)
        try:
            _sid, lat, lon, connectors, max_kw = validate_station(merged, "station %s" % args.id)
            name = store_ops.clean_name(merged.get("name"))
        except ValueError as exc:
            return _fail(str(exc))
        store_ops.update_station(
            store, args.id, {"lat": lat, "lon": lon, "connectors": connectors, "max_kw": max_kw, "name": name}
        )
    finally:
        store.close()
    print(
        "%s: %d connectors at %s kW, %s, %s%s" % (args.id, connectors, max_kw, lat, lon, ", %s" % name if name else "")
    )
    print(describe(args.db, True), file=sys.stderr)
    return 0

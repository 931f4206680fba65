"""`evhub stations remove`, `evhub vehicles remove|list`: account changes written to the store.

The CLI never talks to the hub for these: the store is the truth. A removal marks the row
removed (history stays), cancels its open reservations and appends a revocation the running
hub polls (hub/io/revocation.py), so the link open on that key is closed within ~1 s.
"""

import json
import sys
import time

from tools.common.exitcodes import EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE
from tools.common.storepath import store_exists


def remove(role, peer_id, db):
    from hub.store.store import Store

    prog = "evhub %ss remove" % role
    if not store_exists(db):
        print("%s: no store at %s" % (prog, db), file=sys.stderr)
        return EXIT_USAGE
    try:
        store = Store(db)
    except ValueError as exc:
        print("%s: %s" % (prog, exc), file=sys.stderr)
        return EXIT_USAGE
    try:
        cancelled = store.remove_station(peer_id) if role == "station" else store.remove_vehicle(peer_id)
    except ValueError as exc:
        print("%s: %s" % (prog, exc), file=sys.stderr)
        return EXIT_NOT_FOUND if str(exc).startswith("no ") else EXIT_CONFLICT
    finally:
        store.close()
    print(
        "%s %s removed; %d open reservation%s cancelled%s"
        % (
            role,
            peer_id,
            len(cancelled),
            "" if len(cancelled) == 1 else "s",
            "".join(" #%d" % rid for rid, _vid in cancelled),
        )
    )
    return 0


def list_vehicles(args):
    from hub.store.store import Store

    if not store_exists(args.db):
        print("evhub vehicles list: no store at %s" % args.db, file=sys.stderr)
        return EXIT_USAGE
    store = Store(args.db)
    try:
        rows = store.all_vehicles()
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("%-24s %-20s %s" % ("ID", "PROVISIONED", "REMOVED"))
    for r in rows:
        when = lambda t: "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))  # noqa: E731
        print("%-24s %-20s %s" % (r["id"], when(r["created"]), when(r["removed"])))
    return 0

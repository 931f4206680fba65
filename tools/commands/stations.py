"""`evhub stations add|import|update|list|remove`: provision charge points and see them on a running hub."""

import json
import sys

from hub.store import ops as store_ops
from tools.client import operator_auth
from tools.common.exitcodes import EXIT_CONFLICT, EXIT_USAGE
from tools.client.hubclient import HubError, hub_url
from tools.client.stationrows import read_rows, row_name, validate_station
from tools.common.storepath import DB_HELP, default_db, describe, store_exists
from transport import kinds as K


def configure(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="provision one station; prints its device key")
    a.add_argument("--id", required=True, help="station id, 1..64 characters without spaces")
    a.add_argument("--lat", type=float, required=True, help="latitude in degrees, -90..90")
    a.add_argument("--lon", type=float, required=True, help="longitude in degrees, -180..180")
    a.add_argument(
        "--connectors", type=int, default=1, help="number of connectors, 1..%d (default 1)" % K.MAX_CONNECTORS
    )
    a.add_argument("--max-kw", type=float, default=22.0, help="power limit per connector, 0.1..1000 kW (default 22)")
    a.add_argument("--name", help='place name shown on the dashboard, e.g. "Feira de Santana" (1..80 characters)')
    a.add_argument("--replace", action="store_true", help="issue a new key for an existing id")
    a.add_argument(
        "--protocol",
        choices=("evhub", "ocpp1.6"),
        default="evhub",
        help="evhub: one of our boards (default); ocpp1.6: a commercial charger joining through "
        "`evhub serve --ocpp` (its key is then a 20-character Basic-auth password)",
    )
    a.add_argument("--db", default=default_db(), help=DB_HELP)
    i = sub.add_parser("import", help="provision stations from CSV (id,lat,lon,connectors,max_kw[,name|city]) or JSON")
    i.add_argument("file", help='CSV with a header row, or JSON: a list of stations or {"stations": [...]}')
    i.add_argument("--db", default=default_db(), help=DB_HELP)
    i.add_argument("--json", action="store_true", help="print the issued keys as JSON")
    rm = sub.add_parser(
        "remove",
        help="remove a station: its key stops working, its open reservations are"
        " cancelled (a running hub closes its link within ~1 s); its history is kept",
    )
    rm.add_argument("id", help="the station id to remove")
    up = sub.add_parser(
        "update",
        help="change a provisioned station's position, capacity or name (its key stays;"
        " a running hub applies capacity when the station next boots)",
    )
    up.add_argument("id", help="the station id")
    up.add_argument("--lat", type=float, help="latitude in degrees, -90..90")
    up.add_argument("--lon", type=float, help="longitude in degrees, -180..180")
    up.add_argument("--connectors", type=int, help="number of connectors, 1..%d" % K.MAX_CONNECTORS)
    up.add_argument("--max-kw", type=float, help="power limit per connector, 0.1..1000 kW")
    up.add_argument("--name", help="place name shown on the dashboard ('' clears it)")
    up.add_argument("--db", default=default_db(), help=DB_HELP)
    rm.add_argument("--db", default=default_db(), help=DB_HELP)
    lst = sub.add_parser("list", help="stations and their live status, from a running hub")
    lst.add_argument("--hub", help="tcp://HOST:PORT (default $EVHUB_HUB or tcp://127.0.0.1:7878)")
    lst.add_argument("--json", action="store_true", help="one JSON list")
    lst.add_argument(
        "--db",
        default=default_db(),
        help="the store the hub serves: the operator key is read from DB.operator-key ($EVHUB_OPERATOR_KEY_FILE "
        "or the key in $EVHUB_OPERATOR_KEY win); when the hub cannot be reached, list what this store "
        "holds (default $EVHUB_DB, else ./evhub.db)",
    )


def run(args):
    if args.action == "list":
        return _list(args)
    if args.action == "update":
        from tools.client.station_update import update

        return update(args)
    if args.action == "remove":
        from tools.client.accounts import remove

        return remove("station", args.id, args.db)
    from hub.store.store import Store, StoreConflict

    existed = store_exists(args.db)
    try:
        if args.action == "add":
            sid, lat, lon, connectors, max_kw = validate_station(
                {"id": args.id, "lat": args.lat, "lon": args.lon, "connectors": args.connectors, "max_kw": args.max_kw}
            )
            store_ops.clean_name(args.name)  # checked before anything is written
            store = Store(args.db)
            try:
                key = None
                if args.protocol == "ocpp1.6":
                    from hub.ocpp.mapping import new_ocpp_key

                    key = new_ocpp_key()
                key = store.add_station(sid, lat, lon, connectors, max_kw, replace=args.replace, key=key)
                store_ops.set_protocol(store, sid, args.protocol)
                if args.name is not None:
                    store_ops.set_name(store, sid, args.name)
            finally:
                store.close()
            print(key)
            print(describe(args.db, existed), file=sys.stderr)
            return 0
        try:
            rows = read_rows(args.file)
        except OSError as exc:
            raise ValueError("cannot read %s: %s" % (args.file, exc.strerror)) from None
        except json.JSONDecodeError as exc:
            raise ValueError("%s is not valid JSON: %s" % (args.file, exc)) from None
        stations = [validate_station(r, "%s row %d" % (args.file, n + 1)) for n, r in enumerate(rows)]
        names = [row_name(r, "%s row %d" % (args.file, n + 1)) for n, r in enumerate(rows)]
        if not stations:
            raise ValueError("%s holds no stations" % args.file)
        store = Store(args.db)
        issued = {}
        try:
            for (sid, lat, lon, connectors, max_kw), name in zip(stations, names):
                issued[sid] = store.add_station(sid, lat, lon, connectors, max_kw)
                if name:
                    store_ops.set_name(store, sid, name)
        finally:
            store.close()
        if args.json:
            print(json.dumps(issued, indent=1))
        else:
            for sid, key in issued.items():
                print("%s %s" % (sid, key))
        print(describe(args.db, existed), file=sys.stderr)
        return 0
    except StoreConflict as exc:
        print("evhub stations %s: %s" % (args.action, exc), file=sys.stderr)
        return EXIT_CONFLICT
    except ValueError as exc:
        print("evhub stations %s: %s" % (args.action, exc), file=sys.stderr)
        return EXIT_USAGE


def fetch_stations(url, db=None):
    with operator_auth.operator_client(url, db) as client:
        _kind, fields = client.request(K.STATIONS_LIST)
    return fields[0]


def _list(args):
    url = hub_url(args.hub)
    try:
        stations = fetch_stations(url, args.db)
        live = True
    except HubError as exc:
        if exc.code is not None or not store_exists(args.db):
            print("evhub stations list: %s" % exc, file=sys.stderr)
            return exc.exit_code
        # The hub is down: what was provisioned is still worth seeing, marked as not live.
        print(
            "evhub stations list: %s; showing the %s (no live status)" % (exc, describe(args.db, True)),
            file=sys.stderr,
        )
        try:
            stations = _stored_stations(args.db)
        except ValueError as exc:  # e.g. a store other users can read (hub/secretfile.py)
            print("evhub stations list: %s" % exc, file=sys.stderr)
            return EXIT_USAGE
        live = False
    stations.sort(key=lambda s: s["id"])
    if args.json:
        print(
            json.dumps(
                [
                    dict(
                        {k: s[k] for k in ("id", "lat", "lon", "status", "free_in_min", "connectors", "max_kw")},
                        live=live,
                    )
                    for s in stations
                ],
                indent=1,
            )
        )
        return 0
    print(
        "%-12s %10s %10s  %-12s %s"
        % ("ID", "LAT", "LON", "STATUS", "FREE IN" if live else "(hub down: from the store)")
    )
    for s in stations:
        free = "" if s["free_in_min"] in (None, 0) else "%d min" % s["free_in_min"]
        print("%-12s %10.4f %10.4f  %-12s %s" % (s["id"], s["lat"], s["lon"], s["status"], free))
    return 0


def _stored_stations(db):
    from hub.store.store import Store

    store = Store(db)
    try:
        rows = store.all_stations()
    finally:
        store.close()
    return [dict(r, status="Unknown", free_in_min=None) for r in rows]

"""`evhub vehicles add --id V-1`: issue a vehicle's token (printed, and remembered for `evhub vehicle`);
`evhub vehicles remove V-1`, `evhub vehicles list`."""

import sys

from tools.client import credentials
from tools.common.exitcodes import EXIT_CONFLICT, EXIT_USAGE
from tools.common.storepath import DB_HELP, default_db, describe, store_exists


def configure(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="provision a vehicle; prints its token")
    a.add_argument("--id", required=True, help="vehicle id, 1..64 characters without spaces")
    a.add_argument("--replace", action="store_true", help="issue a new token for an existing id")
    a.add_argument(
        "--id-tag",
        action="append",
        default=[],
        metavar="TAG",
        help="an OCPP idTag (RFID card, 1..20 characters, case-insensitive) that identifies this vehicle "
        "at OCPP chargers; repeat for several",
    )
    a.add_argument("--db", default=default_db(), help=DB_HELP)
    rm = sub.add_parser(
        "remove",
        help="remove a vehicle: its token stops working, its open reservations are"
        " cancelled (a running hub closes its link within ~1 s); its history is kept",
    )
    rm.add_argument("id", help="the vehicle id to remove")
    rm.add_argument("--db", default=default_db(), help=DB_HELP)
    lst = sub.add_parser("list", help="provisioned vehicles (removed ones marked)")
    lst.add_argument("--db", default=default_db(), help=DB_HELP)
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args):

    from hub.store.store import Store, StoreConflict

    if args.action in ("remove", "list"):
        from tools.client import accounts

        return accounts.remove("vehicle", args.id, args.db) if args.action == "remove" else accounts.list_vehicles(args)

    vid = args.id.strip()
    if not vid or len(vid) > 64 or any(c.isspace() for c in vid):
        print("evhub vehicles add: id must be 1..64 characters without spaces", file=sys.stderr)
        return EXIT_USAGE
    from hub.ocpp.mapping import normal_id_tag

    try:
        tags = [normal_id_tag(t) for t in args.id_tag]
    except ValueError as exc:
        print("evhub vehicles add: --id-tag: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    existed = store_exists(args.db)
    try:
        store = Store(args.db)  # refused (one line) if other local users can read it: hub/secretfile.py
    except ValueError as exc:
        print("evhub vehicles add: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    ledger = None
    try:
        if tags:
            from hub.ocpp.ledger import Ledger

            ledger = Ledger(args.db)
            for tag in tags:  # checked before the vehicle is written: all or nothing
                holder = ledger.vehicle_for(tag)
                if holder not in (None, vid):
                    raise StoreConflict("idTag %s already belongs to vehicle %s" % (tag, holder))
        token = store.add_vehicle(vid, replace=args.replace)
        for tag in tags:
            assert ledger is not None
            ledger.add_tag(tag, vid)
    except StoreConflict as exc:
        print("evhub vehicles add: %s" % exc, file=sys.stderr)
        return EXIT_CONFLICT
    except ValueError as exc:
        print("evhub vehicles add: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
        if ledger is not None:
            ledger.close()
    print(token)  # printed first: whatever happens to the credentials file, the token is not lost
    print(describe(args.db, existed), file=sys.stderr)
    try:
        credentials.remember("vehicle", vid, token)
    except (credentials.CredentialsError, OSError) as exc:
        print("evhub vehicles add: token not saved for `evhub vehicle`: %s" % exc, file=sys.stderr)
    return 0

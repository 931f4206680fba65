"""`evhub vehicles add --id V-1`: issue a vehicle's token (printed, and remembered for `evhub vehicle`)."""

import sys

from tools import credentials
from tools.exitcodes import EXIT_CONFLICT, EXIT_USAGE
from tools.storepath import DB_HELP, default_db, describe


def configure(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="provision a vehicle; prints its token")
    a.add_argument("--id", required=True)
    a.add_argument("--replace", action="store_true", help="issue a new token for an existing id")
    a.add_argument("--db", default=default_db(), help=DB_HELP)


def run(args):
    import os

    from hub.store import Store, StoreConflict

    vid = args.id.strip()
    if not vid or len(vid) > 64 or any(c.isspace() for c in vid):
        print("evhub vehicles add: id must be 1..64 characters without spaces", file=sys.stderr)
        return EXIT_USAGE
    existed = os.path.exists(args.db)
    store = Store(args.db)
    try:
        token = store.add_vehicle(vid, replace=args.replace)
    except StoreConflict as exc:
        print("evhub vehicles add: %s" % exc, file=sys.stderr)
        return EXIT_CONFLICT
    except ValueError as exc:
        print("evhub vehicles add: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
    print(token)  # printed first: whatever happens to the credentials file, the token is not lost
    print(describe(args.db, existed), file=sys.stderr)
    try:
        credentials.remember("vehicle", vid, token)
    except (credentials.CredentialsError, OSError) as exc:
        print("evhub vehicles add: token not saved for `evhub vehicle`: %s" % exc, file=sys.stderr)
    return 0

"""How operator tools find the operator key the hub generated (hub/operatorkey.py).

In order: $EVHUB_OPERATOR_KEY (the key itself), $EVHUB_OPERATOR_KEY_FILE, else the file
next to the store: ``<db>.operator-key`` with db from --db (default ./evhub.db).
"""

import os

from hub.operatorkey import read_key
from hub.secretfile import SecretFileError, operator_key_path
from tools.hubclient import HubClient, HubError

HELP = ("the store the hub serves: the operator key is read from DB.operator-key (default ./evhub.db; "
        "or $EVHUB_OPERATOR_KEY_FILE, or the key in $EVHUB_OPERATOR_KEY)")


def operator_key(db=None):
    env = os.environ.get("EVHUB_OPERATOR_KEY")
    if env:
        return env.strip()
    path = os.environ.get("EVHUB_OPERATOR_KEY_FILE") or operator_key_path(db or "evhub.db")
    try:
        key = read_key(path)
    except SecretFileError as exc:
        raise HubError(str(exc)) from None
    if key is None:
        raise HubError("no operator key at %s: start the hub once (`evhub serve --db DB`) and pass --db DB, "
                       "or set $EVHUB_OPERATOR_KEY_FILE" % path)
    return key


def operator_client(url, db=None, timeout=10.0):
    """An (unconnected) HubClient logged in as the operator."""
    return HubClient(url, "operator", "operator", operator_key(db), timeout=timeout)

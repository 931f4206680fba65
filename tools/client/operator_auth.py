"""How operator tools find the operator key the hub generated (hub/operatorkey.py).

In order: $EVHUB_OPERATOR_KEY (the key itself), $EVHUB_OPERATOR_KEY_FILE, else the file
next to the store: ``<db>.operator-key`` with db from --db (default ./evhub.db).
"""

import os
import socket

from hub.operatorkey import read_key, stored_key
from hub.store.backend import DB_ERRORS, is_postgres, mask
from hub.secretfile import SecretFileError, operator_key_path
from tools.client.hubclient import HubClient, HubError
from transport.errors import E_AUTH_FAILED
from transport.huburl import parse_hub_url


def operator_key(db=None):
    env = os.environ.get("EVHUB_OPERATOR_KEY")
    if env:
        return env.strip()
    path = os.environ.get("EVHUB_OPERATOR_KEY_FILE") or operator_key_path(db or "evhub.db")
    try:
        key = stored_key(db) if is_postgres(db) and "EVHUB_OPERATOR_KEY_FILE" not in os.environ else read_key(path)
    except DB_ERRORS + (SecretFileError,) as exc:
        raise HubError(str(exc)) from None
    if key is None:
        if is_postgres(db):
            path = "the settings of %s" % mask(db)
        raise HubError(
            "no operator key at %s: start the hub once (`evhub serve --db DB`) and pass --db DB, "
            "or set $EVHUB_OPERATOR_KEY_FILE" % path,
            E_AUTH_FAILED,
        )
    return key


def _probe(url, timeout):
    """HubError (code None: unreachable) if nothing listens at url; an unreachable hub is said first."""
    try:
        host, port = parse_hub_url(url)
        socket.create_connection((host, port), timeout=timeout).close()
    except ValueError as exc:
        raise HubError(str(exc)) from None
    except OSError as exc:
        raise HubError("cannot reach the hub at %s: %s" % (url, exc.strerror or exc)) from None


def operator_client(url, db=None, timeout=10.0):
    """An (unconnected) HubClient logged in as the operator. Without a key: HubError saying the hub
    cannot be reached if so (callers fall back to the store then), else that the key is missing."""
    try:
        key = operator_key(db)
    except HubError:
        _probe(url, timeout)
        raise
    return HubClient(url, "operator", "operator", key, timeout=timeout)

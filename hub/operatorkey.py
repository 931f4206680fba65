"""The operator's key: what `evhub stations list` and other operator tools log in with.

Generated at the first `evhub serve` into ``<store>.operator-key`` (mode 0600, next to the
store, so whoever may read the store may be operator and nobody else). The CLI finds it
through $EVHUB_OPERATOR_KEY, $EVHUB_OPERATOR_KEY_FILE, or the store path (tools/operator.py).
Before this, the operator link took an empty key on a loopback listener: any local user,
a serial peer, or a non-loopback source in a network namespace became operator.
"""

import os

from hub.secretfile import SecretFileError, operator_key_path, write_secret
from hub.store.backend import is_postgres
from hub.store.store import new_secret

SETTING = "operator_key"


def stored_key(db_url, create=False):
    """The operator key in a PostgreSQL store's settings (made there when create), or None."""
    from hub.store.store import Store

    store = Store(db_url)
    try:
        return store.setting(SETTING, new_secret() if create else None)
    finally:
        store.close()


def read_key(path):
    """The key in ``path`` (stripped), or None if there is no such file."""
    try:
        with open(path) as f:
            key = f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretFileError("cannot read the operator key %s: %s" % (path, exc.strerror or exc)) from None
    if not key:
        raise SecretFileError("the operator key file %s is empty; remove it and restart the hub for a new one" % path)
    return key


def ensure(db_path):
    """The operator key for the store at ``db_path``, created on first use; None for :memory:.
    A PostgreSQL store keeps it in its settings table (several hubs share one key, and whoever may
    read the store's device keys may be operator, as with the file beside a SQLite store)."""
    db_path = str(db_path)
    if is_postgres(db_path):
        return stored_key(db_path, create=True)
    if db_path == ":memory:" or db_path.startswith("file:"):
        return None
    path = operator_key_path(db_path)
    key = read_key(path)
    if key is None:
        key = new_secret()
        write_secret(path, key + "\n")
    elif os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)
    return key

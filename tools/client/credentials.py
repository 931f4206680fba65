"""Where the command-line tools keep the vehicle tokens `evhub vehicles add` issued.

A JSON file in $EVHUB_CONFIG_DIR (default ~/.config/evhub), mode 0600, so
`evhub vehicle --id V-1 ...` works right after `evhub vehicles add --id V-1`
without pasting the token. --token or $EVHUB_TOKEN always win.
"""

import json
import os

from hub.secretfile import SecretFileError, write_secret


def _path():
    base = os.environ.get("EVHUB_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".config", "evhub")
    return os.path.join(base, "credentials.json")


class CredentialsError(ValueError):
    pass


def _load():
    try:
        with open(_path()) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CredentialsError("cannot read %s: %s" % (_path(), exc.strerror)) from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        # Never overwrite it: the tokens in it were printed once and may exist nowhere else.
        raise CredentialsError("%s is not a JSON object; fix or move it (its tokens are not shown again)" % _path())
    return data


def remember(role, peer_id, secret):
    data = _load()
    data["%s:%s" % (role, peer_id)] = secret
    path = _path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        write_secret(path, json.dumps(data, indent=1))  # 0600 even over an old 0644 file; no symlinks
    except SecretFileError as exc:
        raise CredentialsError(str(exc)) from None


def lookup(role, peer_id, explicit=None):
    if explicit:
        return explicit
    env = os.environ.get("EVHUB_TOKEN")
    if env:
        return env
    try:
        return _load().get("%s:%s" % (role, peer_id))
    except CredentialsError:
        return None

"""Station rows as the operator gives them (`evhub stations add|import|update`): one validation
with the one connector limit (transport.kinds.MAX_CONNECTORS), place names, CSV or JSON files.
"""

import csv
import json

from hub.store import ops as store_ops
from transport import kinds as K

FIELDS = ("id", "lat", "lon", "connectors", "max_kw")


def _given(row, key, default):
    value = row.get(key)
    return default if value is None or value == "" else value


def validate_station(row, where="station"):
    """Returns (id, lat, lon, connectors, max_kw) or raises ValueError naming the bad field."""
    try:
        sid = str(row["id"]).strip()
        lat, lon = float(row["lat"]), float(row["lon"])
        # Only a missing (or empty CSV) value takes the default; an explicit 0 is checked and refused below.
        connectors = int(_given(row, "connectors", 1))
        max_kw = float(_given(row, "max_kw", 22))
    except KeyError as exc:
        raise ValueError("%s: missing %s" % (where, exc.args[0])) from None
    except (TypeError, ValueError):
        raise ValueError("%s: lat, lon, max_kw must be numbers and connectors an integer" % where) from None
    if not sid or len(sid) > 64 or any(c.isspace() for c in sid):
        raise ValueError("%s: id must be 1..64 characters without spaces" % where)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("%s: lat must be -90..90 and lon -180..180" % where)
    if not 1 <= connectors <= K.MAX_CONNECTORS:
        raise ValueError("%s: connectors must be 1..%d" % (where, K.MAX_CONNECTORS))
    if not 0 < max_kw <= 1000:
        raise ValueError("%s: max_kw must be in (0, 1000]" % where)
    return sid, lat, lon, connectors, max_kw


def row_name(row, where):
    """A CSV/JSON row's place name: column `name`, else `city` (the sim's CSV has `city`)."""
    try:
        return store_ops.clean_name(row.get("name") or row.get("city"))
    except ValueError as exc:
        raise ValueError("%s: %s" % (where, exc)) from None


def read_rows(path):
    with open(path, newline="") as f:
        text = f.read()
    if path.lower().endswith(".json") or text.lstrip().startswith(("[", "{")):
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("stations", [])
        if not isinstance(data, list):
            raise ValueError('JSON must be a list of stations or {"stations": [...]}')
        return data
    return list(csv.DictReader(text.splitlines()))

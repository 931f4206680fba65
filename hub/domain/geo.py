"""Positions on the WGS-84 sphere: validation and great-circle distance.

Distances use the haversine formula on a sphere of the mean Earth radius. Its
error against the ellipsoid is up to ~0.5 %, far below what choosing a charger
cares about, and it is what the wire promises ("distances are haversine").
"""

import math
from typing import Any

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius

_RAD = math.pi / 180.0


def validate_position(lat: Any, lon: Any) -> tuple[float, float]:
    """Raise ValueError unless lat/lon are finite numbers in range; returns (lat, lon) as floats.

    bool is refused on purpose: True is an int in Python, and a position of (True, False)
    is always a client bug.
    """
    for name, value, limit in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("%s must be a number, got %s" % (name, type(value).__name__))
        if not math.isfinite(value):
            raise ValueError("%s must be finite, got %r" % (name, value))
        if value < -limit or value > limit:
            raise ValueError("%s must be in [-%g, %g], got %r" % (name, limit, limit, value))
    return float(lat), float(lon)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1 = lat1 * _RAD
    p2 = lat2 * _RAD
    dp = p2 - p1
    dl = (lon2 - lon1) * _RAD
    h = math.sin(dp * 0.5) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl * 0.5) ** 2
    # min() guards asin against 1.0000000000000002 for antipodal points.
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    """The point as (x, y, z) on the unit sphere.

    The squared chord between two unit vectors grows monotonically with the great-circle
    distance, so ranking by chord is exact and costs three multiplies instead of trig.
    """
    p = lat * _RAD
    l = lon * _RAD  # noqa: E741
    c = math.cos(p)
    return (c * math.cos(l), c * math.sin(l), math.sin(p))


def chord2_to_km(chord2: float) -> float:
    """Great-circle distance in km for a squared chord length on the unit sphere."""
    half = math.sqrt(chord2) * 0.5
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, half))


def angle_to_chord2(theta: float) -> float:
    """Squared chord for a central angle in radians (0..pi)."""
    s = 2.0 * math.sin(min(theta, math.pi) * 0.5)
    return s * s

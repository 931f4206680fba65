"""Positions, distances and the spatial index, checked against a brute-force scan."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from hub.domain.geo import EARTH_RADIUS_KM, haversine_km, validate_position
from hub.domain.locator import PublishedIndex, SpatialIndex


def brute(points, lat, lon, k, accept=None, max_km=None):
    out = sorted(
        (haversine_km(lat, lon, a, b), sid)
        for sid, (a, b) in points.items()
        if (accept is None or accept(sid)) and (max_km is None or haversine_km(lat, lon, a, b) <= max_km)
    )
    return out[:k]


def assert_same(got, want, points, lat, lon):
    assert len(got) == len(want)
    for (d_got, sid), (d_want, _) in zip(got, want):
        # Ties may pick different ids; the distances must match, and each id must really be that far.
        # Near the antipode haversine is ill-conditioned (asin of ~1): two evaluation orders differ by
        # ~1e-6 km at 20,015 km, hence the relative bound beside the absolute one.
        assert d_got == pytest.approx(d_want, rel=1e-9, abs=1e-6)
        assert d_got == pytest.approx(haversine_km(lat, lon, *points[sid]), rel=1e-9, abs=1e-6)


# --- geo ------------------------------------------------------------------------------------


def test_distance_between_salvador_and_feira_de_santana_is_about_93_km():
    assert haversine_km(-12.9714, -38.5014, -12.2664, -38.9663) == pytest.approx(92.6, abs=1.0)


def test_distance_across_the_antimeridian_is_short():
    assert haversine_km(0.0, 179.9, 0.0, -179.9) == pytest.approx(0.2 * math.pi / 180 * EARTH_RADIUS_KM, rel=1e-9)


def test_antipodal_points_are_half_the_circumference_apart():
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_KM)


@pytest.mark.parametrize(
    "lat, lon, fragment",
    [
        (91, 0, "lat must be in"),
        (0, -180.5, "lon must be in"),
        (float("nan"), 0, "finite"),
        (0, float("inf"), "finite"),
        ("1", 0, "number"),
        (True, 0, "number"),
        (None, 0, "number"),
    ],
)
def test_bad_positions_are_refused_with_a_clear_message(lat, lon, fragment):
    with pytest.raises(ValueError, match=fragment):
        validate_position(lat, lon)


def test_positions_on_the_edges_are_valid():
    assert validate_position(90, -180) == (90.0, -180.0)
    assert validate_position(-90, 180) == (-90.0, 180.0)


# --- index --------------------------------------------------------------------------------------

lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-180, 180, allow_nan=False)
# Points that crowd the poles and the antimeridian, where grids usually go wrong.
edgy_lats = st.one_of(lats, st.sampled_from([90.0, -90.0, 89.99, -89.97, 0.0]), st.floats(89.0, 90.0))
edgy_lons = st.one_of(lons, st.sampled_from([180.0, -180.0, 179.999, -179.95, 0.0]), st.floats(179.0, 180.0))
positions = st.tuples(edgy_lats, edgy_lons)


@settings(max_examples=300, deadline=None)
@given(
    pts=st.lists(positions, min_size=0, max_size=60),
    query=positions,
    k=st.integers(1, 8),
    cell=st.sampled_from([0.1, 1.0, 5.0, 30.0]),
    filtered=st.booleans(),
)
def test_nearest_matches_a_brute_force_scan_anywhere_on_the_globe(pts, query, k, cell, filtered):
    index = SpatialIndex(cell)
    points = {}
    for i, (lat, lon) in enumerate(pts):
        points["s%d" % i] = (lat, lon)
        index.upsert("s%d" % i, lat, lon)
    accept = (lambda sid: int(sid[1:]) % 3 == 0) if filtered else None
    got = index.nearest(query[0], query[1], k, accept)
    assert_same(got, brute(points, query[0], query[1], k, accept), points, *query)


@settings(max_examples=100, deadline=None)
@given(
    pts=st.lists(st.tuples(st.floats(-13.5, -12.0), st.floats(-39.5, -38.0)), min_size=1, max_size=200),
    query=st.tuples(st.floats(-13.5, -12.0), st.floats(-39.5, -38.0)),
    k=st.integers(1, 10),
    max_km=st.one_of(st.none(), st.floats(0.5, 80)),
)
def test_nearest_matches_brute_force_in_a_dense_region_with_a_distance_limit(pts, query, k, max_km):
    index = SpatialIndex()
    points = {}
    for i, (lat, lon) in enumerate(pts):
        points[i] = (lat, lon)
        index.upsert(i, lat, lon)
    got = index.nearest(query[0], query[1], k, max_km=max_km)
    assert_same(got, brute(points, query[0], query[1], k, max_km=max_km), points, *query)


def test_moving_and_removing_stations_changes_the_answer():
    index = SpatialIndex()
    index.upsert("A", 0.0, 0.0)
    index.upsert("B", 0.0, 1.0)
    assert index.nearest(0.0, 0.9, 1)[0][1] == "B"
    index.upsert("B", 10.0, 10.0)
    assert index.nearest(0.0, 0.9, 1)[0][1] == "A"
    assert index.remove("A") is True
    assert index.remove("A") is False
    assert [sid for _, sid in index.nearest(0.0, 0.9, 5)] == ["B"]
    assert len(index) == 1 and index.position("B") == (10.0, 10.0)


def test_filter_keeps_searching_outward_until_k_are_accepted():
    index = SpatialIndex()
    for i in range(100):
        index.upsert("near%d" % i, 0.001 * i, 0.0)  # all busy
    index.upsert("far", 3.0, 3.0)
    got = index.nearest(0.0, 0.0, 1, accept=lambda sid: sid == "far")
    assert [sid for _, sid in got] == ["far"]


def test_a_filter_that_accepts_nothing_returns_nothing_and_terminates():
    index = SpatialIndex()
    for i in range(500):
        index.upsert(i, -12 + i * 0.01, -38)
    assert index.nearest(-12, -38, 5, accept=lambda sid: False) == []


def test_query_far_from_every_station_still_finds_them():
    index = SpatialIndex(0.1)
    index.upsert("lonely", 45.0, 100.0)
    assert index.nearest(-45.0, -80.0, 3)[0][1] == "lonely"


def test_around_a_station_excludes_itself():
    index = SpatialIndex()
    index.upsert("A", 0, 0)
    index.upsert("B", 0, 0.01)
    index.upsert("C", 0, 0.05)
    assert [sid for _, sid in index.around("A", 5)] == ["B", "C"]
    assert index.around("missing", 5) == []


def test_a_frozen_snapshot_is_unaffected_by_later_changes_and_refuses_writes():
    index = SpatialIndex()
    index.upsert("A", 1, 1)
    snap = index.frozen()
    index.upsert("B", 1, 1.001)
    index.remove("A")
    assert [sid for _, sid in snap.nearest(1, 1, 5)] == ["A"]
    with pytest.raises(TypeError):
        snap.upsert("C", 0, 0)
    published = PublishedIndex()
    assert published.nearest(0, 0, 3) == []
    published.publish(index.frozen())
    assert [sid for _, sid in published.nearest(1, 1, 5)] == ["B"]


def test_bad_cell_sizes_and_positions_are_refused():
    with pytest.raises(ValueError):
        SpatialIndex(0.07)
    with pytest.raises(ValueError):
        SpatialIndex(0)
    with pytest.raises(ValueError):
        SpatialIndex().upsert("X", 95, 0)
    with pytest.raises(ValueError):
        SpatialIndex().nearest(0, 200, 1)


def test_zero_k_or_an_empty_index_returns_nothing():
    index = SpatialIndex()
    assert index.nearest(0, 0, 3) == []
    index.upsert("A", 0, 0)
    assert index.nearest(0, 0, 0) == []


@settings(max_examples=80, deadline=None)
@given(
    cluster=st.lists(st.tuples(st.floats(0.0, 0.02), st.floats(0.0, 0.02)), min_size=65, max_size=150),
    scattered=st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), max_size=30),
    query=st.tuples(st.floats(-0.2, 0.2), st.floats(-0.2, 0.2)),
    k=st.integers(1, 12),
    filtered=st.booleans(),
)
def test_a_city_dense_cell_is_searched_in_the_fine_grid_and_still_matches_brute_force(
    cluster, scattered, query, k, filtered
):
    index = SpatialIndex()
    points = {}
    for i, (lat, lon) in enumerate(cluster + scattered):
        points[i] = (lat, lon)
        index.upsert(i, lat, lon)
    accept = (lambda sid: sid % 7 == 0) if filtered else None
    got = index.nearest(query[0], query[1], k, accept)
    assert_same(got, brute(points, query[0], query[1], k, accept), points, *query)


def test_a_query_in_a_dense_cell_far_from_its_crowd_falls_back_to_the_coarse_grid():
    index = SpatialIndex()
    points = {}
    for i in range(100):
        points[i] = (0.0001 * i, 0.0001)  # a crowd in the south-west corner of cell (0..0.1, 0..0.1)
        index.upsert(i, *points[i])
    points["ne"] = (0.5, 0.5)
    index.upsert("ne", 0.5, 0.5)
    got = index.nearest(0.0999, 0.0999, 101)
    assert_same(got, brute(points, 0.0999, 0.0999, 101), points, 0.0999, 0.0999)


# --- the block cache: answers from a cell's cached block, dropped when stations change -----------


@settings(max_examples=150, deadline=None)
@given(
    pts=st.lists(st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)), min_size=1, max_size=120),
    queries=st.lists(st.tuples(st.floats(-2, 2), st.floats(-2, 2)), min_size=1, max_size=8),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["move", "add", "remove", "same"]),
            st.integers(0, 400),
            st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)),
        ),
        max_size=12,
    ),
    k=st.integers(1, 10),
    filtered=st.booleans(),
    snapshots=st.booleans(),
)
def test_cached_blocks_follow_moves_adds_and_removes(pts, queries, edits, k, filtered, snapshots):
    index = SpatialIndex()
    points = {}
    for i, (lat, lon) in enumerate(pts):
        points[i] = (lat, lon)
        index.upsert(i, lat, lon)
    accept = (lambda sid: sid % 3 != 1) if filtered else None
    reader = index.frozen() if snapshots else index
    for _ in range(2):  # the first query in a cell marks it, the second builds its block
        for lat, lon in queries:
            assert_same(reader.nearest(lat, lon, k, accept), brute(points, lat, lon, k, accept), points, lat, lon)
    assert any(type(b) is tuple for b in reader._blocks.values()), "the queries went through the block cache"
    for op, sid, pos in edits:
        if op == "remove":
            assert index.remove(sid) == (points.pop(sid, None) is not None)
        elif op == "same" and sid in points:
            assert index.upsert(sid, *points[sid]) is False  # nothing changed, nothing to drop
        else:
            index.upsert(sid, *pos)
            points[sid] = pos
    old = reader
    if snapshots:
        reader = index.frozen()  # inherits the old snapshot's blocks, minus those the edits touch
    for lat, lon in queries:
        assert_same(reader.nearest(lat, lon, k, accept), brute(points, lat, lon, k, accept), points, lat, lon)
    if snapshots and old is not reader:
        old_points = {i: p for i, p in enumerate(pts)}
        for lat, lon in queries[:2]:  # the old snapshot still answers for its own stations
            assert_same(old.nearest(lat, lon, k, accept), brute(old_points, lat, lon, k, accept), old_points, lat, lon)


@settings(max_examples=150, deadline=None)
@given(
    pts=st.lists(positions, min_size=1, max_size=40),
    queries=st.lists(positions, min_size=1, max_size=6),
    k=st.integers(1, 16),
    cell=st.sampled_from([0.1, 1.0, 5.0, 30.0]),
    max_km=st.one_of(st.none(), st.floats(1, 3000)),
)
def test_blocks_near_the_poles_and_the_antimeridian_match_brute_force(pts, queries, k, cell, max_km):
    index = SpatialIndex(cell)
    points = {}
    for i, (lat, lon) in enumerate(pts):
        points[i] = (lat, lon)
        index.upsert(i, lat, lon)
    snap = index.frozen()
    for _ in range(3):  # the first round marks the cells, the second builds their blocks, the third uses them
        for lat, lon in queries:
            got = snap.nearest(lat, lon, k, max_km=max_km)
            assert_same(got, brute(points, lat, lon, k, max_km=max_km), points, lat, lon)


def test_a_block_is_dropped_when_a_station_moves_into_it_between_snapshots():
    index = SpatialIndex()
    for i in range(200):
        index.upsert(i, -12.0 + (i % 20) * 0.05, -38.0 + (i // 20) * 0.05)
    snap = index.frozen()
    for _ in range(2):  # the second query builds the cell's block
        assert snap.nearest(-11.5, -37.5, 1)[0][1] != "new"
    index.upsert("new", -11.5, -37.5)
    index.upsert(3, -11.501, -37.5)  # a move, too
    snap2 = index.frozen()
    assert [sid for _, sid in snap2.nearest(-11.5, -37.5, 2)] == ["new", 3]
    assert snap.nearest(-11.5, -37.5, 1)[0][1] != "new"  # the old snapshot is untouched


def test_repeating_a_known_position_is_not_a_change():
    index = SpatialIndex()
    assert index.upsert("A", 1.0, 2.0) is True
    snap = index.frozen()
    snap.nearest(1.0, 2.0, 1)
    assert index.upsert("A", 1.0, 2.0) is False
    assert index.upsert("A", 1.0, 2.5) is True
    assert index.frozen().nearest(1.0, 2.5, 1)[0][0] == pytest.approx(0.0)


def test_many_changes_between_snapshots_start_the_blocks_over():
    index = SpatialIndex()
    for i in range(50):
        index.upsert(i, 0.01 * i, 0.0)
    snap = index.frozen()
    snap.nearest(0.1, 0.0, 3)
    snap.nearest(0.1, 0.0, 3)
    assert any(type(b) is tuple for b in snap._blocks.values())
    for i in range(300):
        index.upsert(i, 0.01 * i, 0.001)
    fresh = index.frozen()
    assert fresh._blocks == {}
    assert [sid for _, sid in fresh.nearest(0.1, 0.001, 1)] == [10]

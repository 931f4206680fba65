"""Nearest charge points: uniform lat/lon grids searched outward, block by block.

Why grids and not a k-d tree or an R-tree: stations are added, moved and removed
while the hub runs; a grid makes that O(cell) with no rebalancing, and a query
touches only the cells around the point, so its cost follows local density, not
the size of the network.

Cell size 0.1 degree (~11 km north-south). A vehicle asks for chargers a few km
to a few tens of km away; at regional densities of 1-10 stations per 100 km2 a
0.1-degree cell holds 1-10 stations, so k=5 is usually answered from a 3x3 block.
Smaller cells cost more empty-cell lookups in sparse regions, larger ones more
distance evaluations (tools/bench/micro/domain.py: at 1k/10k/100k stations over a 10x10
degree region 0.1 gives the flattest curve of 0.05/0.1/0.2/0.25). City centres
are far denser (thousands of points in one 0.1-degree cell), so every station is
also in a fine grid of cell/10 (~1 km); a query whose coarse cell holds more than
DENSE_CELL stations searches the fine grid first, with a small cell budget, and
falls back to the coarse grid if the fine search would wander too far.

The search keeps a block of cells [r0..r1] x [c0..c1] around the query and, after
scanning it, computes a lower bound on the distance to ANY point outside it:
  - latitude: the angular gap to the block's north/south edge (a great circle is
    never shorter than the latitude difference);
  - longitude: points at least d degrees of longitude away are no closer than the
    bounding meridian: asin(cos(lat) * sin(min(d, 90 deg))).
It stops once it holds k results no farther than that bound. The block grows on
whichever side limits the bound, so near the poles (short longitude degrees) it
widens in longitude faster. Columns wrap at the antimeridian; rows end at the
poles. If the block would visit more cells than are occupied (a query in an
ocean, or a filter that rejects nearly everything) the coarse search switches to
one pass over the occupied cells, so a query never costs more than a plain scan.

Distances are ranked by squared chord between unit vectors (exact ordering, no
trig in the inner loop) and converted to haversine km only for the results.

Block cache (the common case, k <= CACHE_MAX_K). Per coarse cell (per fine cell in
dense cells) the index keeps, built by the second query there, the tuple of every station in the
block of cells within h of it (h grown until the block holds BLOCK_TARGET stations),
sorted by Euclidean distance from the cell's centre, and T: a lower bound on the
squared chord from ANY point of the cell to any point outside the block (the same
latitude/meridian bound as above, taken at the cell's poleward edge). A query scans
that tuple in order and stops once the triangle inequality (chords are Euclidean)
says no later candidate can enter the best k: |p - x| >= |c - x| - |p - c|. The
answer is exact when the k-th result is no farther than T (or the distance limit is
within T); otherwise the grid search above answers. A change of a station drops the
blocks that could hold it (every cell within BLOCK_H_MAX of its old and new cell);
a snapshot inherits its predecessor's blocks minus those.

Threads: an index is mutated by one owner (the LocatorActor). `frozen()` returns a
read-only copy sharing the per-cell tuples (cells are immutable tuples, replaced
on change, never edited), so a snapshot costs two dict copies and readers on other
threads need no lock. `PublishedIndex` holds the latest snapshot.
"""

from __future__ import annotations

import enum
import heapq
import math
from operator import itemgetter
from typing import Callable, Final, Iterable, Optional, Sequence, Union, overload

from hub.domain.geo import EARTH_RADIUS_KM, angle_to_chord2, unit_vector, validate_position

DEFAULT_CELL_DEG = 0.1
FINE_FACTOR = 10  # fine cell = coarse cell / 10
DENSE_CELL = 64  # coarse cells fuller than this are searched in the fine grid first
FINE_BUDGET = 400  # fine cells a search may visit before it falls back to the coarse grid

_RAD = math.pi / 180.0
_HALF_PI = math.pi / 2.0
_NO_LIMIT = 5.0  # larger than any squared chord on the unit sphere (max 4)
_BOUND_SLACK = 1.0 - 1e-9  # shrink the lower bound by float noise so it stays a lower bound

_first = itemgetter(0)
_KM2 = 2.0 * EARTH_RADIUS_KM
_asin = math.asin
_sqrt = math.sqrt
CACHE_MAX_K = 16  # queries for more than this many go straight to the grid search
BLOCK_TARGET = 24  # a cell's block grows ring by ring until it holds this many stations...
BLOCK_H_MAX = 8  # ...or reaches this many cells on each side of the cell
CHANGES_MAX = 128  # more station changes than this between snapshots: start with no blocks
_CHORD_SLACK = 1e-12  # added to triangle-inequality stops: far above float noise, far below a metre


class _Mark(enum.Enum):
    """Block-cache markers, told apart from blocks by identity (an enum so mypy can too)."""

    DENSE = 1  # this coarse cell is dense: use the fine cell's block
    SEEN = 2  # queried once; the second query builds the block


_DENSE: Final = _Mark.DENSE
_SEEN: Final = _Mark.SEEN


# Station ids are str on the hub; at run time any hashable id works that orders against the others
# of its index (the heaps break distance ties by id), as the tests' int ids do.
StationId = str
Vec = tuple[float, float, float]
Entry = tuple[float, float, float, StationId]  # unit vector and id: one tuple, shared by both grids
Accept = Callable[[StationId], bool]
Heap = list[tuple[float, StationId]]  # (-squared chord, id): a max-heap of the best k so far
Result = list[tuple[float, StationId]]  # (distance_km, id), nearest first
# A cell's block: (distances of the candidates from the cell's centre, candidates, T, cx, cy, cz).
Block = tuple[tuple[float, ...], tuple[Entry, ...], float, float, float, float]
Blocks = dict[int, Union[Block, _Mark]]


def _block_keys(grid: _Grid, row: int, col: int, h: int) -> list[int]:
    """Cell keys within h rows and h columns of (row, col): rows end at the poles, columns wrap."""
    nrows, ncols = grid.nrows, grid.ncols
    rows = range(max(0, row - h), min(nrows - 1, row + h) + 1)
    cols: Sequence[int] = range(ncols) if 2 * h + 1 >= ncols else [(col + j) % ncols for j in range(-h, h + 1)]
    return [r * ncols + c for r in rows for c in cols]


def _build_block(grid: _Grid, key: int) -> Block:
    """(distances from the centre, candidates, T, cx, cy, cz) for one cell; see the module docstring."""
    cells, nrows, ncols, s = grid.cells, grid.nrows, grid.ncols, grid.cell
    row, col = divmod(key, ncols)
    seen = {key}
    entries = list(cells.get(key, ()))
    h = 0
    # At least one ring (else T is 0); stop early if the block already covers the globe.
    while (
        h < BLOCK_H_MAX
        and (h == 0 or len(entries) < BLOCK_TARGET)
        and (row - h > 0 or row + h < nrows - 1 or 2 * h + 1 < ncols)
    ):
        h += 1
        for bk in _block_keys(grid, row, col, h):
            if bk not in seen:
                seen.add(bk)
                entries.extend(cells.get(bk, ()))
    # T: no point of the cell is nearer than this to a point outside the block.
    lat_ang = math.inf
    if row - h > 0:
        lat_ang = h * s * _RAD
    if row + h < nrows - 1:
        lat_ang = min(lat_ang, h * s * _RAD)
    if 2 * h + 1 >= ncols:
        lon_ang = math.inf
    else:
        lat_lo = -90.0 + row * s
        cos_min = max(0.0, min(math.cos(lat_lo * _RAD), math.cos(min(90.0, lat_lo + s) * _RAD)))
        lon_ang = math.asin(min(1.0, cos_min * math.sin(min(h * s * _RAD, _HALF_PI))))
    bound = min(lat_ang, lon_ang)
    t2 = _NO_LIMIT if bound == math.inf else angle_to_chord2(bound) * _BOUND_SLACK
    cx, cy, cz = unit_vector(-90.0 + (row + 0.5) * s, -180.0 + (col + 0.5) * s)
    ranked = sorted(
        (
            (math.sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz)), entry)
            for entry in entries
            for x, y, z, _ in (entry,)
        ),
        key=_first,
    )  # by distance only: ids of different types are never compared
    # The grid's own entry tuples are shared, not copied: a block costs ~40 B per candidate.
    return (tuple(e for e, _ in ranked), tuple(entry for _, entry in ranked), t2, cx, cy, cz)


def _scan_block(
    block: Block, qx: float, qy: float, qz: float, k: int, accept: Optional[Accept], limit2: float
) -> Optional[Heap]:
    """The best k as a heap of (-d2, id) if the block alone decides them, else None."""
    dists, cands, t2, cx, cy, cz = block
    dx = qx - cx
    dy = qy - cy
    dz = qz - cz
    off = math.sqrt(dx * dx + dy * dy + dz * dz) + _CHORD_SLACK  # |p - c|
    sqrt = math.sqrt
    heap: Heap = []
    worst = limit2
    stop = off + sqrt(worst)
    for e, (x, y, z, sid) in zip(dists, cands):
        if e >= stop:
            break  # |p - x| >= |c - x| - |p - c| >= sqrt(worst), here and for every later candidate
        dx = x - qx
        dy = y - qy
        dz = z - qz
        d2 = dx * dx + dy * dy + dz * dz
        if d2 < worst:
            if accept is not None and not accept(sid):
                continue
            if len(heap) < k:
                heapq.heappush(heap, (-d2, sid))
                if len(heap) == k:
                    worst = -heap[0][0]
                    stop = off + sqrt(worst)
            else:
                heapq.heapreplace(heap, (-d2, sid))
                worst = -heap[0][0]
                stop = off + sqrt(worst)
    if (len(heap) == k and worst <= t2) or limit2 <= t2:
        return heap
    return None


class _Grid:
    """One resolution: cell key -> tuple of (x, y, z, station_id)."""

    __slots__ = ("cell", "inv", "nrows", "ncols", "cells")

    def __init__(self, cell_deg: float) -> None:
        nrows = int(round(180.0 / cell_deg))
        # Columns must tile 360 degrees exactly, or the wrap-around bound would be wrong.
        if nrows < 2 or abs(nrows * cell_deg - 180.0) > 1e-9:
            raise ValueError("cell size must divide 180 degrees evenly, got %r" % cell_deg)
        self.cell = cell_deg
        self.inv = 1.0 / cell_deg
        self.nrows = nrows
        self.ncols = 2 * nrows
        self.cells: dict[int, tuple[Entry, ...]] = {}

    def copy(self) -> _Grid:
        g = _Grid.__new__(_Grid)
        g.cell, g.inv, g.nrows, g.ncols = self.cell, self.inv, self.nrows, self.ncols
        g.cells = dict(self.cells)
        return g

    def row_col(self, lat: float, lon: float) -> tuple[int, int]:
        row = min(max(int((lat + 90.0) * self.inv), 0), self.nrows - 1)  # lat 90 is in the top row
        return row, int((lon + 180.0) * self.inv) % self.ncols  # lon 180 wraps to column 0

    def key(self, lat: float, lon: float) -> int:
        row, col = self.row_col(lat, lon)
        return row * self.ncols + col

    def add(self, key: int, entry: Entry) -> None:
        self.cells[key] = self.cells.get(key, ()) + (entry,)  # a new tuple: snapshots share the old

    def drop(self, key: int, station_id: StationId) -> None:
        rest = tuple(e for e in self.cells[key] if e[3] != station_id)
        if rest:
            self.cells[key] = rest
        else:
            del self.cells[key]

    # Without a budget the search always answers; with one it may give up (None).
    @overload
    def search(
        self, lat: float, lon: float, q: Vec, k: int, accept: Optional[Accept], limit2: float, budget: None
    ) -> Heap: ...
    @overload
    def search(
        self, lat: float, lon: float, q: Vec, k: int, accept: Optional[Accept], limit2: float, budget: int
    ) -> Optional[Heap]: ...
    def search(
        self,
        lat: float,
        lon: float,
        q: Vec,
        k: int,
        accept: Optional[Accept],
        limit2: float,
        budget: Optional[int],
    ) -> Optional[Heap]:
        """The best k as a heap of (-d2, id); None if more than `budget` cells would be needed
        (then, if budget is None, one pass over every occupied cell answers instead)."""
        cell, nrows, ncols = self.cell, self.nrows, self.ncols
        cos_lat = math.cos(lat * _RAD)
        qr, qc = self.row_col(lat, lon)
        r0 = r1 = qr
        c0 = c1 = qc
        heap: Heap = []
        state = [limit2]  # worst d2 in a full heap, else the distance limit
        self._scan((qr * ncols + qc,), q, heap, k, accept, state)
        visited = 1
        limit_cells = len(self.cells) if budget is None else budget
        while True:
            lat_gap = math.inf
            if r0 > 0:
                lat_gap = lat - (-90.0 + r0 * cell)
            if r1 < nrows - 1:
                lat_gap = min(lat_gap, (-90.0 + (r1 + 1) * cell) - lat)
            lat_ang = max(0.0, lat_gap) * _RAD
            if c1 - c0 + 1 >= ncols:
                lon_ang = math.inf
            else:
                gap = min(lon - (-180.0 + c0 * cell), (-180.0 + (c1 + 1) * cell) - lon)
                gap = min(max(0.0, gap) * _RAD, _HALF_PI)
                lon_ang = math.asin(min(1.0, cos_lat * math.sin(gap)))
            bound_ang = min(lat_ang, lon_ang)
            if bound_ang == math.inf:
                return heap  # the block covers the globe
            bound2 = angle_to_chord2(bound_ang) * _BOUND_SLACK
            if bound2 >= limit2 or (len(heap) == k and state[0] <= bound2):
                return heap
            if (r0 > 0 or r1 < nrows - 1) and lat_ang <= lon_ang:
                cols: Sequence[int] = range(ncols) if c1 - c0 + 1 >= ncols else [c % ncols for c in range(c0, c1 + 1)]
                rows = []
                if r0 > 0:
                    r0 -= 1
                    rows.append(r0)
                if r1 < nrows - 1:
                    r1 += 1
                    rows.append(r1)
                keys = [r * ncols + c for r in rows for c in cols]
            else:
                c0 -= 1
                new_cols = [c0 % ncols]
                if c1 - c0 + 1 < ncols:
                    c1 += 1
                    new_cols.append(c1 % ncols)
                keys = [r * ncols + c for r in range(r0, r1 + 1) for c in new_cols]
            visited += len(keys)
            if visited > limit_cells:
                if budget is not None:
                    return None
                heap = []  # sparse surroundings: one pass over what exists is cheaper
                state[0] = limit2
                self._scan(self.cells.keys(), q, heap, k, accept, state)
                return heap
            self._scan(keys, q, heap, k, accept, state)

    def _scan(
        self, keys: Iterable[int], q: Vec, heap: Heap, k: int, accept: Optional[Accept], state: list[float]
    ) -> None:
        # The hot loop: locals only; accept() only for would-be members of the best k.
        get = self.cells.get
        qx, qy, qz = q
        worst = state[0]
        push = heapq.heappush
        replace = heapq.heapreplace
        for key in keys:
            entries = get(key)
            if entries is None:
                continue
            for x, y, z, sid in entries:
                dx = x - qx
                dy = y - qy
                dz = z - qz
                d2 = dx * dx + dy * dy + dz * dz
                if d2 < worst:
                    if accept is not None and not accept(sid):
                        continue
                    if len(heap) < k:
                        push(heap, (-d2, sid))
                        if len(heap) == k:
                            worst = -heap[0][0]
                    else:
                        replace(heap, (-d2, sid))
                        worst = -heap[0][0]
        state[0] = worst


class SpatialIndex:
    """station_id -> position, with nearest-k queries. Not thread-safe; see frozen()."""

    def __init__(self, cell_deg: float = DEFAULT_CELL_DEG) -> None:
        cell_deg = float(cell_deg)
        if not (0.0 < cell_deg <= 90.0):
            raise ValueError("cell_deg must be in (0, 90], got %r" % cell_deg)
        self._coarse = _Grid(cell_deg)
        self._fine = _Grid(cell_deg / FINE_FACTOR)
        self._where: dict[
            StationId, tuple[float, float, int, int]
        ] = {}  # station_id -> (lat, lon, coarse key, fine key)
        self._frozen = False
        self._blocks: Blocks = {}  # coarse key -> block or _DENSE; ~fine key -> block (see the module docstring)
        self._changes: Optional[
            list[tuple[int, int]]
        ] = []  # (coarse key, fine key) changed since the last snapshot; None: too many
        self._last: Optional[SpatialIndex] = None  # the last snapshot, whose blocks the next one inherits

    @property
    def cell_deg(self) -> float:
        return self._coarse.cell

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, station_id: object) -> bool:
        return station_id in self._where

    def position(self, station_id: StationId) -> Optional[tuple[float, float]]:
        """(lat, lon) of a station, or None."""
        w = self._where.get(station_id)
        return None if w is None else (w[0], w[1])

    def station_ids(self) -> list[StationId]:
        return list(self._where)

    def upsert(self, station_id: StationId, lat: float, lon: float) -> bool:
        """Add a station or move it; False if it was already there. Raises ValueError on a bad position."""
        if self._frozen:
            raise TypeError("this SpatialIndex is a frozen snapshot")
        lat, lon = validate_position(lat, lon)
        w = self._where.get(station_id)
        if w is not None and w[0] == lat and w[1] == lon:
            return False  # already there (a station's every BOOT says where it is)
        self._drop(station_id)
        entry = unit_vector(lat, lon) + (station_id,)  # one tuple, shared by both grids
        ck = self._coarse.key(lat, lon)
        fk = self._fine.key(lat, lon)
        self._coarse.add(ck, entry)
        self._fine.add(fk, entry)
        self._where[station_id] = (lat, lon, ck, fk)
        self._changed(ck, fk)
        return True

    def remove(self, station_id: StationId) -> bool:
        """Forget a station; returns False if it was not there."""
        if self._frozen:
            raise TypeError("this SpatialIndex is a frozen snapshot")
        return self._drop(station_id)

    def _drop(self, station_id: StationId) -> bool:
        w = self._where.pop(station_id, None)
        if w is None:
            return False
        self._coarse.drop(w[2], station_id)
        self._fine.drop(w[3], station_id)
        self._changed(w[2], w[3])
        return True

    def _changed(self, ck: int, fk: int) -> None:
        if self._changes is not None:
            self._changes.append((ck, fk))
            if len(self._changes) > CHANGES_MAX:
                self._changes = None
        if self._blocks:
            self._drop_blocks(self._blocks, ((ck, fk),))

    def _drop_blocks(self, blocks: Blocks, changes: Optional[Sequence[tuple[int, int]]]) -> None:
        """Forget every block that may hold a station of the changed cells."""
        if changes is None or len(changes) > CHANGES_MAX:
            blocks.clear()
            return
        pop = blocks.pop
        for ck, fk in changes:
            for key in _block_keys(self._coarse, *divmod(ck, self._coarse.ncols), BLOCK_H_MAX):
                pop(key, None)
            for key in _block_keys(self._fine, *divmod(fk, self._fine.ncols), BLOCK_H_MAX):
                pop(~key, None)

    def frozen(self) -> SpatialIndex:
        """A read-only copy for other threads: dict copies only, entries are shared."""
        snap = SpatialIndex.__new__(SpatialIndex)
        snap._coarse = self._coarse.copy()
        snap._fine = self._fine.copy()
        snap._where = dict(self._where)
        snap._frozen = True
        snap._changes = snap._last = None
        # Blocks the last snapshot built (maybe still building, on a reader's thread: the copy is
        # one C call under the GIL) hold for this one too, but for those the changes since touch.
        blocks: Blocks = {} if self._last is None else dict(self._last._blocks)
        if blocks:
            self._drop_blocks(blocks, self._changes)
        snap._blocks = blocks
        self._last = snap
        self._changes = []
        return snap

    def around(
        self, station_id: StationId, k: int, accept: Optional[Accept] = None, max_km: Optional[float] = None
    ) -> Result:
        """Nearest k other stations to a station: [(distance_km, station_id)]."""
        pos = self.position(station_id)
        if pos is None:
            return []
        not_self: Accept
        if accept is None:
            not_self = lambda sid: sid != station_id  # noqa: E731
        else:
            not_self = lambda sid: sid != station_id and accept(sid)  # noqa: E731
        return self.nearest(pos[0], pos[1], k, not_self, max_km)

    def nearest(
        self, lat: float, lon: float, k: int, accept: Optional[Accept] = None, max_km: Optional[float] = None
    ) -> Result:
        """The k nearest stations as [(distance_km, station_id)], nearest first.

        accept(station_id) -> bool filters; it is called only for stations that would make
        the current best k, and the search goes on outward until k are accepted, max_km is
        passed, or the index is exhausted.
        """
        if type(lat) is not float or type(lon) is not float or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            lat, lon = validate_position(lat, lon)  # the common case is checked inline; NaN fails it too
        if k <= 0 or not self._where:
            return []
        if lon >= 180.0:
            lon -= 360.0  # one frame for the block edges
        q = unit_vector(lat, lon)
        limit2 = _NO_LIMIT if max_km is None else angle_to_chord2(max_km / EARTH_RADIUS_KM) * (1.0 + 1e-12)
        heap = None
        coarse = self._coarse
        row = int((lat + 90.0) * coarse.inv)  # coarse.key(lat, lon), inline
        if row >= coarse.nrows:
            row = coarse.nrows - 1
        ck = row * coarse.ncols + int((lon + 180.0) * coarse.inv) % coarse.ncols
        if k <= CACHE_MAX_K:
            blocks = self._blocks
            block = blocks.get(ck)
            if block is None:
                if len(coarse.cells.get(ck, ())) > DENSE_CELL:
                    block = blocks[ck] = _DENSE
                else:  # the first query in a cell only marks it: one-off cells never pay for a block
                    blocks[ck] = _SEEN
            elif block is _SEEN:
                block = blocks[ck] = _build_block(coarse, ck)
            if block is _DENSE:
                fk = self._fine.key(lat, lon)
                block = blocks.get(~fk)
                if block is None:
                    blocks[~fk] = _SEEN
                elif block is _SEEN:
                    block = blocks[~fk] = _build_block(self._fine, fk)
            if block is not None and block is not _SEEN:
                # Only coarse keys are ever marked _DENSE, so a fine cell's entry is a block here; a test
                # that let mypy see it would add work to every NEAREST.
                heap = _scan_block(block, q[0], q[1], q[2], k, accept, limit2)  # type: ignore[arg-type]
        if heap is None:
            if len(coarse.cells.get(ck, ())) > DENSE_CELL:
                heap = self._fine.search(lat, lon, q, k, accept, limit2, FINE_BUDGET)
            if heap is None:
                heap = coarse.search(lat, lon, q, k, accept, limit2, None)
        heap.sort(reverse=True)
        # chord2_to_km, inline; min(1, ..) guards asin against float noise past antipodes
        return [(_KM2 * _asin(h if (h := _sqrt(-nd2) * 0.5) < 1.0 else 1.0), sid) for nd2, sid in heap]


class PublishedIndex:
    """The latest frozen SpatialIndex, readable from any thread without a lock.

    The owner swaps `current` for a new frozen snapshot; a reader takes the reference
    once per query (an atomic attribute read) and works on an object nobody mutates.
    """

    def __init__(self, index: Optional[SpatialIndex] = None) -> None:
        self.current = index if index is not None else SpatialIndex().frozen()

    def publish(self, frozen_index: SpatialIndex) -> None:
        self.current = frozen_index

    def nearest(
        self, lat: float, lon: float, k: int, accept: Optional[Accept] = None, max_km: Optional[float] = None
    ) -> Result:
        return self.current.nearest(lat, lon, k, accept, max_km)

    def around(
        self, station_id: StationId, k: int, accept: Optional[Accept] = None, max_km: Optional[float] = None
    ) -> Result:
        return self.current.around(station_id, k, accept, max_km)

    def position(self, station_id: StationId) -> Optional[tuple[float, float]]:
        return self.current.position(station_id)

    def nearby(self, k: int = 20, max_km: Optional[float] = None) -> Callable[[StationId], Result]:
        """A `nearby(station_id) -> [(km, id)]` callable for the ReservationBook."""
        return lambda station_id: self.current.around(station_id, k, None, max_km)

    def __len__(self) -> int:
        return len(self.current)

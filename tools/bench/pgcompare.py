"""`evhub bench --scenario reserve --db postgresql://...`: the same load on SQLite and on PostgreSQL,
in one run, so the two figures are taken on the same machine at the same time.

The SQLite run is the usual throwaway file. The PostgreSQL run gets a scratch database created on
the server the URL names (CREATE DATABASE evhub_bench_<pid>, dropped afterwards), so the URL's own
database is never touched and each run starts empty. The role needs CREATEDB. Durability is the
server's: run it with fsync and synchronous_commit on for durable figures.
"""

from __future__ import annotations

from typing import Any, Callable

from hub.store.backend import mask, scratch_database


def run(opts: dict[str, Any], run_one: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Both engines, SQLite first; the result is the PostgreSQL run's, with both side by side."""
    sqlite = run_one(dict(opts, db=None))
    with scratch_database(opts["db"]) as scratch:
        pg = run_one(dict(opts, db=scratch, fresh_db=True))
    out = dict(pg)
    out["db"] = mask(opts["db"])
    keys = ("reserved_ok_per_s", "ops_per_s", "p50_ms", "p99_ms", "double_bookings", "confirmed_in_store")
    out["engines"] = {
        "sqlite": {k: sqlite.get(k) for k in keys},
        "postgresql": {k: pg.get(k) for k in keys},
    }
    return out

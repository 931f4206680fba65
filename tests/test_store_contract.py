"""One contract for the store, run against both engines: SQLite (a file) and PostgreSQL (a fresh
database on the private test cluster, tests/pgcluster.py). Every test here runs twice; where the
engines may differ (how a version is recorded) the test says so and still checks the behaviour.
PostgreSQL tests FAIL when the cluster cannot be started: they never skip."""

import logging
import os
import sqlite3
import subprocess
import sys
import threading

import psycopg
import pytest

from hub.ocpp.ledger import Ledger
from hub.store import migrations, ops
from hub.store.backend import SQLITE, DriverError, PgDialect, mask
from hub.store.reads import Reads, open_read_only
from hub.store.store import SCHEMA_VERSION, Store, StoreConflict, StoreError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "hub.db")
    return request.getfixturevalue("pg_database")


@pytest.fixture
def store(url):
    s = Store(url)
    yield s
    s.close()


def _raw(url):
    """A plain connection on the store's database, beside the Store (for setting up old schemas)."""
    if url.startswith("postgresql://"):
        return psycopg.connect(url, autocommit=True), PgDialect()
    return sqlite3.connect(url, isolation_level=None), SQLITE


def _set_version(conn, url, version):
    if url.startswith("postgresql://"):
        conn.execute("CREATE TABLE IF NOT EXISTS evhub_schema (one INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
        conn.execute("DELETE FROM evhub_schema")
        conn.execute("INSERT INTO evhub_schema VALUES (1, %s)", (version,))
    else:
        conn.execute("PRAGMA user_version=%d" % version)


# --- migrations ---------------------------------------------------------------------------------


def test_a_new_store_is_migrated_to_the_latest_version_and_says_so(url, caplog):
    with caplog.at_level(logging.INFO, logger="hub.store.store"):
        s = Store(url)
    try:
        assert s.schema_version == SCHEMA_VERSION == migrations.LATEST
        assert s.pending() == []
        assert "store: migrated from version 0 to %d" % SCHEMA_VERSION in caplog.text
    finally:
        s.close()


def test_reopening_a_current_store_migrates_nothing(url, caplog):
    Store(url).close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hub.store.store"):
        Store(url).close()
    assert "migrated" not in caplog.text


def test_an_old_store_at_version_1_is_upgraded_in_place_and_keeps_its_rows(url, caplog):
    conn, dialect = _raw(url)
    try:
        if dialect is SQLITE:
            conn.execute("BEGIN")
        migrations.apply(conn if dialect is SQLITE else _Adapter(conn, dialect), dialect, 0, target=1)
        _set_version(conn, url, 1)
        if dialect is SQLITE:
            conn.execute("COMMIT")
        conn.execute("INSERT INTO vehicles (id, token, created) VALUES ('V-OLD', 'tok', 1)")
    finally:
        conn.close()
    if dialect is SQLITE:
        import os

        os.chmod(url, 0o600)
    with caplog.at_level(logging.INFO, logger="hub.store.store"):
        s = Store(url)
    try:
        assert "store: migrated from version 1 to %d" % SCHEMA_VERSION in caplog.text
        assert s.schema_version == SCHEMA_VERSION
        assert s.get_vehicle_token("V-OLD") == "tok"
        assert s.remove_vehicle("V-OLD") == [] and s.get_vehicle_token("V-OLD") is None  # migration 2's column
    finally:
        s.close()


class _Adapter:
    """psycopg with `?` placeholders, as migrations.apply expects of a store connection."""

    def __init__(self, conn, dialect):
        self.conn, self.dialect = conn, dialect

    def execute(self, sql, params=None):
        return self.conn.execute(self.dialect.sql(sql), params)


def test_a_version_7_postgresql_store_keeps_refusing_overlaps_once_its_constraint_keys_on_station_numbers(
    pg_database, caplog
):
    url = pg_database
    conn, dialect = _raw(url)
    try:
        with conn.transaction():
            migrations.apply(_Adapter(conn, dialect), dialect, 0, target=7)
            _set_version(conn, url, 7)
        conn.execute(
            "INSERT INTO stations (id, key, lat, lon, connectors, max_kw, created) VALUES ('CP-1', 'k', 1, 1, 1, 22, 0)"
        )
        conn.execute(
            'INSERT INTO reservations (vehicle_id, station_id, connector, start, "end", state, created, updated)'
            " VALUES ('V-1', 'CP-1', 1, 1000, 2000, 'confirmed', 0, 0)"
        )
    finally:
        conn.close()
    with caplog.at_level(logging.INFO, logger="hub.store.store"):
        s = Store(url)
    try:
        assert "store: migrated from version 7 to %d" % SCHEMA_VERSION in caplog.text
        s.add_station("CP-2", 1, 1, 1, 22)
        out = s.insert_reservations([("V-2", "CP-1", 1, 1500, 2500), ("V-3", "CP-2", 1, 1500, 2500)])
        assert isinstance(out[0], StoreConflict), "the old row's window is still defended"
        assert isinstance(out[1], int), "another station's equal window is not a conflict"
        again = s.insert_reservations([("V-4", "CP-2", 1, 2400, 2600)])
        assert isinstance(again[0], StoreConflict), "a station added after the migration is defended too"
    finally:
        s.close()


def test_a_store_newer_than_the_code_is_refused_with_a_clear_error(url):
    Store(url).close()
    conn, _dialect = _raw(url)
    try:
        _set_version(conn, url, SCHEMA_VERSION + 1)
    finally:
        conn.close()
    with pytest.raises(
        StoreError, match="schema version %d; this hub knows up to %d" % (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    ):
        Store(url)


def test_a_store_opened_without_migrating_lists_what_is_pending(url):
    if not url.startswith("postgresql://"):
        sqlite3.connect(url).close()
        import os

        os.chmod(url, 0o600)
    s = Store(url, migrate=False)
    try:
        assert s.schema_version == 0
        assert [n for n, _what in s.pending()] == [n for n, _w, _s in migrations.MIGRATIONS]
    finally:
        s.close()


# --- stations, vehicles, revocations --------------------------------------------------------------


def test_a_station_is_read_back_without_its_key_and_a_second_add_is_a_conflict(store):
    key = store.add_station("CP-1", 38.72, -9.14, 2, 22)
    assert store.get_station_key("CP-1") == key and len(key) == 32
    row = store.get_station("CP-1")
    assert row["lat"] == pytest.approx(38.72, abs=1e-9) and row["connectors"] == 2 and "key" not in row
    with pytest.raises(StoreConflict):
        store.add_station("CP-1", 1, 1, 1, 1)
    assert store.station_count() == 1 and [s["id"] for s in store.all_stations()] == ["CP-1"]


def test_replacing_a_station_issues_a_new_key_and_records_a_revocation(store):
    old = store.add_station("CP-1", 1, 1, 1, 22)
    new = store.add_station("CP-1", 1, 1, 1, 22, replace=True)
    assert new != old and store.get_station_key("CP-1") == new
    assert store.revocations_after(0, 10) == [(1, "station", "CP-1", "key replaced")]
    assert store.last_revocation() == 1 and store.revocations_after(1, 10) == []


def test_a_removed_vehicle_loses_its_token_and_its_open_reservations(store):
    store.add_station("CP-1", 1, 1, 1, 22)
    assert store.get_vehicle_token("V-1") is None
    token = store.add_vehicle("V-1")
    assert store.get_vehicle_token("V-1") == token
    (rid,) = store.insert_reservations([("V-1", "CP-1", 1, 100, 200)])
    assert store.remove_vehicle("V-1") == [(rid, "V-1")]
    assert store.get_vehicle_token("V-1") is None and store.get_reservation(rid)["state"] == "cancelled"
    with pytest.raises(StoreConflict):
        store.remove_vehicle("V-1")
    assert [v["id"] for v in store.all_vehicles()] == ["V-1"]


def test_bad_station_values_are_refused_with_a_store_error(store):
    for args in (("", 1, 1, 1, 1), ("CP", 91, 1, 1, 1), ("CP", 1, 1, 0, 1), ("CP", 1, 1, 1, 0)):
        with pytest.raises(StoreError):
            store.add_station(*args)
    assert store.station_count() == 0


# --- reservations -----------------------------------------------------------------------------------


def test_a_batch_of_reservations_is_stored_in_order_and_loads_back(store):
    store.add_station("CP-1", 1, 1, 2, 22)
    ids = store.insert_reservations([("V-1", "CP-1", 1, 100, 200), ("V-2", "CP-1", 2, 100, 200)])
    assert all(type(i) is int for i in ids) and ids == sorted(ids)
    assert [(r["id"], r["vehicle_id"], r["connector"]) for r in store.load_open_reservations()] == [
        (ids[0], "V-1", 1),
        (ids[1], "V-2", 2),
    ]
    assert store.load_open_reservations("CP-2") == []


def test_a_batch_with_a_row_naming_no_station_writes_nothing(store):
    store.add_station("CP-1", 1, 1, 2, 22)
    with pytest.raises(Exception) as info:
        store.insert_reservations([("V-1", "CP-1", 1, 100, 200), ("V-2", "NO-SUCH", 1, 100, 200)])
    assert not isinstance(info.value, StoreConflict)
    assert store.load_open_reservations() == []


def test_an_overlapping_window_on_one_connector_is_a_store_conflict_and_the_rest_is_stored(store):
    store.add_station("CP-1", 1, 1, 2, 22)
    first = store.insert_reservations([("V-1", "CP-1", 1, 1000, 2000)])
    out = store.insert_reservations(
        [("V-2", "CP-1", 1, 1500, 2500), ("V-3", "CP-1", 2, 1500, 2500), ("V-4", "CP-1", 1, 1999, 2001)]
    )
    assert isinstance(out[0], StoreConflict) and type(out[1]) is int and isinstance(out[2], StoreConflict)
    assert sorted(r["id"] for r in store.load_open_reservations()) == sorted([first[0], out[1]])


def test_back_to_back_windows_do_not_conflict_and_a_cancelled_window_frees_the_connector(store):
    store.add_station("CP-1", 1, 1, 1, 22)
    (a,) = store.insert_reservations([("V-1", "CP-1", 1, 1000, 2000)])
    b, c = store.insert_reservations([("V-2", "CP-1", 1, 2000, 3000), ("V-3", "CP-1", 1, 500, 1000)])
    assert type(b) is int and type(c) is int
    assert store.update_reservation_state(a, "cancelled") is True
    (d,) = store.insert_reservations([("V-4", "CP-1", 1, 1200, 1800)])
    assert type(d) is int


def test_a_request_id_books_once_per_vehicle(store):
    store.add_station("CP-1", 1, 1, 2, 22)
    (rid,) = store.insert_reservations([("V-1", "CP-1", 1, 100, 200, "req-1")])
    again = store.insert_reservations([("V-1", "CP-1", 2, 300, 400, "req-1")])
    assert isinstance(again[0], StoreConflict)
    assert store.reservation_for_request("V-1", "req-1") == {
        "reservation_id": rid,
        "station_id": "CP-1",
        "connector": 1,
        "start": 100,
        "end": 200,
        "state": "confirmed",
    }
    (other,) = store.insert_reservations([("V-2", "CP-1", 2, 100, 200, "req-1")])  # another vehicle's key
    assert type(other) is int and store.reservation_for_request("V-3", "req-1") is None


def test_reservation_states_change_in_one_call_and_a_bad_state_is_refused(store):
    store.add_station("CP-1", 1, 1, 2, 22)
    a, b = store.insert_reservations([("V-1", "CP-1", 1, 100, 200), ("V-2", "CP-1", 2, 100, 200)])
    assert store.update_reservation_states([(a, "expired"), (b, "fulfilled")]) == 2
    assert store.update_reservation_state(999999, "cancelled") is False
    with pytest.raises(StoreError):
        store.update_reservation_state(a, "bogus")
    assert store.load_open_reservations() == []
    assert store.totals()["reservation_states"] == {"expired": 1, "fulfilled": 1}


def test_a_moved_reservation_keeps_its_window_on_its_new_connector(store):
    store.add_station("CP-1", 1, 1, 2, 22)
    (rid,) = store.insert_reservations([("V-1", "CP-1", 2, 100, 200)])
    store.move_reservations([(rid, 1)])
    row = store.get_reservation(rid)
    assert (row["connector"], row["start"], row["end"]) == (1, 100, 200)
    assert store.vehicle_reservations("V-1") == [
        {"reservation_id": rid, "station_id": "CP-1", "connector": 1, "start": 100, "end": 200, "state": "confirmed"}
    ]


# --- sessions and remote starts -----------------------------------------------------------------------


def test_a_session_is_recorded_once_from_start_to_end(store):
    store.add_station("CP-1", 1, 1, 1, 22)
    assert store.record_session_start("S-1", "CP-1", 1, "V-1", None, 1000, 100) is True
    assert store.record_session_start("S-1", "CP-1", 1, "V-1", None, 1000, 100) is False  # replay
    assert [s["session_id"] for s in store.load_open_sessions()] == ["S-1"]
    assert store.record_session_end("S-1", "CP-1", 1, "V-1", None, 7000, 100, 900, "local") is True
    assert store.record_session_end("S-1", "CP-1", 1, "V-1", None, 7000, 100, 900, "local") is False
    row = store.get_session("S-1")
    assert (row["energy_wh"], row["ended"], row["reason"], row["implausible"]) == (7000, 900, "local", 0)
    assert store.load_open_sessions() == []
    assert store.vehicle_sessions("V-1")[0]["energy_wh"] == 7000
    t = store.totals()
    assert (t["sessions_ended"], t["energy_wh"], t["end_reasons"], t["sessions_open"]) == (1, 7000, {"local": 1}, 0)


def test_a_session_whose_start_never_arrived_is_recorded_whole_from_its_end(store):
    store.add_station("CP-1", 1, 1, 1, 22)
    assert store.record_session_end("S-2", "CP-1", 1, None, None, 500, 10, 20, "ev", "V-9", True) is True
    row = store.get_session("S-2")
    assert (row["started"], row["ended"], row["claimed_vehicle_id"], row["implausible"]) == (10, 20, "V-9", 1)


def test_a_remote_start_attributes_exactly_one_session(store):
    store.add_station("CP-1", 1, 1, 1, 22)
    grant = store.add_remote_start("CP-1", "V-1", 7, 100)
    assert type(grant) is int
    assert store.take_remote_start("CP-1", "V-1", "S-1", 50) == (True, 7)
    assert store.take_remote_start("CP-1", "V-1", "S-2", 50) == (False, None)
    other = store.add_remote_start("CP-1", "V-1", None, 200)
    store.drop_remote_start(other)
    assert store.take_remote_start("CP-1", "V-1", "S-3", 50) == (False, None)
    store.record_session_start("S-1", "CP-1", 1, "V-1", 7, 0, 100)
    assert store.reservation_billed(7, "S-9") is True and store.reservation_billed(7, "S-1") is False


# --- settings, operators' writes, the OCPP ledger, readers ------------------------------------------------


def test_a_setting_is_stored_by_the_first_writer_and_read_by_every_store(url):
    a, b = Store(url), Store(url)
    try:
        assert a.setting("operator_key", "first") == "first"
        assert b.setting("operator_key", "second") == "first"
        assert b.setting("nothing") is None
    finally:
        a.close()
        b.close()


def test_station_names_protocols_and_vehicle_positions_round_trip(store):
    store.add_station("CP-1", 1, 1, 1, 22)
    ops.set_names(store, [("CP-1", "  Feira   de Santana ")])
    ops.set_protocol(store, "CP-1", "ocpp1.6")
    assert store.get_station("CP-1")["name"] == "Feira de Santana"
    assert ops.station_protocol(store, "CP-1") == "ocpp1.6" and ops.station_protocol(store, "CP-X") is None
    assert ops.update_station(store, "CP-1", {"connectors": 2, "lat": 2.5}) is True
    assert store.get_station("CP-1")["connectors"] == 2
    assert ops.save_positions(store, [("V-1", 1.5, 2.5, 10, None)]) == 1
    ops.save_positions(store, [("V-1", 3.5, 4.5, 20, 0.5)])
    assert ops.load_positions(store) == [("V-1", 3.5, 4.5, 20, 0.5)]


def test_the_ocpp_ledger_records_a_transaction_once_and_keeps_id_tags(url):
    Store(url).close()
    ledger = Ledger(url)
    try:
        tx, new = ledger.start("CP-1", 1, "TAG", "V-1", None, 100, 1000)
        again, new2 = ledger.start("CP-1", 1, "TAG", "V-1", None, 100, 1000)
        assert new is True and new2 is False and again.transaction_id == tx.transaction_id
        assert ledger.stop(tx.transaction_id, 900, 2000, "Local") is True
        assert ledger.stop(tx.transaction_id, 900, 2000, "Local") is False
        assert ledger.get(tx.transaction_id).meter_stop == 900
        ledger.add_tag("card-1", "V-1")
        assert ledger.vehicle_for("CARD-1") == "V-1"
        with pytest.raises(ValueError):
            ledger.add_tag("card-1", "V-2")
        assert ledger.tag_for("V-1") == "CARD-1"
    finally:
        ledger.close()


def test_the_read_only_readers_see_what_the_store_wrote(store, url):
    store.add_station("CP-1", 1, 1, 1, 22)
    (rid,) = store.insert_reservations([("V-1", "CP-1", 1, 100, 200)])
    store.record_session_end("S-1", "CP-1", 1, "V-1", rid, 500, 100, 200, "ev")
    db = open_read_only(url)
    try:
        assert [r["id"] for r in Reads.reservations_since(db, since=150)] == [rid]
        assert [r["session_id"] for r in Reads.session_history(db, station_id="CP-1")] == ["S-1"]
        assert Reads.reservation_states(db) == {"confirmed": 1}
        assert Reads.station_exists(db, "CP-1") and not Reads.station_exists(db, "CP-2")
        with pytest.raises(Exception):  # read-only: a reader never writes
            db.execute("DELETE FROM sessions")
    finally:
        db.close()


# --- concurrent writers ------------------------------------------------------------------------------------


def test_two_stores_racing_for_one_window_never_both_win(url):
    Store(url).close()
    setup = Store(url)
    setup.add_station("CP-1", 1, 1, 1, 22)
    setup.close()
    rounds, wins = 20, []
    for n in range(rounds):
        stores = [Store(url, shared=True), Store(url, shared=True)]  # each used by one racing thread
        barrier = threading.Barrier(2)
        out = [None, None]

        def book(i):
            barrier.wait(timeout=10)
            out[i] = stores[i].insert_reservations([("V-%d" % i, "CP-1", 1, 10000 * n, 10000 * n + 500)])[0]

        threads = [threading.Thread(target=book, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        for s in stores:
            s.close()
        wins.append(sum(type(o) is int for o in out))
        assert sum(isinstance(o, StoreConflict) for o in out) == 2 - wins[-1]
    assert wins == [1] * rounds


def test_two_books_on_one_database_fill_the_connectors_and_then_offer_alternatives(url):
    """What two hubs on one PostgreSQL do: each book decides from its own memory, the database
    refuses the second writer of a connector, and that book moves to the next free one or answers a
    conflict with alternatives."""
    from hub.domain.booking import ReservationBook

    Store(url).close()
    s1, s2, s3 = Store(url), Store(url), Store(url)
    try:
        s1.add_station("CP-1", 1, 1, 2, 22)
        books = [ReservationBook(s) for s in (s1, s2, s3)]
        for b in books:
            b.load()
        now = 1_000_000
        window = (now + 3600, now + 7200)
        r1 = books[0].reserve("V-1", "CP-1", *window, now)
        r2 = books[1].reserve("V-2", "CP-1", *window, now)  # its memory says connector 1 is free
        r3 = books[2].reserve("V-3", "CP-1", *window, now)
        assert r1.ok and r2.ok and {r1.reservation.connector, r2.reservation.connector} == {1, 2}
        assert not r3.ok and r3.alternatives and "fully booked" in r3.reason
        assert len(s1.load_open_reservations("CP-1")) == 2
    finally:
        for s in (s1, s2, s3):
            s.close()


# --- URLs ------------------------------------------------------------------------------------------------


def test_a_password_in_a_postgresql_url_never_reaches_logs_or_errors(pg_cluster):
    assert mask("postgresql://evhub:s3cret@db.example/evhub") == "postgresql://evhub:***@db.example/evhub"
    assert "s3cret" not in mask("postgresql://evhub@/x?host=/tmp&password=s3cret")
    with pytest.raises(DriverError) as info:
        Store("postgresql://evhub:s3cret@/no_such_db?host=%s" % pg_cluster.base)
    assert "s3cret" not in str(info.value) and "no_such_db" in str(info.value)


def test_a_hub_on_sqlite_never_loads_the_postgresql_driver(tmp_path):
    """psycopg costs ~20 MB of resident memory: only a postgresql:// store may import it."""
    script = (
        "import sys\n"
        "from hub.daemon import Hub\n"
        "from hub.store.store import Store\n"
        "from hub.store.reads import open_read_only\n"
        "import tools.cli, tools.commands.serve, tools.commands.stations, tools.sim.run\n"
        "s = Store(sys.argv[1]); s.add_station('CP-1', 1, 1, 1, 22); s.close()\n"
        "open_read_only(sys.argv[1]).execute('SELECT 1')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "hub.db")], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_sqlite_url_names_the_same_file_as_the_path(tmp_path):
    path = str(tmp_path / "x.db")
    s = Store("sqlite://" + path)  # sqlite:///tmp/.../x.db
    try:
        s.add_station("CP-1", 1, 1, 1, 22)
    finally:
        s.close()
    s = Store(path)
    try:
        assert s.get_station("CP-1") is not None
    finally:
        s.close()


# --- the command line --------------------------------------------------------------------------------------


def test_db_check_lists_pending_migrations_and_db_migrate_applies_them(url, tmp_path):
    from hubproc import evhub

    if not url.startswith("postgresql://"):
        import os

        sqlite3.connect(url).close()  # an empty SQLite file: version 0
        os.chmod(url, 0o600)
    res = evhub("db", "check", "--db", url, cwd=str(tmp_path), check=False)
    assert res.returncode == 1 and "schema version 0, this evhub knows %d" % SCHEMA_VERSION in res.stdout
    assert "pending migration 1: stations, vehicles, reservations, sessions" in res.stdout
    res = evhub("db", "migrate", "--db", url, cwd=str(tmp_path))
    assert "migrated from version 0 to %d" % SCHEMA_VERSION in res.stdout
    res = evhub("db", "check", "--db", url, cwd=str(tmp_path))
    assert "pending migration" not in res.stdout and "Traceback" not in res.stderr


def test_db_check_on_an_unreachable_postgresql_says_so_in_one_line_without_the_password(pg_cluster, tmp_path):
    from hubproc import evhub

    bad = "postgresql://evhub:s3cret@/no_such_db?host=%s" % pg_cluster.base
    res = evhub("db", "check", "--db", bad, cwd=str(tmp_path), check=False)
    assert res.returncode == 1 and "no_such_db" in res.stderr
    assert "s3cret" not in res.stderr + res.stdout and "Traceback" not in res.stderr


def test_a_sqlite_store_from_before_numbered_migrations_is_upgraded_without_losing_a_row(tmp_path, caplog):
    """Before numbered migrations a store said user_version 1 and gained its later columns and tables
    on every open; its version now says 1 while it already has what migrations 2..5 add."""
    import os

    path = str(tmp_path / "pre.db")
    con = sqlite3.connect(path, isolation_level=None)
    migrations.apply(con, SQLITE, 0, target=5)
    con.execute("PRAGMA user_version=1")
    con.execute(
        "INSERT INTO stations (id, key, lat, lon, connectors, max_kw, created) VALUES ('CP-1', 'k', 1, 1, 1, 22, 1)"
    )
    con.execute(
        'INSERT INTO reservations (vehicle_id, station_id, connector, start, "end", state, created, updated, request_id)'
        " VALUES ('V-1', 'CP-1', 1, 100, 200, 'confirmed', 1, 1, 'req')"
    )
    con.close()
    os.chmod(path, 0o600)
    with caplog.at_level(logging.INFO, logger="hub.store.store"):
        s = Store(path)
    try:
        assert "store: migrated from version 1 to %d" % SCHEMA_VERSION in caplog.text
        assert s.get_station_key("CP-1") == "k" and s.reservation_for_request("V-1", "req")["start"] == 100
        assert isinstance(s.insert_reservations([("V-2", "CP-1", 1, 150, 250)])[0], StoreConflict)  # migration 7
    finally:
        s.close()


def test_a_postgresql_store_whose_connection_was_dropped_fails_once_then_reconnects(pg_database):
    from hub.store.backend import DB_ERRORS

    s = Store(pg_database)
    try:
        s.add_station("CP-1", 1, 1, 1, 22)
        pid = s._db.raw.info.backend_pid
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(DB_ERRORS):  # the call that meets the dropped connection says so
            s.insert_reservations([("V-1", "CP-1", 1, 100, 200)])
        assert type(s.insert_reservations([("V-1", "CP-1", 1, 100, 200)])[0]) is int  # the next one reconnects
        assert s.get_station("CP-1") is not None and s._db.raw.info.backend_pid != pid
    finally:
        s.close()

"""The SQLite store: durability settings, keys, reservations, idempotent sessions."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest

from hub.store.store import SCHEMA_VERSION, Store, StoreError


def test_the_store_runs_in_wal_mode_with_full_sync_and_foreign_keys(store):
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 2  # FULL
    assert store.pragma("foreign_keys") == 1
    assert store.schema_version == SCHEMA_VERSION


def test_a_new_station_gets_a_random_32_hex_key(store):
    k1 = store.add_station("CP-1", -12.2664, -38.9663, 2, 22)
    k2 = store.add_station("CP-2", -12.2664, -38.9663, 2, 22)
    assert re.fullmatch(r"[0-9a-f]{32}", k1) and k1 != k2
    assert store.get_station_key("CP-1") == k1
    assert store.get_station_key("nope") is None
    assert store.get_station("CP-1") == {
        "id": "CP-1",
        "lat": -12.2664,
        "lon": -38.9663,
        "connectors": 2,
        "max_kw": 22.0,
        "created": store.get_station("CP-1")["created"],
        "name": None,
    }
    assert [s["id"] for s in store.all_stations()] == ["CP-1", "CP-2"]


def test_re_adding_a_station_is_refused_unless_replaced_which_issues_a_new_key(store):
    k1 = store.add_station("CP-1", 1, 1, 1, 7.4)
    with pytest.raises(StoreError, match="already exists"):
        store.add_station("CP-1", 1, 1, 1, 7.4)
    store.insert_reservations([("v1", "CP-1", 1, 100, 200)])
    k2 = store.add_station("CP-1", 2, 2, 4, 50, replace=True)
    assert k2 != k1 and store.get_station_key("CP-1") == k2
    assert store.get_station("CP-1")["connectors"] == 4
    assert len(store.load_open_reservations()) == 1  # reservations survive re-provisioning


@pytest.mark.parametrize(
    "args", [("", 0, 0, 1, 1), ("X", 91, 0, 1, 1), ("X", 0, 0, 0, 1), ("X", 0, 0, 1, 0), ("X", 0, 0, True, 1)]
)
def test_bad_station_records_are_refused_as_value_errors(store, args):
    with pytest.raises(ValueError):
        store.add_station(*args)


def test_vehicles_get_tokens_and_duplicates_are_refused(store):
    t = store.add_vehicle("EV-1")
    assert re.fullmatch(r"[0-9a-f]{32}", t) and store.get_vehicle_token("EV-1") == t
    with pytest.raises(StoreError):
        store.add_vehicle("EV-1")
    assert store.add_vehicle("EV-1", replace=True) != t
    assert store.get_vehicle_token("EV-2") is None


def test_reservations_are_inserted_in_one_batch_and_their_states_change(store):
    store.add_station("CP-1", 1, 1, 2, 22)
    ids = store.insert_reservations([("v1", "CP-1", 1, 100, 200), ("v2", "CP-1", 2, 100, 200)])
    assert ids == sorted(ids) and len(set(ids)) == 2
    assert store.update_reservation_state(ids[0], "cancelled") is True
    assert store.update_reservation_state(999, "cancelled") is False
    with pytest.raises(StoreError):
        store.update_reservation_state(ids[1], "bogus")
    assert [r["id"] for r in store.load_open_reservations()] == [ids[1]]
    assert store.get_reservation(ids[0])["state"] == "cancelled"


def test_a_batch_with_one_bad_row_writes_nothing(store):
    store.add_station("CP-1", 1, 1, 2, 22)
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_reservations([("v1", "CP-1", 1, 100, 200), ("v2", "NO-SUCH-STATION", 1, 100, 200)])
    assert store.load_open_reservations() == []


def test_reservations_and_keys_survive_reopening(db):
    s = Store(db)
    key = s.add_station("CP-1", 1, 1, 1, 22)
    rid = s.insert_reservations([("v1", "CP-1", 1, 100, 200)])[0]
    s.close()
    s = Store(db)
    assert s.get_station_key("CP-1") == key
    assert [r["id"] for r in s.load_open_reservations()] == [rid]
    s.close()


def test_a_committed_reservation_survives_kill_9_of_its_process(db):
    Store(db).close()
    child = (
        "import os, signal, sys\n"
        "from hub.store.store import Store\n"
        "s = Store(sys.argv[1])\n"
        "s.add_station('CP-9', 1, 1, 1, 22)\n"
        "print(s.insert_reservations([('v9', 'CP-9', 1, 100, 200)])[0], flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", child, db], capture_output=True, text=True, cwd=root, timeout=30)
    assert proc.returncode == -signal.SIGKILL
    rid = int(proc.stdout.strip())
    s = Store(db)
    assert s.get_reservation(rid)["vehicle_id"] == "v9"
    s.close()


def test_session_start_and_end_are_idempotent_by_session_id(store):
    store.add_station("CP-1", 1, 1, 1, 22)
    assert store.record_session_start("S1", "CP-1", 1, "v1", None, 1000, 50) is True
    assert store.record_session_start("S1", "CP-1", 1, "v1", None, 1000, 50) is False
    assert [s["session_id"] for s in store.load_open_sessions()] == ["S1"]
    assert store.record_session_end("S1", "CP-1", 1, "v1", None, 7000, 50, 90, "Complete") is True
    assert store.record_session_end("S1", "CP-1", 1, "v1", None, 9999, 50, 95, "Local") is False
    row = store.get_session("S1")
    assert (row["energy_wh"], row["ended"], row["reason"], row["meter_start_wh"]) == (7000, 90, "Complete", 1000)
    assert store.load_open_sessions() == []


def test_a_session_end_without_its_start_is_recorded_whole(store):
    store.add_station("CP-1", 1, 1, 1, 22)
    assert store.record_session_end("S2", "CP-1", 1, "v1", 7, 500, 10, 20, "Complete") is True
    assert store.get_session("S2")["reservation_id"] == 7
    assert store.record_session_end("S2", "CP-1", 1, "v1", 7, 500, 10, 20, "Complete") is False


def test_the_store_keeps_sqlites_same_thread_check_so_its_connection_stays_with_its_thread(store):
    """The Store is one actor's: it must not open its connection with check_same_thread=False."""
    errors = []

    def other():
        try:
            store.get_station_key("CP-1")
        except sqlite3.ProgrammingError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors, "sqlite3 must refuse use of the connection from another thread"


def test_a_database_from_a_newer_hub_is_refused(db):
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version=%d" % (SCHEMA_VERSION + 1))
    conn.close()
    with pytest.raises(StoreError, match="schema version"):
        Store(db)


def test_two_stores_on_one_file_see_each_others_commits(db):
    writer, reader = Store(db), Store(db)
    writer.add_station("CP-1", 1, 1, 1, 22)
    assert reader.get_station_key("CP-1") == writer.get_station_key("CP-1")
    writer.close()
    reader.close()

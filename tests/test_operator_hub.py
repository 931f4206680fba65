"""Running a hub by hand: one hub per embedded store, log reopen on SIGHUP, CLI manners."""

import json
import os
import signal
import subprocess
import sys
import time

from hubproc import REPO, HubProcess, evhub


def test_a_second_hub_on_the_same_store_refuses_to_start_and_names_the_first(tmp_path):
    with HubProcess(tmp_path) as first:
        second = subprocess.run(
            [sys.executable, "-m", "tools.cli", "serve", "--listen", "tcp://127.0.0.1:0", "--db", first.db],
            cwd=str(tmp_path),
            env=dict(os.environ, PYTHONPATH=REPO),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "in use by another hub" in second.stderr
        assert "pid %d" % first.proc.pid in second.stderr
        assert "Traceback" not in second.stderr
        assert first.proc.poll() is None  # the first hub is untouched


def test_a_hub_killed_with_sigkill_leaves_no_lock_behind(tmp_path):
    hub = HubProcess(tmp_path).start()
    hub.kill9()
    hub.restart()  # the kernel dropped the flock with the process
    hub.stop()


def test_sighup_reopens_the_log_file_after_logrotate_moved_it(tmp_path):
    log_file = tmp_path / "hub.log"
    with HubProcess(tmp_path, extra_args=["--log-file", str(log_file)]) as hub:
        rotated = tmp_path / "hub.log.1"
        os.rename(log_file, rotated)
        hub.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (log_file.exists() and "reopened" in log_file.read_text()):
            time.sleep(0.05)
        assert log_file.exists(), "SIGHUP did not reopen the log file"
        assert "log files reopened" in log_file.read_text()
        assert hub.proc.poll() is None


def test_version_prints_the_installed_version():
    res = evhub("--version")
    assert res.stdout.startswith("evhub ")


def test_verbose_is_accepted_after_the_subcommand(tmp_path):
    res = evhub(
        "stations",
        "add",
        "--id",
        "CP-1",
        "--lat",
        "-12.2",
        "--lon",
        "-38.9",
        "-v",
        "--db",
        str(tmp_path / "x.db"),
        cwd=str(tmp_path),
        check=False,
    )
    assert res.returncode == 0, res.stderr


def test_a_closed_pipe_ends_the_listing_quietly(tmp_path):
    with HubProcess(tmp_path) as hub:
        # More than a pipe buffer (64 KiB) of listing, so the writer really meets the closed pipe.
        csv = tmp_path / "many.csv"
        csv.write_text(
            "id,lat,lon,connectors,max_kw\n" + "".join("CP-%05d,-12.2,-38.9,2,22\n" % i for i in range(5000))
        )
        evhub("stations", "import", str(csv), "--db", hub.db, cwd=hub.tmp, env=hub.env)
        cmd = "%s -m tools.cli stations list --hub %s | head -1" % (sys.executable, hub.url)
        env = dict(os.environ, PYTHONPATH=REPO, **hub.env)
        res = subprocess.run(["bash", "-c", cmd], cwd=hub.tmp, env=env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
    assert res.stdout.count("\n") == 1


def test_db_backup_copies_a_running_hubs_store_owner_only_and_refuses_to_overwrite(tmp_path):
    import sqlite3

    with HubProcess(tmp_path) as hub:
        hub.add_station("CP-1")
        hub.add_vehicle("V-1")
        target = tmp_path / "backup.db"
        res = evhub("db", "backup", str(target), "--db", hub.db, cwd=hub.tmp)
        assert "backed up" in res.stdout
        assert os.stat(target).st_mode & 0o777 == 0o600
        again = evhub("db", "backup", str(target), "--db", hub.db, cwd=hub.tmp, check=False)
        assert again.returncode == 2 and "--force" in again.stderr
    with sqlite3.connect(str(target)) as copy:
        assert copy.execute("SELECT id FROM stations").fetchall() == [("CP-1",)]
        assert copy.execute("SELECT id FROM vehicles").fetchall() == [("V-1",)]
    missing = evhub("db", "backup", str(tmp_path / "b2.db"), "--db", str(tmp_path / "nope.db"), check=False)
    assert missing.returncode == 2 and "no store" in missing.stderr


def test_pty_pair_joins_two_terminals_until_stopped(tmp_path):
    import serial

    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "pty-pair"],
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        a, b = first.split()[0], first.split()[2]
        with serial.Serial(a, timeout=5) as left, serial.Serial(b, timeout=5) as right:
            left.write(b"\x00hello\x00")
            assert right.read(7) == b"\x00hello\x00"
            right.write(b"back")
            assert left.read(4) == b"back"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "bytes carried" in err


def test_every_hub_setting_is_documented_for_print_config():
    from hub.config import DEFAULTS
    from hub.configdoc import DOCS

    documented = [name for name, _text in DOCS if name]
    assert sorted(documented) == sorted(DEFAULTS), "a setting without help in hub/configdoc.py, or help for none"


def test_the_example_hub_toml_is_what_print_config_prints_and_loads_back(tmp_path):
    example = os.path.join(REPO, "hub", "deploy", "hub.toml")
    res = evhub("serve", "--config", example, "--print-config")
    with open(example) as f:
        assert res.stdout == f.read(), "hub/deploy/hub.toml is stale: regenerate it with --print-config"
    token = evhub("serve", "--print-config", "--http-token", "s3cret").stdout
    assert "s3cret" not in token and "http_token = (set; not printed)" in token


def test_log_file_and_serial_lines_may_come_from_the_config_file(tmp_path):
    log_file = tmp_path / "from-config.log"
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nlog_file = "%s"\nserial = []\n' % log_file)
    with HubProcess(tmp_path, extra_args=["--config", str(config)]):
        assert "hub listening" in log_file.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text('[hub]\nserial = "/dev/ttyUSB0"\n')
    res = evhub("serve", "--config", str(bad), check=False)
    assert res.returncode == 2 and "serial must be a list" in res.stderr


def test_provisioning_names_the_store_it_wrote_to_and_honours_evhub_db(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = tmp_path / "hub.db"
    first = evhub(
        "stations",
        "add",
        "--id",
        "CP-1",
        "--lat",
        "-12.2",
        "--lon",
        "-38.9",
        cwd=str(elsewhere),
        env={"EVHUB_DB": str(db)},
    )
    assert db.exists() and not (elsewhere / "evhub.db").exists()
    assert "store: %s (created" % db in first.stderr
    second = evhub(
        "vehicles",
        "add",
        "--id",
        "V-1",
        cwd=str(elsewhere),
        env={"EVHUB_DB": str(db), "EVHUB_CONFIG_DIR": str(tmp_path / "cfg")},
    )
    assert second.stderr.strip().endswith("store: %s" % db)


def test_adding_an_existing_id_is_a_conflict_that_names_replace(tmp_path):
    db = str(tmp_path / "hub.db")
    evhub("stations", "add", "--id", "CP-1", "--lat", "-12.2", "--lon", "-38.9", "--db", db)
    again = evhub("stations", "add", "--id", "CP-1", "--lat", "-12.2", "--lon", "-38.9", "--db", db, check=False)
    assert again.returncode == 3 and "--replace" in again.stderr
    env = {"EVHUB_CONFIG_DIR": str(tmp_path / "cfg")}
    evhub("vehicles", "add", "--id", "V-1", "--db", db, env=env)
    twice = evhub("vehicles", "add", "--id", "V-1", "--db", db, env=env, check=False)
    assert twice.returncode == 3 and "--replace" in twice.stderr


def test_stations_list_reads_the_store_when_the_hub_is_down(tmp_path):
    db = str(tmp_path / "hub.db")
    evhub("stations", "add", "--id", "CP-9", "--lat", "-12.2", "--lon", "-38.9", "--connectors", "2", "--db", db)
    res = evhub("stations", "list", "--hub", "tcp://127.0.0.1:9", "--db", db)
    assert "hub down: from the store" in res.stdout and "CP-9" in res.stdout and "Unknown" in res.stdout
    assert "cannot reach the hub" in res.stderr
    rows = json.loads(evhub("stations", "list", "--hub", "tcp://127.0.0.1:9", "--db", db, "--json").stdout)
    assert rows == [
        {
            "id": "CP-9",
            "lat": -12.2,
            "lon": -38.9,
            "status": "Unknown",
            "free_in_min": None,
            "connectors": 2,
            "max_kw": 22.0,
            "live": False,
        }
    ]
    nothing = evhub("stations", "list", "--hub", "tcp://127.0.0.1:9", "--db", str(tmp_path / "none.db"), check=False)
    assert nothing.returncode == 6


def test_print_config_never_prints_a_database_password():
    res = evhub("serve", "--db", "postgresql://evhub:s3cret@db.example/evhub", "--print-config")
    assert 'db = "postgresql://evhub:***@db.example/evhub"' in res.stdout and "s3cret" not in res.stdout


def test_a_hub_id_may_come_from_the_config_file_and_a_name_with_spaces_is_refused(tmp_path):
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nhub_id = "north-1"\n')
    res = evhub("serve", "--config", str(config), "--print-config")
    assert 'hub_id = "north-1"' in res.stdout
    res = evhub("serve", "--hub-id", "north 1", "--print-config", check=False)
    assert res.returncode == 2 and "hub_id must be 1..64 printable characters without spaces" in res.stderr
    assert "Traceback" not in res.stderr

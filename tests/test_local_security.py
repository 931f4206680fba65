"""Issue 13, local secrets and operator safety, against the real `evhub` processes: file modes of
the store and of secret files, the operator key, secrets kept off command lines, --http on a
non-loopback address, and terminal escapes in `evhub console`."""

import contextlib
import json
import os
import stat
import subprocess
import sys

import pytest

from fw_ptypair import PtyPair
from hubproc import REPO, HubProcess, evhub
from tools.common.exitcodes import EXIT_DENIED
from tools.client.hubclient import HubClient, HubError
from tools.client.operator_auth import operator_client
from transport import kinds as K
from transport.session import Authenticated, Closed
from serial_login import serial_login

KEY = "00112233445566778899aabbccddeeff"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@contextlib.contextmanager
def umask(value):
    """The usual desktop umask (022), so a file left to defaults would come out 0644."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


# --- the store -------------------------------------------------------------------------------------


def test_the_store_its_wal_and_shm_and_the_operator_key_are_created_owner_only(tmp_path):
    with umask(0o022):
        with HubProcess(tmp_path) as hub:
            hub.add_station("CP-1")
            hub.add_vehicle("V-1")
            with operator_client(hub.url, hub.db) as op:
                op.request(K.STATIONS_LIST)
            files = [hub.db, hub.db + "-wal", hub.db + "-shm", hub.db + ".operator-key"]
            present = [f for f in files if os.path.exists(f)]
            assert present == files  # WAL mode: the side files exist while the hub runs
            assert {f: mode(f) for f in files} == {f: 0o600 for f in files}


def test_a_world_readable_store_is_refused_with_one_line_naming_the_file_and_the_fix(tmp_path):
    db = str(tmp_path / "hub.db")
    evhub("stations", "add", "--id", "CP-1", "--lat", "1", "--lon", "2", "--db", db, cwd=str(tmp_path))
    os.chmod(db, 0o644)
    serve = evhub("serve", "--listen", "tcp://127.0.0.1:0", "--db", db, cwd=str(tmp_path), check=False, timeout=30)
    assert serve.returncode == 2
    lines = serve.stderr.strip().splitlines()
    assert len(lines) == 1 and "chmod 600 %s" % db in lines[0] and "Traceback" not in serve.stderr, serve.stderr
    add = evhub(
        "vehicles",
        "add",
        "--id",
        "V-1",
        "--db",
        db,
        cwd=str(tmp_path),
        env={"EVHUB_CONFIG_DIR": str(tmp_path)},
        check=False,
    )
    assert add.returncode == 2 and "chmod 600 %s" % db in add.stderr and add.stdout == ""
    for reader in (("reservations", "list"), ("sessions", "export")):  # read-only readers refuse it too
        res = evhub(*reader, "--db", db, cwd=str(tmp_path), check=False)
        assert res.returncode == 2 and "chmod 600 %s" % db in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert mode(db) == 0o644  # refused, not silently fixed: the keys in it may already have been read


def test_a_group_readable_store_and_its_side_files_are_made_owner_only_on_start(tmp_path):
    db = str(tmp_path / "hub.db")
    evhub("stations", "add", "--id", "CP-1", "--lat", "1", "--lon", "2", "--db", db, cwd=str(tmp_path))
    os.chmod(db, 0o640)
    with open(db + "-wal", "ab"):
        pass
    os.chmod(db + "-wal", 0o644)
    evhub("stations", "add", "--id", "CP-2", "--lat", "1", "--lon", "2", "--db", db, cwd=str(tmp_path))
    assert mode(db) == 0o600
    assert not os.path.exists(db + "-wal") or mode(db + "-wal") == 0o600


# --- secret files written by the tools ---------------------------------------------------------------------


def test_credentials_are_0600_over_an_old_0644_file_and_its_tmp(tmp_path):
    conf = tmp_path / "config"
    conf.mkdir()
    creds = conf / "credentials.json"
    creds.write_text("{}")
    (conf / "credentials.json.tmp").write_text("stale")
    os.chmod(creds, 0o644)
    os.chmod(conf / "credentials.json.tmp", 0o644)
    with umask(0o022):
        token = evhub(
            "vehicles", "add", "--id", "V-1", "--db", tmp_path / "hub.db", env={"EVHUB_CONFIG_DIR": str(conf)}
        ).stdout.strip()
    assert mode(creds) == 0o600 and not os.path.exists(str(creds) + ".tmp")
    assert json.loads(creds.read_text()) == {"vehicle:V-1": token}


def test_a_symlink_in_place_of_the_credentials_file_is_refused_and_its_target_untouched(tmp_path):
    conf = tmp_path / "config"
    conf.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours")
    os.symlink(str(target), str(conf / "credentials.json"))
    res = evhub("vehicles", "add", "--id", "V-1", "--db", tmp_path / "hub.db", env={"EVHUB_CONFIG_DIR": str(conf)})
    assert len(res.stdout.strip()) == 32  # the token is still printed (it is shown only once)
    assert "symlink" in res.stderr and "token not saved" in res.stderr
    assert target.read_text() == "not yours" and os.path.islink(str(conf / "credentials.json"))


def test_the_bundle_config_is_0600_over_an_old_0644_file_and_a_symlink_there_is_refused(tmp_path):
    out = tmp_path / "board"
    evhub("bundle", out, "--id", "CP-B", "--key", KEY, "--serial", "/dev/null")
    cfg = out / "config.json"
    os.chmod(cfg, 0o644)
    with umask(0o022):
        evhub("bundle", out, "--id", "CP-B", "--key", KEY, "--serial", "/dev/null")
    assert mode(cfg) == 0o600
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    cfg.unlink()
    os.symlink(str(target), str(cfg))
    res = evhub("bundle", out, "--id", "CP-B", "--key", KEY, "--serial", "/dev/null", check=False)
    assert res.returncode == 2 and "symlink" in res.stderr and "Traceback" not in res.stderr
    assert target.read_text() == "{}"


# --- the operator ------------------------------------------------------------------------------------------


def test_the_operator_needs_the_key_the_hub_wrote_at_its_first_start(tmp_path):
    hub = HubProcess(tmp_path)
    hub.add_station("CP-1")  # before the start: the listing below has it at once
    assert not os.path.exists(hub.db + ".operator-key")
    with hub:
        with pytest.raises(HubError):
            HubClient(hub.url, "operator", "operator", b"").connect()  # what any local user did before
        with pytest.raises(HubError):
            HubClient(hub.url, "operator", "operator", "0" * 32).connect()
        listed = evhub(
            "stations", "list", "--hub", hub.url, "--db", hub.db, "--json", env={"EVHUB_OPERATOR_KEY_FILE": ""}
        )
        assert [s["id"] for s in json.loads(listed.stdout)] == ["CP-1"]
        wrong = evhub("stations", "list", "--hub", hub.url, env={"EVHUB_OPERATOR_KEY": "f" * 32}, check=False)
        assert (
            wrong.returncode == EXIT_DENIED and "refused operator" in wrong.stderr and "Traceback" not in wrong.stderr
        )
        missing = evhub(
            "stations",
            "list",
            "--hub",
            hub.url,
            "--db",
            tmp_path / "other.db",
            env={"EVHUB_OPERATOR_KEY_FILE": ""},
            check=False,
        )
        assert missing.returncode == EXIT_DENIED and "no operator key at" in missing.stderr
        first_key = open(hub.db + ".operator-key").read()
        hub.stop()
        hub.start()  # a restart keeps the key
        assert open(hub.db + ".operator-key").read() == first_key
        with operator_client(hub.url, hub.db) as op:
            assert op.request(K.STATIONS_LIST)[1][0][0]["id"] == "CP-1"


def test_a_serial_peer_is_never_an_operator_even_with_the_right_key(tmp_path):
    pair = PtyPair()
    try:
        with HubProcess(tmp_path, extra_args=["--serial", pair.path1]) as hub:
            key = hub.add_station("CP-S")
            operator_key = open(hub.db + ".operator-key").read().strip()
            fd = os.open(pair.path2, os.O_RDWR | os.O_NOCTTY)
            try:
                assert isinstance(serial_login(fd, "operator", operator_key, role="operator", timeout=10), Closed)
                # the same line still serves a station: the refusal is about the role, not the line
                assert isinstance(serial_login(fd, "CP-S", key, timeout=10), Authenticated)
            finally:
                os.close(fd)
    finally:
        pair.close()


# --- secrets off the command line ----------------------------------------------------------------------------


def test_tokens_keys_and_wifi_come_from_files_or_the_environment(tmp_path):
    with HubProcess(tmp_path) as hub:
        token = hub.add_vehicle("V-1")
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        empty = {"EVHUB_CONFIG_DIR": str(tmp_path / "nothing-saved")}
        res = evhub("vehicle", "--id", "V-1", "--hub", hub.url, "--token-file", token_file, "reservations", env=empty)
        assert "no reservations" in res.stdout
        res = evhub("vehicle", "--id", "V-1", "--hub", hub.url, "reservations", env=dict(empty, EVHUB_TOKEN=token))
        assert "no reservations" in res.stdout
        bad = evhub(
            "vehicle",
            "--id",
            "V-1",
            "--hub",
            hub.url,
            "--token-file",
            tmp_path / "absent",
            "reservations",
            env=empty,
            check=False,
        )
        assert bad.returncode == 2 and "cannot read --token-file" in bad.stderr
    key_file, wifi_file = tmp_path / "key", tmp_path / "wifi"
    key_file.write_text(KEY + "\n")
    wifi_file.write_text("depot:pass word:x\n")
    out = tmp_path / "board"
    evhub(
        "bundle", out, "--id", "CP-B", "--key-file", key_file, "--hub", "tcp://127.0.0.1:7878", "--wifi-file", wifi_file
    )
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["key"] == KEY and cfg["wifi"] == {"ssid": "depot", "password": "pass word:x"}
    evhub(
        "bundle",
        out,
        "--id",
        "CP-B",
        "--hub",
        "tcp://127.0.0.1:7878",
        env={"EVHUB_KEY": "ab" * 16, "EVHUB_WIFI": "home:password1"},
    )
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["key"] == "ab" * 16 and cfg["wifi"] == {"ssid": "home", "password": "password1"}


@pytest.mark.parametrize(
    "command, flags",
    [
        ("serve", ("--http-token", "--http-token-file", "EVHUB_HTTP_TOKEN")),
        ("vehicle", ("--token", "--token-file", "EVHUB_TOKEN")),
        ("bundle", ("--key", "--key-file", "EVHUB_KEY", "--wifi", "--wifi-file", "EVHUB_WIFI")),
        ("chargepoint", ("--key", "--key-file", "EVHUB_KEY")),
    ],
)
def test_help_offers_a_file_and_an_environment_variable_and_says_the_flag_is_visible(command, flags):
    text = " ".join(evhub(command, "--help").stdout.split())
    for flag in flags:
        assert flag in text
    assert "visible to other local users" in text


# --- HTTP on the network -----------------------------------------------------------------------------------


def test_http_on_a_non_loopback_address_without_a_token_is_refused(tmp_path):
    # Refused before anything binds: nothing listens off loopback during the test.
    res = evhub(
        "serve",
        "--listen",
        "tcp://127.0.0.1:0",
        "--db",
        tmp_path / "hub.db",
        "--http",
        "0.0.0.0:0",
        cwd=str(tmp_path),
        check=False,
        timeout=30,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--http-insecure-reads" in lines[0] and "--http-token-file" in lines[0], res.stderr


# --- the console -------------------------------------------------------------------------------------------


def test_the_console_shows_terminal_escapes_from_the_wire_escaped(tmp_path):
    evil = "\x1b]0;pwned\x07\x1b[2J\u202eCP-1"
    line = 'raw ["error", 3, 1, %s]\nquit\n' % json.dumps(evil)
    res = subprocess.run(
        [sys.executable, "-m", "tools.cli", "console", "loop://", "--db", str(tmp_path / "none.db")],
        input=line,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert res.returncode == 0, res.stderr
    assert "<- error" in res.stdout
    assert not any(c in res.stdout for c in "\x1b\x07\u202e"), repr(res.stdout)
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202eCP-1" in res.stdout


def test_raw_mode_passes_the_repl_line_editing_and_escapes_the_rest():
    from tools.device.term_escape import RawFilter

    f = RawFilter()
    shown = f.feed(b">>> ab\x08 \x08\x1b[") + f.feed(b"2D\x1b[K\r\n\x1b]52;c;AAAA\x07\x1b[2J\x9b\xc2\x9b")
    assert shown == ">>> ab\x08 \x08\x1b[2D\x1b[K\r\n\\x1b]52;c;AAAA\\x07\\x1b[2J\ufffd\\x9b"

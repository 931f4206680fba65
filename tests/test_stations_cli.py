"""`evhub stations add|import` and `evhub vehicles add`: bad input gets a clear error, nothing is lost."""

import json
import os

from hubproc import evhub


def test_explicit_zero_connectors_or_power_are_refused_not_defaulted(tmp_path):
    db = str(tmp_path / "h.db")
    for flag in (["--connectors", "0"], ["--max-kw", "0"]):
        res = evhub("stations", "add", "--id", "CP-0", "--lat", "1", "--lon", "2", "--db", db, *flag, check=False)
        assert res.returncode == 2 and "must be" in res.stderr and "Traceback" not in res.stderr


def test_a_corrupt_credentials_file_is_never_overwritten(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "credentials.json").write_text("{not json")
    env = {"EVHUB_CONFIG_DIR": str(cfg)}
    res = evhub("vehicles", "add", "--id", "V-1", "--db", str(tmp_path / "h.db"), env=env, check=False)
    assert res.returncode == 0 and len(res.stdout.strip()) == 32  # the token is printed
    assert "not saved" in res.stderr
    assert (cfg / "credentials.json").read_text() == "{not json"


def test_the_token_is_remembered_for_the_vehicle_client(tmp_path):
    cfg = tmp_path / "cfg"
    env = {"EVHUB_CONFIG_DIR": str(cfg)}
    token = evhub("vehicles", "add", "--id", "V-2", "--db", str(tmp_path / "h.db"), env=env).stdout.strip()
    saved = json.loads((cfg / "credentials.json").read_text())
    assert saved["vehicle:V-2"] == token
    assert oct(os.stat(cfg / "credentials.json").st_mode & 0o777) == "0o600"

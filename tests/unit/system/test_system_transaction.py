"""Several files in several directories replaced as one step: a crash before the journal
leaves every old file, a crash after it is finished at the next start."""

from __future__ import annotations

import pytest

from appliance.core.errors import DataLoss
from appliance.system import transaction
from appliance.system.transaction import STAGING, Transaction, recover


@pytest.fixture
def dirs(tmp_path):
    config, secrets = tmp_path / "config", tmp_path / "secrets"
    config.mkdir()
    secrets.mkdir()
    (config / "system.json").write_text("old system")
    (config / "cameras.json").write_text("old cameras")
    (secrets / "door.json").write_text("old door")
    (secrets / "gone.json").write_text("old gone")
    return tmp_path, config, secrets


def contents(*directories) -> dict[str, str]:
    return {f"{d.name}/{p.name}": p.read_text() for d in directories for p in sorted(d.iterdir())
            if p.is_file()}


def stage(tmp_path, config, secrets) -> Transaction:
    tx = Transaction(tmp_path / "journal.json")
    tx.put(config, "system.json", b"new system")
    tx.remove(config, "cameras.json")
    tx.put(secrets, "door.json", b"new door", mode=0o600)
    tx.remove(secrets, "gone.json")
    return tx


NEW = {"config/system.json": "new system", "secrets/door.json": "new door"}
OLD = {"config/cameras.json": "old cameras", "config/system.json": "old system",
       "secrets/door.json": "old door", "secrets/gone.json": "old gone"}


def test_commit_replaces_everything(dirs):
    tmp_path, config, secrets = dirs
    stage(tmp_path, config, secrets).commit()
    assert contents(config, secrets) == NEW
    assert oct((secrets / "door.json").stat().st_mode & 0o777) == "0o600"
    assert not (config / STAGING).exists() and not (tmp_path / "journal.json").exists()


def test_a_crash_before_the_journal_keeps_the_old_files(dirs):
    tmp_path, config, secrets = dirs
    stage(tmp_path, config, secrets)          # staged, never committed: the power went
    assert recover(tmp_path / "journal.json", [config, secrets]) is False
    assert contents(config, secrets) == OLD
    assert not (config / STAGING).exists() and not (secrets / STAGING).exists()


@pytest.mark.parametrize("where,after", [("replace", 1), ("replace", 2), ("rmtree", 0)])
def test_a_crash_after_the_journal_is_finished_at_start(dirs, monkeypatch, where, after):
    """The power goes after the journal (the first rename) and `after` more steps."""
    tmp_path, config, secrets = dirs
    module = transaction.os if where == "replace" else transaction.shutil
    real = getattr(module, where)
    calls = []

    def power_cut(*args, **kwargs):
        if len(calls) == after:
            raise KeyboardInterrupt("power cut")
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, where, power_cut)
    tx = stage(tmp_path, config, secrets)
    with pytest.raises(KeyboardInterrupt):
        tx.commit()
    monkeypatch.setattr(module, where, real)
    assert (tmp_path / "journal.json").exists()
    assert recover(tmp_path / "journal.json", [config, secrets]) is True
    assert contents(config, secrets) == NEW
    assert recover(tmp_path / "journal.json", [config, secrets]) is False  # nothing left


def test_abandon_and_bad_names(dirs):
    tmp_path, config, secrets = dirs
    tx = stage(tmp_path, config, secrets)
    tx.abandon()
    assert contents(config, secrets) == OLD and not (config / STAGING).exists()
    for bad in ("../x", "a/b", "", ".", "..", STAGING):
        with pytest.raises(ValueError):
            Transaction(tmp_path / "j").put(config, bad, b"x")


def test_a_damaged_journal_is_reported_not_guessed(dirs):
    tmp_path, config, secrets = dirs
    (tmp_path / "journal.json").write_text("{half")
    with pytest.raises(DataLoss, match="journal is damaged"):
        recover(tmp_path / "journal.json", [config])
    assert contents(config, secrets) == OLD

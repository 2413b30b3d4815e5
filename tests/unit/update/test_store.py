"""What the update machinery remembers on /persist: it must survive power cuts and must
never quietly forget (a forgotten floor would let an old release back in)."""

import json
import os
from dataclasses import asdict

import pytest

from appliance.core.errors import DataLoss
from appliance.update.store import HISTORY_KEPT, Pending, UpdateStore
from appliance.update.versions import Release


@pytest.fixture
def store(tmp_path):
    return UpdateStore(tmp_path / "update", now=lambda: 1_800_000_000.25)


def a_pending(**changes):
    fields = dict(to_version="0.2.0", to_build=200, to_slot="B", from_version="0.1.0",
                  from_build=100, from_slot="A", cameras=["back", "front"],
                  storage_mounted=True, installed_at=1_799_999_000.0)
    return Pending(**{**fields, **changes})


def test_a_fresh_store_has_no_pending_no_floor_and_no_history(store):
    assert store.pending() is None
    assert store.floor() is None
    assert store.history() == []
    assert store.last_result() is None


def test_pending_round_trips_through_the_file(store):
    pending = a_pending(failure="camera front not recording since the update (connecting)")
    store.set_pending(pending)
    assert UpdateStore(store.dir).pending() == pending
    assert store.pending().target == Release.parse("0.2.0", 200)


def test_pending_written_by_a_newer_release_with_more_fields_still_reads(store):
    store.dir.mkdir(parents=True)
    data = {**asdict(a_pending()), "added_later": 1}
    (store.dir / "pending.json").write_text(json.dumps(data))
    assert store.pending() == a_pending()


def test_clear_pending_removes_it_and_may_be_repeated(store):
    store.set_pending(a_pending())
    store.clear_pending()
    store.clear_pending()
    assert store.pending() is None
    assert not (store.dir / "pending.json").exists()


def test_the_floor_only_goes_up(store):
    store.raise_floor(Release.parse("0.2.0", 200))
    store.raise_floor(Release.parse("0.1.9", 999))
    store.raise_floor(Release.parse("0.2.0", 100))
    assert store.floor() == Release.parse("0.2.0", 200)
    store.raise_floor(Release.parse("0.2.0", 201))
    assert store.floor() == Release.parse("0.2.0", 201)
    assert json.loads((store.dir / "floor.json").read_text()) == {"version": "0.2.0", "build": 201}


def test_history_keeps_the_newest_entries_newest_last(store):
    for n in range(HISTORY_KEPT + 5):
        store.record("committed", f"update {n}", version=f"0.{n}.0")
    history = store.history()
    assert HISTORY_KEPT == 20
    assert len(history) == HISTORY_KEPT
    assert [e["message"] for e in history] == [f"update {n}" for n in range(5, HISTORY_KEPT + 5)]
    assert store.last_result() == {"time": 1_800_000_000.25, "outcome": "committed",
                                   "message": f"update {HISTORY_KEPT + 4}",
                                   "version": f"0.{HISTORY_KEPT + 4}.0"}


@pytest.mark.parametrize("name, read", [("pending.json", UpdateStore.pending),
                                        ("floor.json", UpdateStore.floor),
                                        ("history.json", UpdateStore.history)])
def test_a_garbled_file_is_data_loss_naming_the_file(store, name, read):
    store.dir.mkdir(parents=True)
    (store.dir / name).write_bytes(b'{"version": "0.2')
    with pytest.raises(DataLoss, match=rf"{store.dir / name} is unreadable"):
        read(store)


def test_a_garbled_floor_or_history_is_never_silently_replaced(store):
    store.dir.mkdir(parents=True)
    for name in ("floor.json", "history.json"):
        (store.dir / name).write_bytes(b"\x00\x00garbled")
    with pytest.raises(DataLoss):
        store.raise_floor(Release.parse("0.1.0", 1))
    with pytest.raises(DataLoss):
        store.record("committed", "updated")
    for name in ("floor.json", "history.json"):
        assert (store.dir / name).read_bytes() == b"\x00\x00garbled"


def test_writes_are_atomic_and_leave_no_temporary_files(store):
    store.set_pending(a_pending())
    store.raise_floor(Release.parse("0.2.0", 200))
    store.record("committed", "updated to 0.2.0")
    store.set_pending(a_pending(failure="web: down"))
    assert sorted(p.name for p in store.dir.iterdir()) == ["floor.json", "history.json",
                                                          "pending.json"]
    for path in store.dir.iterdir():
        json.loads(path.read_text())


def test_a_write_cut_short_leaves_the_old_file(store, monkeypatch):
    store.set_pending(a_pending())

    def power_cut(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError):
        store.set_pending(a_pending(failure="web: down"))
    monkeypatch.undo()
    assert store.pending() == a_pending()

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest

from repro.errors import StoreError
from repro.store import Store, result_key


def save(store: Store, key: str, **overrides):
    fields = dict(
        params={"a": 1},
        seed=7,
        metrics={"x": 1.5, "curve": [1.0, math.nan, 3.0], "bad": math.inf},
        sweep={"p": [0.1, 0.2, 0.3]},
        arrays={"W": np.arange(6, dtype=np.float32).reshape(2, 3)},
        provenance={"device": "cpu"},
        runtime_s=0.25,
    )
    fields.update(overrides)
    store.save("exp.demo", key, **fields)


def test_key_is_stable_and_sensitive():
    key = result_key("e", "v1", {"a": 1, "b": [1, 2]}, 3)
    assert key == result_key("e", "v1", {"b": [1, 2], "a": 1}, 3)  # order of params does not matter
    assert key != result_key("e", "v2", {"a": 1, "b": [1, 2]}, 3)  # code version does
    assert key != result_key("e", "v1", {"a": 1, "b": [1, 2]}, 4)  # seed does
    assert key != result_key("e", "v1", {"a": 2, "b": [1, 2]}, 3)  # params do


def test_round_trip_with_non_finite_values(tmp_path):
    store = Store(tmp_path)
    key = result_key("exp.demo", "v", {"a": 1}, 7)
    assert not store.has("exp.demo", key)
    save(store, key)
    assert store.has("exp.demo", key)
    result = store.load("exp.demo", key)
    assert result.seed == 7 and result.metrics["x"] == 1.5
    assert math.isnan(result.metrics["curve"][1]) and math.isnan(result.metrics["bad"])
    np.testing.assert_array_equal(result.arrays()["W"], np.arange(6, dtype=np.float32).reshape(2, 3))
    json.loads(result.path.read_text())  # strict JSON: no NaN literals
    assert "NaN" not in result.path.read_text()


def test_no_pickle_and_no_temporaries_left(tmp_path):
    store = Store(tmp_path)
    save(store, "ab" + "0" * 62)
    files = sorted(p.name for p in (tmp_path / "results").rglob("*") if p.is_file())
    assert files == ["ab" + "0" * 62 + ".json", "ab" + "0" * 62 + ".npz"]


def test_failed_write_leaves_nothing(tmp_path):
    store = Store(tmp_path)

    class Boom(Exception):
        pass

    def explode(handle):
        handle.write(b"partial")
        raise Boom

    target = tmp_path / "results" / "x" / "ab" / "k.json"
    with pytest.raises(Boom):
        store._atomic_write(target, explode)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_unreadable_result_is_a_clear_error(tmp_path):
    store = Store(tmp_path)
    key = "cd" + "1" * 62
    save(store, key)
    store._path("exp.demo", key).write_text("{ truncated")
    with pytest.raises(StoreError, match="delete it and run again"):
        store.load("exp.demo", key)


def test_stale_temporaries_are_cleared(tmp_path):
    store = Store(tmp_path)
    folder = tmp_path / "results" / "exp" / "ab"
    folder.mkdir(parents=True)
    old, fresh = folder / ".tmp-old.json", folder / ".tmp-new.json"
    old.write_text("x")
    fresh.write_text("x")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert store.clear_stale_temporaries() == 1
    assert not old.exists() and fresh.exists()


def test_default_store_follows_repro_home(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "elsewhere"))
    assert Store.default().root == tmp_path / "elsewhere"
    monkeypatch.delenv("REPRO_HOME")
    monkeypatch.chdir(tmp_path)
    assert Store.default().root == tmp_path / ".repro"

"""Outputs are replaced in one rename: never half-written, the old version intact until then."""

import os

import pytest

from nextclose import atomic


def leftovers(directory):
    """Temporary siblings (``.name.*.tmp`` / ``.old``) left in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_write_text_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "reports" / "metrics.json"
    atomic.write_text(target, "first\n")
    atomic.write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert leftovers(target.parent) == []


def test_write_text_failing_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old\n")

    def broken_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_write_json_is_indented_and_ends_with_a_newline(tmp_path):
    atomic.write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "a.json").read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'


def test_new_directory_leaves_the_old_one_whole_until_the_block_succeeds(tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    (target / "model.keras").write_text("old model")
    (target / "train.json").write_text("old summary")
    with atomic.new_directory(target) as staging:
        assert staging != target and staging.parent == tmp_path and list(staging.iterdir()) == []
        (staging / "model.keras").write_text("new model")
        # Mid-write, the outputs a reader would see are still the old ones, all of them.
        assert (target / "model.keras").read_text() == "old model"
        assert (target / "train.json").read_text() == "old summary"
    assert sorted(p.name for p in target.iterdir()) == ["model.keras"]
    assert (target / "model.keras").read_text() == "new model"
    assert leftovers(tmp_path) == []


def test_new_directory_failing_after_writes_keeps_the_old_one_and_cleans_up(tmp_path):
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "windows.npz").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.new_directory(target) as staging:
            (staging / "windows.npz").write_text("half")
            raise RuntimeError("boom")
    assert [p.name for p in target.iterdir()] == ["windows.npz"]
    assert (target / "windows.npz").read_text() == "old"
    assert leftovers(tmp_path) == []


def test_new_directory_creates_a_missing_target_and_its_parents(tmp_path):
    target = tmp_path / "data" / "raw"
    with atomic.new_directory(target) as staging:
        (staging / "bars.csv").write_text("date\n")
    assert (target / "bars.csv").read_text() == "date\n"
    assert leftovers(tmp_path / "data") == []

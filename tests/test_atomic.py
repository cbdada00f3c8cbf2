"""Outputs change as one commit: never half-written, never mixed, whatever kills the writer."""

import os
import subprocess
import sys
import textwrap

import pytest

from nextclose import atomic


def leftovers(directory):
    """Temporaries, moved-aside folders and journals left in ``directory`` (the lock file stays)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") and p.name != atomic.LOCK.name)


def old_outputs(root):
    (root / "models").mkdir()
    (root / "models" / "model.keras").write_text("old model")
    (root / "models" / "train.json").write_text("old summary")
    (root / "reports").mkdir()
    (root / "reports" / "history.csv").write_text("old history")


def state(root):
    """Each output's content, or None where it is missing."""
    def read(path):
        return path.read_text() if path.exists() else None
    return (read(root / "models" / "model.keras"), read(root / "models" / "train.json"),
            read(root / "reports" / "history.csv"))


OLD = ("old model", "old summary", "old history")
NEW = ("new model", None, "new history")  # the new models/ has no train.json: replaced whole


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


def test_a_commit_replaces_its_outputs_together_and_only_at_the_end(tmp_path):
    old_outputs(tmp_path)
    with atomic.Commit(tmp_path) as commit:
        staging = commit.directory("models")
        assert staging.parent == tmp_path and list(staging.iterdir()) == []
        (staging / "model.keras").write_text("new model")
        commit.write_text("reports/history.csv", "new history")
        # Mid-write, a reader still sees the old outputs, all of them.
        assert state(tmp_path) == OLD
    assert state(tmp_path) == NEW
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "reports") == []


def test_a_commit_that_fails_before_its_end_changes_nothing_and_cleans_up(tmp_path):
    old_outputs(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.Commit(tmp_path) as commit:
            (commit.directory("models") / "model.keras").write_text("half")
            commit.write_text("reports/history.csv", "new history")
            raise RuntimeError("boom")
    assert state(tmp_path) == OLD
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "reports") == []


def test_a_commit_creates_missing_outputs_and_their_folders(tmp_path):
    with atomic.Commit(tmp_path) as commit:
        (commit.directory("data/raw") / "bars.csv").write_text("date\n")
    assert (tmp_path / "data" / "raw" / "bars.csv").read_text() == "date\n"
    assert leftovers(tmp_path / "data") == []


@pytest.mark.parametrize("umask, file_mode, directory_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_take_the_modes_the_umask_gives(tmp_path, umask, file_mode, directory_mode):
    previous = os.umask(umask)
    try:
        with atomic.Commit(tmp_path) as commit:
            (commit.directory("models") / "model.keras").write_text("m")
            commit.write_text("reports/metrics.json", "{}")
        atomic.write_text(tmp_path / "params.yaml", "a: 1\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "models").stat().st_mode & 0o777 == directory_mode
    assert (tmp_path / "reports" / "metrics.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "params.yaml").stat().st_mode & 0o777 == file_mode


# --- a kill at every rename --------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from nextclose import atomic

    kill_at, calls = int(sys.argv[1]), [0]
    real_replace = os.replace

    def replace(source, destination):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: as kill -9
        real_replace(source, destination)

    os.replace = replace
    with atomic.Commit(Path(".")) as commit:
        (commit.directory("models") / "model.keras").write_text("new model")
        commit.write_text("reports/history.csv", "new history")
    print(calls[0])
""")
# the journal, models moved aside, the new models, the history: four renames
RENAMES = 4


def run_writer(root, kill_at):
    return subprocess.run([sys.executable, "-c", WRITER, str(kill_at)], cwd=root, capture_output=True, text=True)


def test_the_writer_makes_the_renames_the_kill_test_expects(tmp_path):
    old_outputs(tmp_path)
    done = run_writer(tmp_path, kill_at=0)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == RENAMES and state(tmp_path) == NEW


@pytest.mark.parametrize("kill_at", range(1, RENAMES + 1))
def test_after_a_kill_at_any_rename_recovery_gives_all_old_or_all_new(tmp_path, kill_at):
    old_outputs(tmp_path)
    done = run_writer(tmp_path, kill_at)
    assert done.returncode == -9, done.stderr
    said = atomic.recover(tmp_path, (atomic.Path("models"), atomic.Path("reports/history.csv")))
    # Killed before the journal is in place: nothing was decided, the old outputs stay.
    # Killed after: the commit was decided and recovery completes it.
    assert state(tmp_path) == (OLD if kill_at == 1 else NEW)
    assert said.startswith("rolled back" if kill_at == 1 else "completed an interrupted commit")
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "reports") == []
    assert atomic.recover(tmp_path, (atomic.Path("models"),)) is None  # nothing left to mend

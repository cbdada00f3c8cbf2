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


# --- the pieces, one at a time -------------------------------------------------------------------

def test_temporaries_are_hidden_siblings_of_their_outputs(tmp_path):
    """A sibling, so the final rename stays on one file system; named after the output, so
    recovery finds it."""
    with atomic.Commit(tmp_path) as commit:
        file = commit.path("reports/metrics.json")
        directory = commit.directory("models")
        for temporary, output in ((file, "metrics.json"), (directory, "models")):
            assert temporary.name.startswith(f".{output}.") and temporary.name.endswith(".tmp")
        assert file.parent == tmp_path / "reports" and file.is_file() and file.read_text() == ""
        assert directory.parent == tmp_path and directory.is_dir()
        assert commit.pairs == [(atomic.Path("reports") / file.name, atomic.Path("reports/metrics.json")),
                                (atomic.Path(directory.name), atomic.Path("models"))]


def test_write_text_writes_through_a_sibling_temporary(tmp_path, monkeypatch):
    target = tmp_path / "deep" / "metrics.json"
    renamed = []
    real_replace = os.replace

    def recording_replace(source, destination):
        renamed.append((atomic.Path(source), atomic.Path(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", recording_replace)
    atomic.write_text(target, "ünïcode\n")
    ((source, destination),) = renamed
    assert destination == target and source.parent == target.parent
    assert source.name.startswith(".metrics.json.") and source.name.endswith(".tmp")
    assert target.read_bytes() == "ünïcode\n".encode("utf-8")


def test_commit_write_json_is_indented_in_insertion_order(tmp_path):
    with atomic.Commit(tmp_path) as commit:
        commit.write_json("a.json", {"b": "é", "a": 1})
    assert (tmp_path / "a.json").read_bytes() == '{\n  "b": "\\u00e9",\n  "a": 1\n}\n'.encode()


def test_a_commit_holds_the_workspace_lock_until_it_ends(tmp_path):
    import fcntl

    def locked_by_someone_else():
        with open(tmp_path / atomic.LOCK, "a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(other, fcntl.LOCK_UN)
            return False

    with atomic.Commit(tmp_path) as commit:
        commit.write_text("a.txt", "a")
        assert locked_by_someone_else()
    assert not locked_by_someone_else()
    with pytest.raises(RuntimeError):
        with atomic.Commit(tmp_path):
            raise RuntimeError("boom")
    assert not locked_by_someone_else()


def test_a_replaced_directory_is_moved_aside_and_then_removed(tmp_path):
    old_outputs(tmp_path)
    (tmp_path / ".models.nextclose.old").mkdir()  # a leftover of an earlier commit
    (tmp_path / ".models.nextclose.old" / "stale").write_text("stale")
    with atomic.Commit(tmp_path) as commit:
        (commit.directory("models") / "model.keras").write_text("new model")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["model.keras"]
    assert leftovers(tmp_path) == []


def test_recovery_rolls_back_leftovers_and_says_which(tmp_path):
    old_outputs(tmp_path)
    (tmp_path / "reports" / ".history.csv.abc.tmp").write_text("half")
    (tmp_path / "reports" / ".history.csv.keep").write_text("not ours")  # not a temporary
    (tmp_path / ".models.def.tmp").mkdir()
    (tmp_path / f".{atomic.JOURNAL.name}.ghi.tmp").write_text("{")  # a journal never renamed
    said = atomic.recover(tmp_path, (atomic.Path("models"), atomic.Path("reports/history.csv")))
    assert said == "rolled back an interrupted write: removed .models.def.tmp, reports/.history.csv.abc.tmp"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "reports") == [".history.csv.keep"]
    assert state(tmp_path) == OLD


def test_recovery_puts_back_a_directory_moved_aside_or_drops_it_if_replaced(tmp_path):
    old_outputs(tmp_path)
    os.replace(tmp_path / "models", tmp_path / ".models.nextclose.old")  # killed mid-commit
    said = atomic.recover(tmp_path, (atomic.Path("models"),))
    assert said == "rolled back an interrupted write: removed .models.nextclose.old"
    assert state(tmp_path) == OLD and leftovers(tmp_path) == []
    (tmp_path / ".models.nextclose.old").mkdir()  # moved aside, and models/ is back already
    assert atomic.recover(tmp_path, (atomic.Path("models"),)) == (
        "rolled back an interrupted write: removed .models.nextclose.old")
    assert state(tmp_path) == OLD and leftovers(tmp_path) == []


def test_recovery_ignores_outputs_whose_folder_is_missing(tmp_path):
    assert atomic.recover(tmp_path, (atomic.Path("missing/history.csv"),)) is None
    assert not (tmp_path / "missing").exists()
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / ".history.csv.abc.tmp").write_text("half")
    said = atomic.recover(tmp_path, (atomic.Path("missing/history.csv"), atomic.Path("reports/history.csv")))
    assert said == "rolled back an interrupted write: removed reports/.history.csv.abc.tmp"


def test_a_torn_journal_is_dropped_and_the_commit_rolled_back(tmp_path):
    old_outputs(tmp_path)
    (tmp_path / "reports" / ".history.csv.abc.tmp").write_text("new")
    for torn in ('{"pairs": [["reports/.history.csv.abc.tmp", "reports/h', '{"other": 1}', '{"pairs": 1}'):
        (tmp_path / atomic.JOURNAL).write_text(torn)
        assert atomic.recover(tmp_path, ()) is None
        assert not (tmp_path / atomic.JOURNAL).exists()
    said = atomic.recover(tmp_path, (atomic.Path("reports/history.csv"),))
    assert said == "rolled back an interrupted write: removed reports/.history.csv.abc.tmp"
    assert state(tmp_path) == OLD


def test_a_journal_is_completed_and_removed(tmp_path):
    old_outputs(tmp_path)
    (tmp_path / "reports" / ".history.csv.abc.tmp").write_text("new history")
    (tmp_path / atomic.JOURNAL).write_text(
        '{"pairs": [["reports/.history.csv.abc.tmp", "reports/history.csv"]]}')
    said = atomic.recover(tmp_path, ())
    assert said == "completed an interrupted commit of reports/history.csv"
    assert (tmp_path / "reports" / "history.csv").read_text() == "new history"
    assert not (tmp_path / atomic.JOURNAL).exists() and leftovers(tmp_path / "reports") == []


def test_removing_a_symlink_to_a_folder_keeps_the_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    atomic._remove(tmp_path / "link")
    assert not (tmp_path / "link").exists() and (tmp_path / "real" / "keep").exists()
    atomic._remove(tmp_path / "link")  # already gone: nothing to do


def test_outputs_may_sit_in_folders_that_do_not_exist_yet(tmp_path):
    with atomic.Commit(tmp_path) as commit:
        commit.write_text("reports/deep/er/metrics.json", "{}")
    atomic.write_text(tmp_path / "plots" / "deep" / "er" / "plot.json", "[]")
    assert (tmp_path / "reports/deep/er/metrics.json").read_text() == "{}"
    assert (tmp_path / "plots/deep/er/plot.json").read_text() == "[]"


def test_removing_a_leftover_is_best_effort(tmp_path, monkeypatch):
    """Recovery must not fail on a leftover the file system refuses to delete (root may delete
    anything, so the refusal is simulated)."""
    leftover = tmp_path / ".models.abc.tmp"
    leftover.mkdir()
    (leftover / "model.keras").write_text("half")

    def refuse(*args, **kwargs):
        raise PermissionError("refused")

    monkeypatch.setattr(os, "unlink", refuse)
    atomic._remove(leftover)
    assert leftover.exists()


@pytest.mark.parametrize("fail_at", range(1, RENAMES + 1))
def test_after_a_crash_at_any_rename_recovery_gives_all_old_or_all_new_in_process(tmp_path, monkeypatch, fail_at):
    """The kill test above, in this process (so mutation testing sees it): a rename that raises
    stands for the kill, and recovery reads the journal the commit left."""
    old_outputs(tmp_path)
    calls, real_replace = [0], os.replace

    def crashing_replace(source, destination):
        calls[0] += 1
        if calls[0] == fail_at:
            raise OSError("crash")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(OSError, match="crash"):
        with atomic.Commit(tmp_path) as commit:
            (commit.directory("models") / "model.keras").write_text("new model")
            commit.write_text("reports/history.csv", "new history")
    monkeypatch.setattr(os, "replace", real_replace)
    said = atomic.recover(tmp_path, (atomic.Path("models"), atomic.Path("reports/history.csv")))
    assert state(tmp_path) == (OLD if fail_at == 1 else NEW)
    if fail_at > 1:
        assert said == "completed an interrupted commit of models, reports/history.csv"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "reports") == []

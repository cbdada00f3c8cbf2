"""Run tags: the commit, whether the tree was dirty, the DVC experiment, one execution id."""

import os
import socket
import subprocess
import time

from nextclose import tracking


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_run_tags_name_the_commit_and_whether_the_tree_is_dirty(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@nextclose.invalid")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    git(tmp_path, "add", "params.yaml")
    git(tmp_path, "commit", "-q", "-m", "one")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("NEXTCLOSE_EXECUTION_ID", "exec-1")
    tags = tracking.run_tags("train")
    assert tags == {"stage": "train", "pipeline_execution": "exec-1",
                    "git_commit": git(tmp_path, "rev-parse", "HEAD"), "git_dirty": "false",
                    "worker_host": socket.gethostname(), "worker_pid": str(os.getpid()),
                    "worker_started": tags["worker_started"]}
    assert float(tags["worker_started"]) <= time.time()
    (tmp_path / "untracked.txt").write_text("outputs DVC writes are not tracked by git\n")
    assert tracking.run_tags("train")["git_dirty"] == "false"
    (tmp_path / "params.yaml").write_text("a: 2\n")
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-lark")
    tags = tracking.run_tags("evaluate")
    assert tags["git_dirty"] == "true" and tags["dvc_experiment"] == "brisk-lark"


def test_a_stage_run_by_hand_gets_its_own_execution_id(monkeypatch):
    monkeypatch.delenv("NEXTCLOSE_EXECUTION_ID", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    first, second = tracking.pipeline_execution_id(), tracking.pipeline_execution_id()
    assert len(first) == 16 and first != second


def test_the_workspace_root_of_a_dvc_temporary_copy_is_the_workspace(tmp_path, monkeypatch):
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "run" / "abc123"
    copy.mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(copy))
    assert tracking.workspace_root() == (tmp_path / "repo").resolve()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{(tmp_path / 'repo').resolve() / 'mlflow.db'}"

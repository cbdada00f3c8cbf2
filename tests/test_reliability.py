"""Kills, crowds and copies: what a hostile or unlucky user does to a workspace.

Each stage is killed with SIGKILL just before each rename of its commit (and train in the
middle of training); the next `nextclose` command must leave every output all old or all
new, whole, with no temporary left, and mark the killed MLflow run KILLED.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
import yaml

from nextclose import atomic, cli

from helpers import tiny_params, write_params

pytestmark = pytest.mark.slow

# Runs a stage in this interpreter with os.replace patched to SIGKILL the process just
# before it renames onto DESTINATION (relative to the workspace), or, for "training",
# when the learning curve reaches step 20.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path

    stage, destination = sys.argv[1], sys.argv[2]
    real_replace = os.replace

    def replace(source, target):
        if Path(target).resolve() == Path(destination).resolve():
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(source, target)

    os.replace = replace
    if destination == "training":
        from nextclose.stages import train

        real_call = train.Progress.__call__

        def call(self, point):
            if point.step >= 20:
                os.kill(os.getpid(), signal.SIGKILL)
            real_call(self, point)

        train.Progress.__call__ = call
    from nextclose.cli import main

    sys.exit(main([stage]))
""")

# What each stage replaces in one commit, in the order of its renames.
RENAMES = {
    "prepare": [".nextclose-commit.json", "data/.raw.nextclose.old", "data/raw",
                "data/.prepared.nextclose.old", "data/prepared"],
    "train": [".nextclose-commit.json", ".models.nextclose.old", "models", "reports/train_history.csv",
              "reports/resolved_params.yaml", ".nextclose/train_run.json", "training"],
    "evaluate": [".nextclose-commit.json", "reports/metrics.json", "reports/scores.json", "reports/predictions.csv"],
    "backtest": [".nextclose-commit.json", "reports/backtest.json", "reports/backtest_scores.json",
                 "reports/backtest.csv"],
    "tune": [".nextclose-commit.json", "reports/best_params.yaml", "reports/tune.json", "reports/tune_study.json"],
}
OUTPUTS = {
    "prepare": ["data/raw", "data/prepared"],
    "train": ["models", "reports/train_history.csv", "reports/resolved_params.yaml", ".nextclose/train_run.json"],
    "evaluate": ["reports/metrics.json", "reports/scores.json", "reports/predictions.csv"],
    "backtest": ["reports/backtest.json", "reports/backtest_scores.json", "reports/backtest.csv"],
    "tune": ["reports/best_params.yaml", "reports/tune.json", "reports/tune_study.json"],
}
# A change each stage reads, so its new outputs differ from the old ones in every file.
NEW_PARAMS = {
    "prepare": {"features": {"window": 12}},
    "train": {"train": {"steps": 40}},
    "evaluate": {"evaluate": {"arima": True}},
    "backtest": {"backtest": {"folds": 3}},
    "tune": {"tune": {"hidden_units_max": 6, "n_trials": 1}},
}


def snapshot(root: Path, outputs: list[str]) -> dict[str, bytes]:
    """Every file of the outputs, by path; missing outputs are simply absent."""
    files = {}
    for output in outputs:
        path = root / output
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            files[str(file.relative_to(root))] = file.read_bytes()
    return files


def leftovers(root: Path) -> list[str]:
    names = []
    for folder in (root, root / "data", root / "reports", root / ".nextclose"):
        if folder.is_dir():
            names += [str(p.relative_to(root)) for p in folder.iterdir()
                      if p.name.endswith((".tmp", ".old")) or p.name == atomic.JOURNAL.name]
    return names


def tracking_uri(root: Path) -> str:
    """A store of the workspace's own under another name than the default mlflow.db, so the
    copies these tests make are not refused as copied checkouts (that has its own test)."""
    return f"sqlite:///{root / 'store.db'}"


def in_workspace(root: Path, monkeypatch) -> None:
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(root))
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A workspace where every stage has run once: the old outputs."""
    root = tmp_path_factory.mktemp("finished")
    monkeypatch = pytest.MonkeyPatch()
    in_workspace(root, monkeypatch)
    write_params(root, tiny_params(tune={"n_trials": 1}))
    for stage in ("prepare", "train", "evaluate", "backtest", "tune"):
        assert cli.main([stage]) == 0
    monkeypatch.undo()
    return root


def copy_of(finished: Path, destination: Path, stage: str) -> Path:
    shutil.copytree(finished, destination)
    write_params(destination, tiny_params(**{"tune": {"n_trials": 1}} | NEW_PARAMS[stage]))
    return destination


def run_stage(root: Path, stage: str, destination: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri(root), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("DVC_ROOT", None)
    return subprocess.run([sys.executable, "-c", KILLER, stage, destination], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def new_outputs(finished, tmp_path_factory):
    """Each stage's outputs from its new params, run to the end: what a completed commit gives."""
    outputs = {}
    for stage in RENAMES:
        root = copy_of(finished, tmp_path_factory.mktemp(f"new-{stage}") / "work", stage)
        done = run_stage(root, stage, "nowhere")
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[stage] = snapshot(root, OUTPUTS[stage])
    return outputs


def comparable(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files that a rerun reproduces byte for byte (run ids and study counts differ)."""
    return {k: v for k, v in files.items() if k not in (".nextclose/train_run.json", "reports/tune.json",
                                                "reports/tune_study.json")}


CASES = [(stage, destination) for stage, destinations in RENAMES.items() for destination in destinations]


@pytest.mark.parametrize("stage, destination", CASES)
def test_a_kill_at_any_rename_leaves_every_output_all_old_or_all_new(
    finished, new_outputs, tmp_path, monkeypatch, capsys, stage, destination
):
    root = copy_of(finished, tmp_path / "work", stage)
    old = snapshot(root, OUTPUTS[stage])
    done = run_stage(root, stage, destination)
    assert done.returncode == -9, f"the stage was not killed at {destination}: {done.stderr[-2000:]}"

    # The next nextclose command, whatever it is, mends the workspace first.
    in_workspace(root, monkeypatch)
    assert cli.main(["apply-best", "--best", "no-such-file.yaml"]) == 2
    said = capsys.readouterr().err
    now = snapshot(root, OUTPUTS[stage])
    committed = destination not in (".nextclose-commit.json", "training")
    if committed:
        assert "completed an interrupted commit" in said
        assert comparable(now) == comparable(new_outputs[stage])
        assert now != old
    else:
        assert now == old
    assert leftovers(root) == []
    for path in now:  # whole: every JSON output parses
        if path.endswith(".json"):
            json.loads(now[path])
        if path.endswith(".yaml"):
            yaml.safe_load(now[path])

    # The killed run does not stay RUNNING: the next stage run marks it KILLED.
    assert cli.main(["prepare"]) == 0
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(f"nextclose-{stage}")
    statuses = {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert "RUNNING" not in statuses.values()
    killed = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'KILLED'")
    assert killed and all("killed_reason" in r.data.tags for r in killed)


# --- crowds: processes started together on a fresh store ------------------------------------

def test_stages_started_together_on_a_fresh_store_all_succeed(tmp_path):
    store = tmp_path / "shared" / "mlflow.db"
    workers = []
    for index in range(3):
        root = tmp_path / f"w{index}"
        root.mkdir()
        write_params(root, tiny_params())
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{store}", TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("DVC_ROOT", None)
        workers.append(subprocess.Popen([sys.executable, "-m", "nextclose", "prepare"], cwd=root, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("nextclose-prepare")
    assert len(client.search_runs([experiment.experiment_id])) == 3


# --- copies: a workspace copied with its store --------------------------------------------------

def test_a_copied_workspace_never_writes_into_the_original(tmp_path, monkeypatch):
    original = tmp_path / "original"
    original.mkdir()
    write_params(original, tiny_params())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT"):
        env.pop(name, None)
    first = subprocess.run([sys.executable, "-m", "nextclose", "prepare"], cwd=original, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    before = sorted(str(p) for p in (original / "mlartifacts").rglob("*"))
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)
    second = subprocess.run([sys.executable, "-m", "nextclose", "prepare"], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 2
    assert f"{copy / 'mlflow.db'} was made in another workspace" in second.stderr
    assert str(original / "mlartifacts") in second.stderr
    assert sorted(str(p) for p in (original / "mlartifacts").rglob("*")) == before
    # As the message says: a store of its own, and the copy works.
    (copy / "mlflow.db").rename(copy / "mlflow.db.copied")
    third = subprocess.run([sys.executable, "-m", "nextclose", "prepare"], cwd=copy, env=env,
                           capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-2000:]
    assert any((copy / "mlartifacts").rglob("prepared.json"))
    assert sorted(str(p) for p in (original / "mlartifacts").rglob("*")) == before

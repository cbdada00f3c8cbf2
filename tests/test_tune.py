"""The tune stage: a persistent, shared Optuna study, pruning, dead workers, MLflow, apply-best."""

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import numpy as np
import optuna
import pytest
import yaml

from nextclose import cli, layout, redaction
from nextclose import study as studies
from nextclose.params import load_params, parse_params
from nextclose.stages import tune as tune_stage

from helpers import REPO, tiny_params, write_params


def journal(workspace):
    return studies.open_storage(str(workspace / "optuna-journal.log"))


def only_study(workspace):
    (summary,) = optuna.get_all_study_summaries(journal(workspace), include_best_trial=False)
    return optuna.load_study(study_name=summary.study_name, storage=journal(workspace))


# The tune tests test the study, not the ensembles (tests/test_ensemble.py does): one member a
# trial keeps them quick.
ONE_MEMBER = {"seeds": 1}


@pytest.fixture
def prepared(workspace):
    write_params(workspace, tiny_params(train=ONE_MEMBER))
    assert cli.main(["prepare"]) == 0
    return workspace


@pytest.mark.slow  # a whole tune stage run (or two): the fast suite keeps its 5 minutes
def test_tune_stage_records_study_reports_and_mlflow(prepared, capsys):
    assert cli.main(["tune"]) == 0
    study = only_study(prepared)
    assert study.study_name.startswith("nextclose-")
    assert len(study.trials) == 3
    report = json.loads((prepared / "reports/tune.json").read_text())
    where = json.loads((prepared / "reports/tune_study.json").read_text())
    best = yaml.safe_load((prepared / "reports/best_params.yaml").read_text())
    assert where["study_name"] == study.study_name
    assert where["storage"] == "optuna-journal.log"  # committed: no machine path
    assert report["best_value"] == pytest.approx(study.best_value)
    assert report["trials_total"] == 3
    assert all(isinstance(v, (int, float)) for v in [report["best_value"], *report["trials"].values()])
    assert not any(isinstance(v, str) for v in report.values())  # DVC metrics: numbers only
    # the dashboard's axis says what is minimised, and the study says what "no skill" scores
    assert study.metric_names == ["val_loss"]
    persistence = study.user_attrs["persistence_val_loss"]
    assert report["persistence_val_loss"] == persistence
    assert best["model"]["hidden_units"] == study.best_params["model.hidden_units"]
    assert best["train"]["steps"] == study.best_params["train.steps"]
    assert 2 <= best["model"]["hidden_units"] <= 8

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("nextclose-tune").experiment_id
    runs = client.search_runs([experiment])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    by_trial = {int(r.data.tags["optuna_trial"]): r for r in children}
    for trial in study.trials:
        child = by_trial[trial.number]
        assert child.data.tags["state"] == trial.state.name
        assert int(child.data.params["model.hidden_units"]) == trial.params["model.hidden_units"]
        curve = client.get_metric_history(child.info.run_id, "val_loss")
        assert [m.step for m in curve][0] == 0
        assert curve[0].value == pytest.approx(persistence, rel=1e-5)  # step 0 forecasts no change
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert child.data.metrics["best_val_loss"] == pytest.approx(trial.value)
    # parent and children share names: the best trial's values and loss sit in the children's columns
    assert parent.data.metrics["best_val_loss"] == pytest.approx(study.best_value)
    assert {k: parent.data.params[k] for k in study.best_params} == {
        k: str(v) for k, v in study.best_params.items()}
    assert parent.data.metrics["persistence_val_loss"] == pytest.approx(persistence)
    assert parent.data.metrics["trials_complete"] + parent.data.metrics["trials_pruned"] == 3
    # one execution id for the parent and all its trials, though the stage ran by hand
    assert {r.data.tags["pipeline_execution"] for r in runs} == {parent.data.tags["pipeline_execution"]}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")}
    assert "optuna/optimization_history.png" in artifacts
    models = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")
    best_units, best_steps = study.best_params["model.hidden_units"], study.best_params["train.steps"]
    assert [m.name for m in models] == [
        f"tune-best-lstm-h{best_units}-lr{study.best_params['train.learning_rate']:g}-s{best_steps}-x1"
        .replace(".", "_")]
    assert models[0].source_run_id == parent.info.run_id
    assert {m.key: m.value for m in models[0].metrics}["best_val_loss"] == pytest.approx(study.best_value)
    # the execution's run in the `nextclose` experiment has the params and the study's figures
    (execution,) = client.search_runs(
        [client.get_experiment_by_name("nextclose").experiment_id],
        filter_string=f"tags.pipeline_execution = '{parent.data.tags['pipeline_execution']}'")
    assert execution.data.metrics["tune_best_val_loss"] == pytest.approx(study.best_value)
    assert execution.data.params["tune.n_trials"] == "3" and execution.data.params["model.layers"] == "1"

    # Running again adds trials to the same study.
    capsys.readouterr()
    assert cli.main(["tune", "--n-trials", "2"]) == 0
    assert f"adding trials to study {study.study_name}" in capsys.readouterr().out
    trials = only_study(prepared).trials
    assert len(trials) == 5
    # a rerun draws new values instead of repeating the first run's
    assert trials[3].params != trials[0].params and trials[4].params != trials[1].params


def test_changed_search_space_starts_a_new_study(prepared, capsys):
    assert cli.main(["tune", "--n-trials", "1"]) == 0
    first = only_study(prepared).study_name
    write_params(prepared, tiny_params(tune={"hidden_units_max": 6}, train=ONE_MEMBER))
    capsys.readouterr()
    assert cli.main(["tune", "--n-trials", "1"]) == 0
    out = capsys.readouterr().out
    assert "data or search space changed: new study" in out and first in out
    names = {s.study_name for s in optuna.get_all_study_summaries(journal(prepared), False)}
    assert len(names) == 2 and first in names


def test_a_hopeless_trial_is_pruned(workspace):
    # A learnable series: steady momentum, so a good learning rate beats persistence quickly.
    from helpers import predictable_bars

    predictable_bars(300).to_csv(workspace / "walk.csv", index=False)
    params_dict = tiny_params(
        data={"source": "csv", "path": "walk.csv", "start": None, "end": None},
        train={"eval_every": 10, "steps_per_call": 10},
        tune={"steps_min": 200, "steps_max": 200, "steps_step": 1, "hidden_units_max": 8,
              "learning_rate_min": 1e-6},
    )
    write_params(workspace, params_dict)
    assert cli.main(["prepare"]) == 0
    params = parse_params(params_dict)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    study = optuna.create_study(
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=20))
    good = {"model.hidden_units": 8, "train.learning_rate": 0.01, "train.steps": 200}
    hopeless = {"model.hidden_units": 8, "train.learning_rate": 1e-6, "train.steps": 200}
    study.enqueue_trial(good)
    study.enqueue_trial(hopeless)
    with mlflow.start_run():
        study.optimize(tune_stage.make_objective(params, study, tune_stage.read_folds(params)), n_trials=2)
    good_trial, hopeless_trial = study.trials
    assert good_trial.state == optuna.trial.TrialState.COMPLETE
    assert hopeless_trial.state == optuna.trial.TrialState.PRUNED
    assert max(hopeless_trial.intermediate_values) < 200  # stopped before its last step


def tune_process(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "nextclose", "tune", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.mark.slow
def test_two_workers_share_the_default_storage(prepared):
    workers = [tune_process("--n-trials", "3") for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert not any("database is locked" in out for out in outputs)
    study = only_study(prepared)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))  # all recorded, none twice
    assert all(t.state.is_finished() for t in study.trials)
    # workers that start together on a fresh study still try different values
    values = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(values)) == len(values), values


@pytest.mark.slow
def test_a_killed_worker_leaves_no_trial_running(prepared):
    write_params(prepared, tiny_params(tune={"steps_min": 3000, "steps_max": 3000, "steps_step": 1}))
    worker = tune_process("--n-trials", "1")
    deadline = time.time() + 300
    running = []
    while time.time() < deadline and not running:
        time.sleep(0.5)
        if (prepared / "optuna-journal.log").exists() and os.path.getsize(prepared / "optuna-journal.log"):
            study = only_study(prepared)
            running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
            running = [t for t in running if "nextclose:worker" in t.system_attrs]
    assert running, "the worker never started a trial"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert only_study(prepared).trials[0].state == optuna.trial.TrialState.RUNNING

    # The next run fails the dead worker's trial and carries on.
    write_params(prepared, tiny_params(tune={"steps_min": 3000, "steps_max": 3000, "steps_step": 1}))
    assert cli.main(["tune", "--n-trials", "1"]) == 0
    study = only_study(prepared)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert study.trials[0].system_attrs["nextclose:failed"] == "worker died"


def test_stale_heartbeat_from_another_host_is_failed():
    study = optuna.create_study()
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, "nextclose:worker",
                                         {"host": "elsewhere", "pid": 1, "started": 0.0})
    study._storage.set_trial_system_attr(trial._trial_id, "nextclose:heartbeat", 1000.0)
    assert studies.fail_stale_trials(study, now=1000.0 + 60) == []  # still fresh
    assert studies.fail_stale_trials(study, now=1000.0 + studies.STALE_AFTER_SECONDS + 1) == [0]
    assert study.trials[0].state == optuna.trial.TrialState.FAIL


def test_storage_location_and_password_masking(tmp_path, monkeypatch):
    tune = parse_params(tiny_params()).tune
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert studies.storage_location(tune, tmp_path) == str(tmp_path / "optuna-journal.log")
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://tuner:s3cret@db.example:5432/optuna")
    location = studies.storage_location(tune, tmp_path)
    assert location.startswith("postgresql://")
    assert redaction.redact(studies.display_location(location)) == "postgresql://tuner:***@db.example:5432/optuna"


def test_apply_best_keeps_comments_and_layout(tmp_path):
    original = (REPO / "params.yaml").read_text()
    params_path = tmp_path / "params.yaml"
    params_path.write_text(original)
    best = tmp_path / "best.yaml"
    best.write_text(yaml.safe_dump({"study_name": "s", "best_value": 0.9, "model": {"hidden_units": 48},
                                    "train": {"learning_rate": 0.0025, "steps": 1750}}))
    assert cli.main(["apply-best", "--params", str(params_path), "--best", str(best)]) == 0
    updated = params_path.read_text()
    params = load_params(params_path)
    assert (params.model.hidden_units, params.train.learning_rate, params.train.steps) == (48, 0.0025, 1750)
    changed = [(a, b) for a, b in zip(original.splitlines(), updated.splitlines()) if a != b]
    assert len(changed) == 3 and len(original.splitlines()) == len(updated.splitlines())
    for before, after in changed:  # the value changed, the comment stayed
        assert before.split("#", 1)[1] == after.split("#", 1)[1]


def test_apply_best_without_a_best_trial_changes_nothing(tmp_path, capsys):
    params_path = tmp_path / "params.yaml"
    params_path.write_text((REPO / "params.yaml").read_text())
    best = tmp_path / "best.yaml"
    best.write_text("study_name: s\nbest_value: null\n")
    assert cli.main(["apply-best", "--params", str(params_path), "--best", str(best)]) == 2
    assert "holds no best trial" in capsys.readouterr().err
    assert params_path.read_text() == (REPO / "params.yaml").read_text()
    with pytest.raises(Exception, match="not found"):
        layout.read_best_params(tmp_path / "missing.yaml")


@pytest.mark.slow
def test_optuna_cli_and_dashboard_read_the_default_storage(prepared):
    import socket
    import urllib.request

    assert cli.main(["tune", "--n-trials", "2"]) == 0
    study = only_study(prepared)
    bin_dir = os.path.dirname(sys.executable)
    storage = "optuna-journal.log"  # as the README writes it, relative to the repository root
    best = subprocess.run(
        [os.path.join(bin_dir, "optuna"), "best-trial", "--study-name", study.study_name,
         "--storage", storage, "-f", "json"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert json.loads(best.stdout)["number"] == study.best_trial.number
    trials = subprocess.run(
        [os.path.join(bin_dir, "optuna"), "trials", "--study-name", study.study_name,
         "--storage", storage, "-f", "json"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert len(json.loads(trials.stdout)) == 2

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dashboard = subprocess.Popen(
        [os.path.join(bin_dir, "optuna-dashboard"), storage, "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as answer:
                    listed = json.loads(answer.read())
                break
            except OSError:
                if time.time() > deadline or dashboard.poll() is not None:
                    raise
                time.sleep(0.5)
        assert [s["study_name"] for s in listed["study_summaries"]] == [study.study_name]
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)


POSTGRES = os.environ.get("NEXTCLOSE_TEST_POSTGRES")


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES, reason="no server: export NEXTCLOSE_TEST_POSTGRES=$(bash .ci/postgres)")
def test_workers_share_a_study_in_a_postgresql_server(prepared, monkeypatch):
    """Workers on several machines share a server database; here two processes and a real server."""
    import uuid

    name = f"pg-{uuid.uuid4().hex[:8]}"  # the server outlives the test: a study of its own
    write_params(prepared, tiny_params(tune={"study_name": name}))
    monkeypatch.setenv("OPTUNA_STORAGE", POSTGRES)
    workers = [tune_process("--n-trials", "2") for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    storage = optuna.storages.RDBStorage(POSTGRES)
    (study_name,) = [s.study_name for s in optuna.get_all_study_summaries(storage, False)
                     if s.study_name.startswith(name)]
    study = optuna.load_study(study_name=study_name, storage=storage)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in study.trials)
    assert not (prepared / "optuna-journal.log").exists()
    where = json.loads((prepared / "reports/tune_study.json").read_text())
    assert where["storage"] == POSTGRES and where["study_name"] == study_name
    best = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "optuna"), "best-trial",
         "--study-name", study_name, "--storage", POSTGRES, "-f", "json"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert json.loads(best.stdout)["number"] == study.best_trial.number


# --- the study's identity -----------------------------------------------------------------

SUMMARY = {"source_sha256": "ab" * 32, "splits": {"train": {"samples": 10}},
           "normalisation": {"mean": [0.0], "std": [1.0]}}


def test_the_fingerprint_follows_data_space_and_fixed_settings():
    base = studies.study_fingerprint("data", {"x": {"low": 1}}, {"train.batch_size": 16})
    assert len(base) == 10 and base == studies.study_fingerprint("data", {"x": {"low": 1}}, {"train.batch_size": 16})
    assert studies.study_fingerprint("other data", {"x": {"low": 1}}, {"train.batch_size": 16}) != base
    assert studies.study_fingerprint("data", {"x": {"low": 2}}, {"train.batch_size": 16}) != base
    assert studies.study_fingerprint("data", {"x": {"low": 1}}, {"train.batch_size": 32}) != base


def study_name(tmp_path, params, summary=SUMMARY) -> tuple[str, bool]:
    study, is_new, _ = studies.open_study(params, summary, str(tmp_path / "journal.log"))
    return study.study_name, is_new


@pytest.mark.parametrize("change", [
    {"train": {"batch_size": 32}}, {"train": {"patience": 3}}, {"train": {"eval_every": 10}},
    {"model": {"layers": 2}}, {"model": {"dropout": 0.1}}, {"base": {"seed": 7}},
    {"train": {"steps_per_call": 5}},
])
def test_a_changed_fixed_setting_opens_a_new_study(tmp_path, change):
    first, is_new = study_name(tmp_path, parse_params(tiny_params()))
    assert is_new
    again, is_new = study_name(tmp_path, parse_params(tiny_params()))
    assert again == first and not is_new
    changed, is_new = study_name(tmp_path, parse_params(tiny_params(**change)))
    assert changed != first and is_new


def test_the_searched_values_and_log_every_do_not_change_the_study(tmp_path):
    first, _ = study_name(tmp_path, parse_params(tiny_params()))
    same = tiny_params(model={"hidden_units": 64}, train={"learning_rate": 0.5, "steps": 7, "log_every": 3})
    assert study_name(tmp_path, parse_params(same)) == (first, False)


@pytest.mark.parametrize("key, value", [
    ("source_sha256", "cd" * 32), ("splits", {"train": {"samples": 11}}),
    ("normalisation", {"mean": [0.5], "std": [1.0]}),
])
def test_changed_data_opens_a_new_study(tmp_path, key, value):
    params = parse_params(tiny_params())
    first, _ = study_name(tmp_path, params)
    changed, is_new = study_name(tmp_path, params, SUMMARY | {key: value})
    assert changed != first and is_new
    study, _, others = studies.open_study(params, SUMMARY | {key: value}, str(tmp_path / "journal.log"))
    assert others == [first]
    assert study.user_attrs["fixed_settings"] == studies.fixed_settings(params)
    assert study.user_attrs["search_space"] == studies.search_space(params.tune)


def test_optuna_storage_wins_over_tune_storage(tmp_path, monkeypatch):
    tune = parse_params(tiny_params(tune={"storage": "studies/mine.log"})).tune
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert studies.storage_location(tune, tmp_path) == str(tmp_path / "studies" / "mine.log")
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///elsewhere.db")
    assert studies.storage_location(tune, tmp_path) == "sqlite:///elsewhere.db"


def test_each_pruner_kind():
    median = studies.make_pruner("median", 20, 300)
    assert isinstance(median, optuna.pruners.MedianPruner)
    hyperband = studies.make_pruner("hyperband", 20, 300)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert (hyperband._min_resource, hyperband._max_resource) == (20, 300)
    assert isinstance(studies.make_pruner("none", 20, 300), optuna.pruners.NopPruner)


@pytest.mark.slow  # a whole tune stage run (or two): the fast suite keeps its 5 minutes
def test_a_tune_run_with_hyperband_and_with_no_pruner(prepared):
    for pruner in ("hyperband", "none"):
        # one member: this is about the pruners, and the fast suite's time
        write_params(prepared, tiny_params(tune={"pruner": pruner, "n_trials": 1}, train={"seeds": 1}))
        assert cli.main(["tune"]) == 0
    names = {s.study_name for s in optuna.get_all_study_summaries(journal(prepared), False)}
    assert len(names) == 1  # the pruner is not part of the study's identity
    assert [t.state for t in only_study(prepared).trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_the_timeout_stops_starting_trials(prepared):
    write_params(prepared, tiny_params(tune={"timeout": 0.5, "n_trials": 5}, train={"seeds": 1}))  # a trial: seconds
    assert cli.main(["tune"]) == 0
    assert len(only_study(prepared).trials) == 1  # the first trial starts, no second one


def test_zero_trials_is_refused(prepared, capsys):
    assert cli.main(["tune", "--n-trials", "0"]) == 2
    assert "--n-trials: must be at least 1" in capsys.readouterr().err
    assert not (prepared / "optuna-journal.log").exists()


def test_tuning_never_reads_the_test_split(prepared):
    """Trials on data whose test samples are garbage give the very same values."""
    assert cli.main(["tune", "--n-trials", "1"]) == 0
    clean = [(t.params, t.value, t.state) for t in only_study(prepared).trials]
    windows = dict(np.load(prepared / "data/prepared/windows.npz"))
    for key in [k for k in windows if k.startswith("test_")]:
        if windows[key].dtype.kind == "f":
            windows[key] = np.full_like(windows[key], np.nan)
    np.savez(prepared / "data/prepared/windows.npz", **windows)
    (prepared / "optuna-journal.log").unlink()
    assert cli.main(["tune", "--n-trials", "1"]) == 0
    assert [(t.params, t.value, t.state) for t in only_study(prepared).trials] == clean


# --- secrets and paths ----------------------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    ("postgresql://tuner:s3cret@db:5432/optuna", "postgresql://tuner:***@db:5432/optuna"),
    ("postgresql+psycopg2://tuner:se/cr:et@db/optuna", "postgresql+psycopg2://tuner:***@db/optuna"),
    ("mysql://tuner:a%40b@db/optuna", "mysql://tuner:***@db/optuna"),
    ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
    ("postgresql://tuner@db/optuna", "postgresql://tuner@db/optuna"),
    ("sqlite:///studies.db", "sqlite:///studies.db"),
])
def test_storage_passwords_are_masked_whatever_they_hold(url, shown):
    assert redaction.redact(studies.display_location(url)) == shown
    password = redaction.password_in_url(url)
    if password:
        assert password not in redaction.redact(url)
        assert redaction.redact(f"could not connect with {password}", also=[password]) == "could not connect with ***"


def test_a_journal_inside_the_workspace_is_shown_relative_to_it(tmp_path):
    assert studies.display_location(str(tmp_path / "optuna-journal.log"), tmp_path) == "optuna-journal.log"
    assert studies.display_location("/elsewhere/journal.log", tmp_path) == "/elsewhere/journal.log"


def test_an_unreachable_storage_is_a_clear_error_without_its_password(prepared, capsys, monkeypatch):
    monkeypatch.setattr(studies.time, "sleep", lambda seconds: None)
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql+psycopg2://tuner:se/cr:et@127.0.0.1:1/optuna")
    assert cli.main(["tune", "--n-trials", "1"]) == 2
    captured = capsys.readouterr()
    assert "storage postgresql+psycopg2://tuner:***@127.0.0.1:1/optuna: cannot be opened" in captured.err
    assert "se/cr:et" not in captured.out + captured.err


def test_a_missing_database_driver_is_named(prepared, capsys, monkeypatch):
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql+nosuchdriver://tuner:pw@127.0.0.1:1/optuna")
    assert cli.main(["tune", "--n-trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "storage postgresql+nosuchdriver://tuner:***@127.0.0.1:1/optuna" in err and ":pw@" not in err


def test_postgresql_without_its_driver_installed_says_what_to_install(prepared, capsys, monkeypatch):
    # SQLAlchemy's default driver for a bare postgresql:// is psycopg (3), which nothing installs
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://tuner:pw@127.0.0.1:1/optuna")
    assert cli.main(["tune", "--n-trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "needs the Python driver 'psycopg'" in err and "postgresql+psycopg2://" in err and ":pw@" not in err


def test_samplers_of_two_workers_draw_different_values_and_one_worker_repeats_itself():
    def objective(trial):
        return studies.suggest_params(trial, parse_params(tiny_params()).tune)["train.learning_rate"]

    def grown_by_one_worker():
        study = optuna.create_study(sampler=studies.make_sampler(42))
        study.optimize(objective, n_trials=7)
        return [t.params for t in study.trials]

    assert grown_by_one_worker() == grown_by_one_worker()  # a fresh study grows the same way
    # Two workers that open a fresh study at the same moment: each asks for a trial first.
    shared = optuna.create_study()
    first, second = studies.make_sampler(42), studies.make_sampler(42)
    shared.sampler = first
    trial_a = shared.ask()
    shared.sampler = second
    trial_b = shared.ask()
    values_b = studies.suggest_params(trial_b, parse_params(tiny_params()).tune)
    shared.sampler = first
    values_a = studies.suggest_params(trial_a, parse_params(tiny_params()).tune)
    assert values_a != values_b


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES, reason="no server: export NEXTCLOSE_TEST_POSTGRES=$(bash .ci/postgres)")
def test_a_storage_password_reaches_no_log_run_model_or_file(prepared, monkeypatch, capsys):
    """The throwaway server trusts loopback, so it takes any password: one full of / and :."""
    import uuid

    password = f"se/cr:et{uuid.uuid4().hex[:6]}"
    scheme, rest = POSTGRES.split("://", 1)
    user, host = rest.split("@", 1)
    monkeypatch.setenv("OPTUNA_STORAGE", f"{scheme}://{user}:{password}@{host}")
    write_params(prepared, tiny_params(tune={"study_name": f"secret-{uuid.uuid4().hex[:8]}", "n_trials": 2}))
    assert cli.main(["tune"]) == 0
    captured = capsys.readouterr()
    assert password not in captured.out + captured.err and ":***@" in captured.out
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("nextclose-tune").experiment_id
    for found in client.search_runs([experiment]):
        assert password not in json.dumps({**found.data.params, **found.data.tags})
    for model in mlflow.search_logged_models(experiment_ids=[experiment], output_format="list"):
        assert password not in json.dumps(model.params) and password not in json.dumps(model.tags)
    for file in prepared.rglob("*"):
        if file.is_file() and file.name != "mlflow.db":
            assert password.encode() not in file.read_bytes(), file
    assert password.encode() not in (prepared / "mlflow.db").read_bytes()

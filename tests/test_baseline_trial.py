"""tune.baseline_trial: a study holds a trial of the lstm kind's defaults, so its best is never
worse on the folds than the defaults."""

import dataclasses
import os

import mlflow
import optuna
import pytest

from nextclose import cli
from nextclose import study as studies
from nextclose.params import KIND_DEFAULTS, load_params, parse_params
from nextclose.search_space import SEARCHED
from nextclose.stages import tune as tune_stage

from helpers import REPO, tiny_params, write_params

TUNE = load_params(REPO / "params.yaml").tune  # the committed search space, which holds the defaults


def in_memory_study() -> optuna.Study:
    return optuna.create_study(sampler=studies.make_sampler(0))


def score_one(study: optuna.Study, value: float = 1.0) -> optuna.trial.FrozenTrial:
    study.optimize(lambda trial: (studies.suggest_params(trial, TUNE), value)[1], n_trials=1)
    return study.trials[-1]


def test_the_baseline_is_the_lstm_defaults_and_the_committed_space_holds_them():
    values = studies.baseline_values()
    assert values == {row.name: KIND_DEFAULTS["lstm"][row.key] for row in SEARCHED}
    assert values == {"model.hidden_units": 32, "train.learning_rate": 0.001, "train.steps": 3000}
    assert all(row.holds(values[row.name], TUNE) for row in SEARCHED)


@pytest.mark.parametrize("key, value, held", [
    ("steps", 3000, True), ("steps", 500, True), ("steps", 2750, True),
    ("steps", 2900, False),  # off the grid of tune.steps_step 250
    ("steps", 3250, False), ("steps", 250, False),
    ("hidden_units", 8, True), ("hidden_units", 128, True), ("hidden_units", 129, False), ("hidden_units", 7, False),
    ("learning_rate", 0.01, True), ("learning_rate", 0.0101, False), ("learning_rate", 0.00009, False),
])
def test_holds_is_what_the_search_can_draw(key, value, held):
    (row,) = [row for row in SEARCHED if row.key == key]
    assert row.holds(value, TUNE) is held


def test_the_baseline_is_queued_once_and_is_the_first_trial():
    study = in_memory_study()
    assert studies.enqueue_baseline(study, TUNE).startswith("the lstm kind's defaults queued first")
    assert studies.enqueue_baseline(study, TUNE) == "the lstm kind's defaults are trial 0 (waiting)"
    assert studies.baseline_value(study) is None  # not scored yet
    first = score_one(study, 0.5)
    assert first.params == studies.baseline_values()
    assert first.user_attrs["baseline"] == "the lstm kind's defaults"
    assert studies.baseline_value(study) == 0.5
    second = score_one(study, 0.25)  # then the sampler's own draws
    assert second.params != first.params and "baseline" not in second.user_attrs
    assert studies.enqueue_baseline(study, TUNE) == "the lstm kind's defaults are trial 0 (complete)"
    assert len(study.trials) == 2


def test_a_failed_baseline_is_queued_again():
    study = in_memory_study()
    studies.enqueue_baseline(study, TUNE)

    def dies(trial):
        studies.suggest_params(trial, TUNE)
        raise RuntimeError("the worker's training diverged")

    study.optimize(dies, n_trials=1, catch=(RuntimeError,))
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert studies.enqueue_baseline(study, TUNE).startswith("the lstm kind's defaults queued first")
    assert score_one(study).params == studies.baseline_values()


def test_outside_the_search_space_the_baseline_is_not_queued_and_the_keys_are_named():
    narrow = dataclasses.replace(TUNE, hidden_units_max=16, steps_max=2000)
    study = in_memory_study()
    said = studies.enqueue_baseline(study, narrow)
    assert said == ("the lstm kind's defaults are outside the search space "
                    "(model.hidden_units 32, train.steps 3000): not queued")
    assert study.trials == []


@pytest.fixture
def prepared(workspace):
    write_params(workspace, tiny_params(train={"seeds": 1}, tune={"baseline_trial": True}))
    assert cli.main(["prepare"]) == 0
    return workspace


@pytest.mark.slow  # two tune stage runs: the fast suite keeps its 5 minutes
def test_the_tune_stage_runs_the_baseline_first_and_logs_its_value(prepared, monkeypatch, capsys):
    # The tiny search space cannot hold 32 units and 3000 steps: a tiny baseline in their place.
    tiny_defaults = {"model.hidden_units": 4, "train.learning_rate": 0.003, "train.steps": 40}
    monkeypatch.setattr(studies, "baseline_values", lambda: dict(tiny_defaults))
    assert cli.main(["tune", "--n-trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "the lstm kind's defaults queued first" in out
    (summary,) = optuna.get_all_study_summaries(studies.open_storage(str(prepared / "optuna-journal.log")))
    study = optuna.load_study(study_name=summary.study_name,
                              storage=studies.open_storage(str(prepared / "optuna-journal.log")))
    first, second = study.trials
    assert first.params == tiny_defaults and first.state == optuna.trial.TrialState.COMPLETE
    assert second.params != tiny_defaults
    assert f"the lstm kind's defaults: val_loss {first.value:.4f}" in out

    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("nextclose-tune").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    by_trial = {int(r.data.tags["optuna_trial"]): r for r in runs if "optuna_trial" in r.data.tags}
    assert by_trial[0].data.tags["baseline"] == "the lstm kind's defaults"
    assert "baseline" not in by_trial[1].data.tags
    assert parent.data.metrics["baseline_val_loss"] == pytest.approx(first.value)

    # A second run finds the baseline in the study and queues no other.
    assert cli.main(["tune", "--n-trials", "1"]) == 0
    assert "the lstm kind's defaults are trial 0 (complete)" in capsys.readouterr().out
    assert [t.params == tiny_defaults for t in optuna.load_study(
        study_name=summary.study_name, storage=studies.open_storage(str(prepared / "optuna-journal.log"))).trials] == [
        True, False, False]


def test_baseline_trial_false_queues_nothing(prepared, monkeypatch, capsys):
    write_params(prepared, tiny_params(train={"seeds": 1}, tune={"baseline_trial": False}))
    monkeypatch.setattr(studies, "baseline_values", lambda: {"model.hidden_units": 4, "train.learning_rate": 0.003,
                                                             "train.steps": 40})
    assert cli.main(["tune", "--n-trials", "1"]) == 0
    assert "defaults" not in capsys.readouterr().out


def test_the_baseline_is_never_pruned_though_a_trial_as_bad_is(workspace):
    """Measured: the median pruner cut the defaults after their first fold (1.3944 against a
    median of about 1.393). A baseline that does not finish cannot be what the tuner keeps."""
    settings = tiny_params(train={"seeds": 1}, tune={"cv_folds": 2})
    write_params(workspace, settings)
    assert cli.main(["prepare"]) == 0
    params = parse_params(settings)
    folds = tune_stage.read_folds(params)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    space = studies.search_space(params.tune)
    distributions = {
        "model.hidden_units": optuna.distributions.IntDistribution(space["model.hidden_units"]["low"],
                                                                   space["model.hidden_units"]["high"], log=True),
        "train.learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "train.steps": optuna.distributions.IntDistribution(20, 60, step=20),
    }
    # a finished trial no real one can match: every fold scored 0
    study.add_trial(optuna.trial.create_trial(
        params={"model.hidden_units": 4, "train.learning_rate": 0.003, "train.steps": 40},
        distributions=distributions, value=0.0, intermediate_values={1: 0.0, 2: 0.0}))
    bad = {"model.hidden_units": 2, "train.learning_rate": 1e-4, "train.steps": 20}
    study.enqueue_trial(bad)
    study.enqueue_trial(bad, user_attrs={"baseline": studies.BASELINE})
    with mlflow.start_run():
        study.optimize(tune_stage.make_objective(params, study, folds), n_trials=2)
    _, ordinary, baseline = study.trials
    assert ordinary.state == optuna.trial.TrialState.PRUNED and sorted(ordinary.intermediate_values) == [1]
    assert baseline.state == optuna.trial.TrialState.COMPLETE and sorted(baseline.intermediate_values) == [1, 2]
    assert baseline.intermediate_values[1] == pytest.approx(ordinary.intermediate_values[1])  # as bad
    assert studies.enqueue_baseline(study, params.tune).startswith(
        "the lstm kind's defaults are outside the search space")  # the tiny space


def test_a_pruned_baseline_is_queued_again():
    study = in_memory_study()
    studies.enqueue_baseline(study, TUNE)

    def pruned(trial):
        studies.suggest_params(trial, TUNE)
        raise optuna.TrialPruned()

    study.optimize(pruned, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert studies.enqueue_baseline(study, TUNE).startswith("the lstm kind's defaults queued first")

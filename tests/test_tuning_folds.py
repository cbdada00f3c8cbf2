"""tune.cv_folds: each trial scored on expanding-window blocks of the training and validation
period, never on the test split or a walk-forward day; per-fold values in the study and in
MLflow; pruning per fold; the folds part of the study's identity."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest

from nextclose import cli, features, layout, metrics, training
from nextclose import study as studies
from nextclose.errors import DataError
from nextclose.params import ParamsError, parse_params
from nextclose.stages import tune as tune_stage

from helpers import random_walk_bars, tiny_params, write_params

SUMMARY = {"source_sha256": "ab" * 32, "splits": {"train": {"samples": 10}},
           "normalisation": {"mean": [0.0], "std": [1.0]}}
ONE_MEMBER = {"seeds": 1}


def tiny(**overrides):
    return parse_params(tiny_params(**overrides))


def prepare(workspace, **overrides):
    params = tiny_params(train=ONE_MEMBER, **overrides)
    write_params(workspace, params)
    assert cli.main(["prepare"]) == 0
    return parse_params(params)


def folds_of(params):
    return tune_stage.read_folds(params)


def same_windows(a, b):
    for name in ("inputs", "targets", "last_close", "next_close", "target_dates"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# --- the plan ----------------------------------------------------------------------------------------

def test_one_fold_is_the_data_the_train_stage_reads(workspace):
    params = prepare(workspace, tune={"cv_folds": 1})
    (fold,) = folds_of(params)
    data = layout.read_training_data()
    same_windows(fold.data.train, data.train)
    same_windows(fold.data.validation, data.validation)
    assert fold.data.normalisation == data.normalisation
    scaled = data.validation.targets.astype(np.float64) / data.normalisation.target_scale
    assert fold.persistence_val_loss == pytest.approx(float(np.mean(scaled**2)), rel=1e-12)


def test_blocks_are_validation_long_consecutive_and_end_with_the_validation_split(workspace):
    params = prepare(workspace, tune={"cv_folds": 3})
    folds = folds_of(params)
    windows = layout.read_windows()
    block = len(windows["validation"].targets)
    assert [fold.number for fold in folds] == [1, 2, 3]
    assert all(len(fold.data.validation.targets) == block for fold in folds)
    same_windows(folds[-1].data.validation, windows["validation"])
    tuning = np.concatenate([windows["train"].target_dates, windows["validation"].target_dates])
    for fold in folds:
        # expanding window: every sample before the block trains, and nothing after it
        start = np.flatnonzero(tuning == fold.data.validation.target_dates[0])[0]
        np.testing.assert_array_equal(fold.data.train.target_dates, tuning[:start])
        assert fold.dates()["start"] == str(fold.data.validation.target_dates[0])
        assert fold.dates()["train_end"] < fold.dates()["start"]
    for earlier, later in zip(folds, folds[1:]):
        assert earlier.data.validation.target_dates[-1] < later.data.validation.target_dates[0]
        assert len(later.data.train.targets) == len(earlier.data.train.targets) + block
    # never a test day
    first_test = windows["test"].target_dates[0]
    assert all(fold.data.validation.target_dates[-1] < first_test for fold in folds)


def test_each_folds_normalisation_is_fitted_on_its_own_training_samples(workspace):
    params = prepare(workspace, tune={"cv_folds": 2})
    first, second = folds_of(params)
    windows = layout.read_windows()
    names = layout.read_normalisation().feature_names
    raw_train = features.select(windows["train"], windows["train"].target_dates <= np.datetime64(first.train_end))
    assert first.data.normalisation == features.fit_normalisation(raw_train, names)
    assert first.data.normalisation != second.data.normalisation
    # the windows train on are the prepared raw windows, not rescaled ones
    np.testing.assert_array_equal(first.data.train.inputs, raw_train.inputs)


def test_the_references_by_hand(workspace):
    params = prepare(workspace, tune={"cv_folds": 2})
    bars = layout.read_prepared_bars()
    for fold in folds_of(params):
        scale = fold.data.normalisation.target_scale
        targets = fold.data.validation.targets.astype(np.float64)
        before = bars.loc[pd.to_datetime(bars["date"]) < pd.Timestamp(fold.start), "close"].to_numpy()
        rate = metrics.drift_rate(before)
        assert fold.persistence_val_loss == pytest.approx(np.mean((targets / scale) ** 2), rel=1e-12)
        assert fold.drift_val_loss == pytest.approx(np.mean(((targets - rate) / scale) ** 2), rel=1e-12)


def test_the_walk_forward_days_stay_out_when_the_backtest_reaches_into_validation(workspace):
    params = prepare(workspace, tune={"cv_folds": 2})
    windows = layout.read_windows()
    test_days = len(windows["test"].targets)
    reaching = parse_params(tiny_params(train=ONE_MEMBER, tune={"cv_folds": 2},
                                        backtest={"days": test_days + 10}))
    folds = folds_of(reaching)
    first_walked = np.concatenate([windows[s].target_dates for s in features.SPLITS])[-(test_days + 10)]
    assert folds[-1].data.validation.target_dates[-1] < first_walked
    assert folds[-1].end != folds_of(params)[-1].end


def test_too_many_folds_for_the_data_names_the_key(workspace):
    prepare(workspace, tune={"cv_folds": 1})
    with pytest.raises(DataError, match=r"tune.cv_folds=10: 10 blocks of \d+ days"):
        folds_of(tiny(train=ONE_MEMBER, tune={"cv_folds": 10}))


def test_cv_folds_out_of_range_is_refused():
    for bad in (0, 11):
        with pytest.raises(ParamsError, match="tune.cv_folds: must lie in 1 .. 10"):
            tiny(tune={"cv_folds": bad})


def test_a_panel_is_cut_in_days_with_each_symbol_scaled_on_the_folds_past(workspace):
    parts = [random_walk_bars(260, seed=s).assign(symbol=name) for s, name in enumerate(("AAA", "BBB", "CCC"))]
    table = pd.concat(parts)
    table.assign(date=table["date"].dt.strftime("%Y-%m-%d")).to_csv(workspace / "panel.csv", index=False)
    params = prepare(workspace, data={"source": "panel_csv", "path": "panel.csv", "start": None, "end": None},
                     tune={"cv_folds": 2})
    first, second = folds_of(params)
    windows = layout.read_windows()
    validation_days = np.unique(windows["validation"].target_dates)
    assert len(np.unique(second.data.validation.target_dates)) == len(validation_days)
    np.testing.assert_array_equal(np.unique(second.data.validation.target_dates), validation_days)
    assert first.data.validation.target_dates.max() < second.data.validation.target_dates.min()
    raw = layout.read_windows()["train"]
    names = layout.read_normalisation().feature_names
    past = features.select(raw, raw.target_dates <= np.datetime64(first.train_end))
    assert first.per_symbol == features.fit_panel_normalisation(past, names, ["AAA", "BBB", "CCC"])
    # one fold: the prepared per-symbol statistics and scaled windows, as training reads them
    (only,) = folds_of(parse_params(tiny_params(
        train=ONE_MEMBER, data={"source": "panel_csv", "path": "panel.csv", "start": None, "end": None},
        tune={"cv_folds": 1})))
    assert only.per_symbol == layout.read_panel_normalisation()
    same_windows(only.data.train, layout.read_training_data().train)


# --- the study's identity ----------------------------------------------------------------------------

def test_cv_folds_is_part_of_the_studys_name_and_one_fold_keeps_the_old_name():
    def fingerprint(params):
        return studies.study_fingerprint(studies.data_identity(SUMMARY), studies.search_space(params.tune),
                                         studies.fixed_settings(params))

    assert len({fingerprint(tiny(tune={"cv_folds": k})) for k in (1, 2, 3)}) == 3
    assert fingerprint(tiny(tune={"cv_folds": 1})) == "3a23a8169d"  # what the code before tune.cv_folds gave
    fixed = studies.fixed_settings(tiny(tune={"cv_folds": 1}))
    assert "tune.cv_folds" not in fixed  # the name every study before tune.cv_folds had
    assert studies.fixed_settings(tiny(tune={"cv_folds": 3}))["tune.cv_folds"] == 3


def test_the_pruner_judges_per_fold_with_several_folds():
    median = studies.make_pruner("median", 20, 60, cv_folds=3)
    assert isinstance(median, optuna.pruners.MedianPruner) and median._n_warmup_steps == 0
    hyperband = studies.make_pruner("hyperband", 20, 60, cv_folds=3)
    assert hyperband._min_resource == 1 and hyperband._max_resource == 3
    assert studies.make_pruner("median", 20, 60)._n_warmup_steps == 60  # one fold: by training step


# --- the objective -----------------------------------------------------------------------------------

def test_a_trial_is_the_mean_of_its_folds_with_each_visible_in_mlflow_and_the_study(workspace):
    params = prepare(workspace, tune={"cv_folds": 2, "pruner": "none"})
    folds = folds_of(params)
    mlflow.set_tracking_uri(__import__("os").environ["MLFLOW_TRACKING_URI"])
    study = optuna.create_study()
    study.enqueue_trial({"model.hidden_units": 4, "train.learning_rate": 0.003, "train.steps": 40})
    with mlflow.start_run():
        study.optimize(tune_stage.make_objective(params, study, folds), n_trials=1)
    (trial,) = study.trials
    values = trial.user_attrs["fold_val_loss"]
    assert len(values) == 2 and trial.value == pytest.approx(np.mean(values), rel=1e-12)
    assert trial.intermediate_values == {1: pytest.approx(values[0]), 2: pytest.approx(np.mean(values))}
    # each fold's value is what training on that fold alone gives (training is deterministic)
    trial_params = studies.with_trial_values(params, trial.params)
    alone = [training.train_model(fold.data, trial_params.model, trial_params.train, trial_params.base.seed).best_loss
             for fold in folds]
    assert values == pytest.approx(alone, rel=1e-6)
    client = mlflow.MlflowClient()
    child = client.get_run(trial.user_attrs["mlflow_run_id"])
    history = client.get_metric_history(child.info.run_id, "fold_val_loss")
    assert [(m.step, m.value) for m in history] == [(1, pytest.approx(values[0])), (2, pytest.approx(values[1]))]
    references = client.get_metric_history(child.info.run_id, "fold_persistence_val_loss")
    assert [m.value for m in references] == pytest.approx([fold.persistence_val_loss for fold in folds])
    assert child.data.metrics["best_val_loss"] == pytest.approx(trial.value)
    # each fold's learning curve under its own name
    assert client.get_metric_history(child.info.run_id, "fold2/served_val_loss")[0].step == 0


@pytest.mark.slow  # two trials of three folds
def test_a_trial_whose_first_fold_is_bad_is_pruned_there(workspace):
    params = prepare(workspace, tune={"cv_folds": 3})
    folds = folds_of(params)
    mlflow.set_tracking_uri(__import__("os").environ["MLFLOW_TRACKING_URI"])
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.enqueue_trial({"model.hidden_units": 4, "train.learning_rate": 0.01, "train.steps": 60})
    study.enqueue_trial({"model.hidden_units": 2, "train.learning_rate": 1e-6, "train.steps": 20})
    with mlflow.start_run():
        study.optimize(tune_stage.make_objective(params, study, folds), n_trials=2)
    good, hopeless = study.trials
    assert good.state == optuna.trial.TrialState.COMPLETE and sorted(good.intermediate_values) == [1, 2, 3]
    if hopeless.intermediate_values[1] > good.intermediate_values[1]:
        assert hopeless.state == optuna.trial.TrialState.PRUNED
        assert sorted(hopeless.intermediate_values) == [1]  # stopped after its first fold
        assert len(hopeless.user_attrs["fold_val_loss"]) == 1
    else:  # a learning rate this low leaves the forecast at "no change"; it must then score as such
        pytest.fail(f"the hopeless trial scored {hopeless.intermediate_values[1]} on fold 1, the good one "
                    f"{good.intermediate_values[1]}")


@pytest.mark.slow  # a whole tune stage with folds
def test_the_stage_records_the_folds_and_their_references(workspace, capsys):
    prepare(workspace, tune={"cv_folds": 2, "n_trials": 2})
    assert cli.main(["tune"]) == 0
    out = capsys.readouterr().out
    assert "2 fold(s), each trained on every day before it" in out
    (summary,) = optuna.get_all_study_summaries(studies.open_storage(str(workspace / "optuna-journal.log")), False)
    study = optuna.load_study(study_name=summary.study_name,
                              storage=studies.open_storage(str(workspace / "optuna-journal.log")))
    folds = folds_of(parse_params(tiny_params(train=ONE_MEMBER, tune={"cv_folds": 2, "n_trials": 2})))
    assert study.user_attrs["cv_folds"] == [fold.dates() for fold in folds]
    assert study.user_attrs["persistence_val_loss"] == pytest.approx(
        np.mean([fold.persistence_val_loss for fold in folds]))
    assert study.user_attrs["fold_drift_val_loss"] == pytest.approx([fold.drift_val_loss for fold in folds])
    report = json.loads((workspace / "reports/tune.json").read_text())
    assert list(report) == ["objective", "best_value", "best_trial", "persistence_val_loss", "trials",
                            "trials_total"]  # the shape tune.json always had
    assert report["persistence_val_loss"] == study.user_attrs["persistence_val_loss"]


@pytest.mark.slow  # a panel tuned on two folds
def test_rank_ic_is_the_mean_over_the_folds_reported_fold_by_fold(workspace):
    from test_tune_objective import momentum_panel

    momentum_panel().to_csv(workspace / "panel.csv", index=False)
    params = prepare(workspace, data={"source": "panel_csv", "path": "panel.csv", "start": None, "end": None},
                     tune={"objective": "rank_ic", "cv_folds": 2, "pruner": "none"}, )
    folds = folds_of(params)
    mlflow.set_tracking_uri(__import__("os").environ["MLFLOW_TRACKING_URI"])
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"model.hidden_units": 4, "train.learning_rate": 0.01, "train.steps": 40})
    with mlflow.start_run():
        study.optimize(tune_stage.make_objective(params, study, folds), n_trials=1)
    (trial,) = study.trials
    values = trial.user_attrs["fold_val_rank_ic"]
    assert len(values) == 2 and trial.value == pytest.approx(np.mean(values), rel=1e-12)
    assert trial.intermediate_values == {1: pytest.approx(values[0]), 2: pytest.approx(np.mean(values))}
    assert len(trial.user_attrs["fold_val_loss"]) == 2 and all(d > 5 for d in trial.user_attrs["fold_val_rank_ic_days"])

"""The walk-forward backtest: folds that never see their own days, and its report."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from nextclose import backtest, evaluation, features, metrics, preparation, significance, training
from nextclose.cli import main
from nextclose.errors import DataError
from nextclose.params import EvaluateParams, parse_params

from helpers import random_walk_bars, tiny_params, write_params

EVALUATE = EvaluateParams(arima=True, arima_max_p=1, arima_max_q=0, interval=0.9, block_length=5,
                          bootstrap_draws=200)


# --- the folds --------------------------------------------------------------------------------

def test_folds_cut_the_last_days_in_order_and_train_on_everything_before():
    folds = backtest.plan_folds(n_samples=100, days=23, folds=4, validation_days=10)
    forecast = np.concatenate([fold.forecast for fold in folds])
    np.testing.assert_array_equal(forecast, np.arange(77, 100))  # every day once, in order
    assert [len(fold.forecast) for fold in folds] == [6, 6, 6, 5]  # as equal as can be
    assert [fold.number for fold in folds] == [1, 2, 3, 4]
    for fold in folds:
        start = fold.forecast[0]
        np.testing.assert_array_equal(fold.validation, np.arange(start - 10, start))  # just before the fold
        np.testing.assert_array_equal(fold.train, np.arange(0, start - 10))  # everything earlier
    assert len(folds[-1].train) > len(folds[0].train)  # an expanding window


def test_folds_refuse_what_cannot_be_cut():
    with pytest.raises(DataError, match=r"backtest.folds=6 must lie in 1 .. backtest.days \(5\)"):
        backtest.plan_folds(100, 5, 6, 10)
    with pytest.raises(DataError, match="the first fold would train on 4 samples, at least 5 needed"):
        backtest.plan_folds(100, 86, 2, 10)
    assert backtest.plan_folds(100, 85, 2, 10)[0].train.tolist() == [0, 1, 2, 3, 4]


def test_null_lengths_are_the_prepared_splits():
    splits, _ = lstm_windows(random_walk_bars(200, seed=2))
    params = parse_params(tiny_params(backtest={"days": None, "validation_days": None})).backtest
    assert backtest.resolve_lengths(params, splits) == (len(splits["test"].targets),
                                                        len(splits["validation"].targets))
    params = parse_params(tiny_params(backtest={"days": 12, "validation_days": 15})).backtest
    assert backtest.resolve_lengths(params, splits) == (12, 15)


def lstm_windows(bars: pd.DataFrame):
    params = parse_params(tiny_params(data={"source": "csv", "path": "walk.csv", "start": None, "end": None}))
    prepared = preparation.prepare(bars, "walk.csv", params.data, params.split, params.features)
    return prepared.splits, prepared


def tiny_trainer(params):
    """The real training, one member, few steps: the fold's data is all that matters here."""
    train_params = params.train.__class__(**{**params.train.__dict__, "seeds": 1, "steps": 40})

    def train(train_windows, validation, normalisation):
        return training.train_lstm(train_windows, validation, normalisation, params.model, train_params, 0).model
    return train


def shake_from(bars: pd.DataFrame, row: int) -> pd.DataFrame:
    """``bars`` with every price and volume from ``row`` on changed (highs and lows kept valid)."""
    changed = bars.copy()
    factor = np.exp(np.random.default_rng(5).normal(0, 0.05, len(bars) - row))
    for column in ("open", "high", "low", "close"):
        changed.loc[row:, column] = bars.loc[row:, column].to_numpy() * factor
    changed.loc[row:, "volume"] = bars.loc[row:, "volume"].to_numpy()[::-1]
    return changed


def test_nothing_of_a_fold_is_seen_before_it_is_forecast():
    """Change every bar from a day inside fold 2 on: fold 1 is untouched, and fold 2's model,
    interval and baselines, and its forecasts up to that day, are the same."""
    params = parse_params(tiny_params(data={"source": "csv", "path": "walk.csv", "start": None, "end": None}))
    bars = random_walk_bars(200, seed=3)
    splits, prepared = lstm_windows(bars)
    samples = backtest.all_samples(splits)
    folds = backtest.plan_folds(len(samples.targets), 30, 3, 20)
    names = prepared.normalisation.feature_names
    fold_2 = folds[1]
    day = int(fold_2.forecast[4])  # the 5th day of fold 2 (as a sample index)
    target_row = day + params.features.window  # sample i forecasts row i + window
    changed_splits, changed_prepared = lstm_windows(shake_from(bars, target_row))
    changed_samples = backtest.all_samples(changed_splits)
    train = tiny_trainer(params)

    def run(fold, samples_, prepared_):
        return backtest.forecast_fold(fold, samples_, prepared_.bars, names, train, EVALUATE)

    for fold in folds[:2]:
        original, changed = run(fold, samples, prepared), run(fold, changed_samples, changed_prepared)
        kept = len(fold.forecast) if fold.number == 1 else 5  # the forecast of the changed day is kept
        np.testing.assert_array_equal(changed.model[:kept], original.model[:kept])
        np.testing.assert_array_equal(changed.lower[:kept], original.lower[:kept])
        # the interval's half-width is calibrated before the fold: the same for every day
        np.testing.assert_allclose(np.log(changed.upper / changed.model), np.log(original.upper / original.model),
                                   rtol=1e-12)
        for name in original.baselines:
            np.testing.assert_array_equal(changed.baselines[name][:kept], original.baselines[name][:kept])
        assert changed.fitted == original.fitted
        if fold.number == 2:  # the change reaches the days after it
            assert np.all(changed.model[kept:] != original.model[kept:])


def test_a_fold_trains_on_its_past_only():
    """The samples handed to training all have targets before the fold; the validation slice is
    the last of them; the normalisation is fitted on the training samples alone."""
    params = parse_params(tiny_params(data={"source": "csv", "path": "walk.csv", "start": None, "end": None}))
    splits, prepared = lstm_windows(random_walk_bars(200, seed=4))
    samples = backtest.all_samples(splits)
    fold = backtest.plan_folds(len(samples.targets), 30, 3, 20)[2]
    seen = {}

    def train(train_windows, validation, normalisation):
        seen.update(train=train_windows, validation=validation, normalisation=normalisation)
        return tiny_trainer(params)(train_windows, validation, normalisation)

    result = backtest.forecast_fold(fold, samples, prepared.bars, prepared.normalisation.feature_names,
                                    train, EVALUATE)
    first_day = result.samples.target_dates[0]
    assert seen["train"].target_dates.max() < seen["validation"].target_dates.min()
    assert seen["validation"].target_dates.max() < first_day
    assert len(seen["train"].targets) + len(seen["validation"].targets) == fold.forecast[0]
    assert seen["normalisation"] == features.fit_normalisation(seen["train"], prepared.normalisation.feature_names)
    # the baselines learn from every close before the fold
    past = prepared.bars.loc[pd.to_datetime(prepared.bars["date"]) < pd.Timestamp(first_day), "close"]
    assert result.fitted["drift_rate"] == metrics.drift_rate(past.to_numpy())
    assert result.fitted["naive_scale"] == metrics.naive_scale(past.to_numpy())


# --- the report -------------------------------------------------------------------------------

def hand_made_fold(number: int, start: str, last_close, next_close, model, members) -> backtest.FoldForecast:
    n = len(last_close)
    dates = np.datetime64(start, "D") + np.arange(n)
    days = features.Windows(np.zeros((n, 2, 4), np.float32), np.zeros(n, np.float32), np.asarray(last_close, float),
                            np.asarray(next_close, float), dates)
    model = np.asarray(model, float)
    return backtest.FoldForecast(
        backtest.Fold(number, np.arange(0), np.arange(0), np.arange(n)), days, model, np.asarray(members, float),
        model * 0.99, model * 1.01,
        {"persistence": days.last_close, "drift": days.last_close * 1.001}, {"naive_scale": 0.01},
    )


def test_the_report_pools_the_folds_and_tests_against_persistence():
    rng = np.random.default_rng(0)
    folds = []
    for number, start in ((1, "2020-01-01"), (2, "2020-02-01")):
        last = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 25)))
        actual = last * np.exp(rng.normal(0, 0.01, 25))
        members = np.stack([last * np.exp(rng.normal(0, 0.003, 25)) for _ in range(3)])
        folds.append(hand_made_fold(number, start, last, actual, members.mean(axis=0), members))
    report = backtest.report(folds, EVALUATE, seed=0)
    assert list(report) == ["folds", "pooled", "seeds", "baselines"]
    first = report["folds"][0]
    assert first["start"] == "2020-01-01" and first["end"] == "2020-01-25" and first["n"] == 25
    assert first["rmse_ratio_persistence"] == pytest.approx(
        metrics.rmse(folds[0].samples.next_close, folds[0].model)
        / metrics.rmse(folds[0].samples.next_close, folds[0].samples.last_close))
    pooled = report["pooled"]
    actual = np.concatenate([f.samples.next_close for f in folds])
    last = np.concatenate([f.samples.last_close for f in folds])
    model = np.concatenate([f.model for f in folds])
    assert pooled["n"] == 50
    assert pooled["rmse_ratio_persistence"] == pytest.approx(metrics.rmse(actual, model) / metrics.rmse(actual, last))
    assert pooled["dm_p_value"] == significance.diebold_mariano(model - actual, last - actual)
    assert pooled["dm_abs_p_value"] == significance.diebold_mariano(model - actual, last - actual, "absolute")
    assert pooled["pt_p_value"] == significance.pesaran_timmermann(actual > last, model > last * (1 + 1e-9))
    low, high = pooled["rmse_ratio_ci95"]
    assert low < pooled["rmse_ratio_persistence"] < high
    assert pooled["interval_coverage"] == significance.interval_coverage(actual, model * 0.99, model * 1.01)
    assert pooled["interval_width_mean"] == pytest.approx(np.mean(model * 0.02))
    assert report["seeds"]["count"] == 3 and set(report["baselines"]) == {"drift"}
    assert json.loads(json.dumps(report)) == report  # plain JSON: numbers, lists and two dates per fold
    flat = backtest.tracked_metrics(report)
    assert flat["rmse_ratio_ci95_low"] == low
    assert flat["baseline/drift_dm_p_value"] == report["baselines"]["drift"]["dm_p_value"]

    table = backtest.table(folds)
    assert list(table.columns) == list(backtest.COLUMNS)
    assert table["fold"].tolist() == [1] * 25 + [2] * 25 and table["arima"].isna().all()
    np.testing.assert_array_equal(table["model"], model)
    assert "verdict:" in backtest.summary_table(report)


# --- the stage --------------------------------------------------------------------------------

def test_backtest_stage_end_to_end(workspace):
    write_params(workspace, tiny_params(backtest={"days": 20, "folds": 2, "validation_days": 15}))
    assert main(["prepare"]) == 0
    assert main(["backtest"]) == 0  # needs no trained model: it trains its own
    report = json.loads(Path("reports/backtest.json").read_text())
    table = pd.read_csv("reports/backtest.csv")
    assert [fold["n"] for fold in report["folds"]] == [10, 10] and report["pooled"]["n"] == 20
    assert len(table) == 20 and table["fold"].tolist() == [1] * 10 + [2] * 10
    bars = pd.read_csv("data/prepared/bars.csv")
    assert table["date"].tolist() == bars["date"].tolist()[-20:]  # the last 20 days of the data
    np.testing.assert_allclose(table["persistence"], bars["close"].to_numpy()[-21:-1])
    assert report["folds"][1]["start"] == table["date"][10]
    assert 0.0 <= report["pooled"]["interval_coverage"] <= 1.0 and report["seeds"]["count"] == 2
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("nextclose-backtest").experiment_id])
    assert run.data.metrics["rmse_ratio_persistence"] == pytest.approx(report["pooled"]["rmse_ratio_persistence"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "fold_rmse_ratio_persistence")] == [1, 2]
    assert run.data.params["backtest.days_resolved"] == "20"


def test_backtest_of_the_tutorial_kind_is_empty(workspace):
    write_params(workspace, tiny_params(model={"kind": "tutorial", "hidden_units": 4}))
    assert main(["prepare"]) == 0
    assert main(["backtest"]) == 0
    assert json.loads(Path("reports/backtest.json").read_text()) == {"folds": [], "pooled": {"n": 0}}
    assert Path("reports/backtest.csv").read_text().strip() == ",".join(backtest.COLUMNS)


def test_evaluation_and_backtest_share_the_tests_against_persistence():
    """One implementation: the single split's dm_p_value is the backtest's formula on its days."""
    last = np.array([10.0, 11.0, 12.0, 11.5, 12.5])
    actual = np.array([11.0, 12.0, 11.5, 12.5, 12.0])
    model = np.array([10.5, 11.4, 11.9, 11.8, 12.4])
    figures = evaluation.against_persistence(last, actual, model, last, EVALUATE, 0)
    assert figures["dm_p_value"] == significance.diebold_mariano(model - actual, last - actual)
    interval = significance.rmse_ratio_interval(model - actual, last - actual, 5, 200, 0)
    assert figures["rmse_ratio_ci95"] == list(interval)

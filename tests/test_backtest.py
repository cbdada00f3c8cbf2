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

from helpers import ConstantNetwork, random_walk_bars, tiny_params, write_params

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


# --- fast pieces: a stand-in network, hand-made reports ---------------------------------------

def test_forecast_fold_with_a_stand_in_network():
    """Without training: what the fold hands the trainer, its forecasts, intervals and baselines."""
    splits, prepared = lstm_windows(random_walk_bars(200, seed=3))
    samples = backtest.all_samples(splits)
    fold = backtest.plan_folds(len(samples.targets), 30, 3, 20)[1]
    names = prepared.normalisation.feature_names
    seen = {}

    def train(train_windows, validation, normalisation):
        seen.update(train=train_windows, validation=validation, normalisation=normalisation)
        return ConstantNetwork([1 / 128, 3 / 128])  # exact in float32: the mean is 1/64

    result = backtest.forecast_fold(fold, samples, prepared.bars, names, train, EVALUATE)
    days = backtest.take(samples, fold.forecast)
    np.testing.assert_array_equal(seen["train"].target_dates, samples.target_dates[fold.train])
    np.testing.assert_array_equal(seen["validation"].target_dates, samples.target_dates[fold.validation])
    np.testing.assert_array_equal(seen["validation"].next_close, samples.next_close[fold.validation])
    assert seen["normalisation"] == features.fit_normalisation(seen["train"], names)
    assert result.fold is fold
    np.testing.assert_array_equal(result.samples.target_dates, days.target_dates)
    np.testing.assert_allclose(result.model, days.last_close * np.exp(1 / 64), rtol=1e-12)
    assert result.members.shape == (2, 10)
    np.testing.assert_allclose(result.members, [days.last_close * np.exp(1 / 128), days.last_close * np.exp(3 / 128)],
                               rtol=1e-12)
    # the interval: calibrated on the ensemble's forecasts of the validation days
    validation = seen["validation"]
    residuals = np.abs(np.log(validation.next_close / (validation.last_close * np.exp(1 / 64))))
    half_width = significance.conformal_quantile(residuals, EVALUATE.interval)
    np.testing.assert_allclose(result.lower, result.model * np.exp(-half_width), rtol=1e-12)
    np.testing.assert_allclose(result.upper, result.model * np.exp(half_width), rtol=1e-12)
    past = prepared.bars["close"].to_numpy()[: fold.forecast[0] + 10]  # every close before the fold's first day
    assert past[-1] == days.last_close[0]
    rate = metrics.drift_rate(past)
    np.testing.assert_array_equal(result.baselines["persistence"], days.last_close)
    np.testing.assert_allclose(result.baselines["drift"], days.last_close * np.exp(rate), rtol=1e-12)
    arima = metrics.arima_forecasts(past, days.next_close, 0, 1, 0)
    np.testing.assert_array_equal(result.baselines["arima"], arima.forecasts)
    assert list(result.baselines) == ["persistence", "drift", "arima"]
    assert result.fitted == {"drift_rate": rate, "naive_scale": metrics.naive_scale(past),
                             "arima_order": str(arima.order)}
    without_arima = backtest.forecast_fold(fold, samples, prepared.bars, names, train,
                                           EvaluateParams(False, 1, 0, 0.9, 5, 200))
    assert list(without_arima.baselines) == ["persistence", "drift"] and "arima_order" not in without_arima.fitted


def test_forecast_fold_refuses_bars_that_disagree_with_the_samples():
    splits, prepared = lstm_windows(random_walk_bars(200, seed=3))
    samples = backtest.all_samples(splits)
    fold = backtest.plan_folds(len(samples.targets), 30, 3, 20)[1]
    names = prepared.normalisation.feature_names
    no_arima = EvaluateParams(False, 1, 0, 0.9, 5, 200)

    def run(bars):
        return backtest.forecast_fold(fold, samples, bars, names, lambda *_: ConstantNetwork([0.0]), no_arima)

    first_row = int(fold.forecast[0]) + 10  # the bar of the fold's first target day
    # two closes before the fold are enough
    assert run(prepared.bars.iloc[first_row - 2:]).fitted["drift_rate"] == pytest.approx(
        np.log(prepared.bars["close"].iloc[first_row - 1] / prepared.bars["close"].iloc[first_row - 2]))
    message = "^data/prepared: bars.csv and windows.npz disagree on the backtest days; rerun prepare$"
    with pytest.raises(DataError, match=message):  # one is not
        run(prepared.bars.iloc[first_row - 1:])
    with pytest.raises(DataError, match=message):
        run(prepared.bars.iloc[first_row:])
    changed = prepared.bars.copy()
    changed.loc[first_row - 1, "close"] *= 1.01
    with pytest.raises(DataError, match=message):
        run(changed)


def test_closes_before_a_day_are_strictly_before_it():
    bars = pd.DataFrame({"date": ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"],
                         "close": [1, 2, 3, 4]})
    past = backtest.closes_before(bars, np.datetime64("2020-01-06"))
    np.testing.assert_array_equal(past, [1.0, 2.0])
    assert past.dtype == np.float64
    assert backtest.closes_before(bars, np.datetime64("2020-01-02")).tolist() == []
    assert backtest.closes_before(bars, np.datetime64("2020-01-08")).tolist() == [1.0, 2.0, 3.0, 4.0]


def two_hand_made_folds():
    """Two folds of 25 days with different pasts (naive scales 0.01 and 0.02)."""
    rng = np.random.default_rng(0)
    folds = []
    for number, start, scale in ((1, "2020-01-01", 0.01), (2, "2020-02-01", 0.02)):
        last = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 25)))
        actual = last * np.exp(rng.normal(0, 0.01, 25))
        members = np.stack([last * np.exp(rng.normal(0, 0.003, 25)) for _ in range(3)])
        fold = hand_made_fold(number, start, last, actual, members.mean(axis=0), members)
        folds.append(backtest.FoldForecast(**{**fold.__dict__, "fitted": {"naive_scale": scale}}))
    return folds


def test_the_report_scores_each_fold_the_seeds_and_the_baselines():
    folds = two_hand_made_folds()
    report = backtest.report(folds, EVALUATE, seed=0)
    second = folds[1].samples
    assert report["folds"][1] == {
        "start": "2020-02-01", "end": "2020-02-25", "n": 25,
        "rmse_ratio_persistence": pytest.approx(metrics.rmse(second.next_close, folds[1].model)
                                                / metrics.rmse(second.next_close, second.last_close), rel=1e-12),
        "directional_accuracy": metrics.directional_accuracy(second.last_close, second.next_close, folds[1].model),
    }
    actual = np.concatenate([f.samples.next_close for f in folds])
    last = np.concatenate([f.samples.last_close for f in folds])
    model = np.concatenate([f.model for f in folds])
    members = np.concatenate([f.members for f in folds], axis=1)
    pooled = report["pooled"]
    assert pooled["rmse"] == metrics.rmse(actual, model)
    assert pooled["directional_accuracy"] == metrics.directional_accuracy(last, actual, model)
    assert pooled["majority_class_rate"] == metrics.majority_class_rate(last, actual)
    assert pooled["interval_nominal"] == 0.9
    ci95 = significance.rmse_ratio_interval(model - actual, last - actual, 5, 200, 0)
    assert pooled["rmse_ratio_ci95"] == list(ci95)
    assert report["folds"][0]["directional_accuracy"] == metrics.directional_accuracy(
        folds[0].samples.last_close, folds[0].samples.next_close, folds[0].model)
    # the members are scaled by the first fold's past
    member_mase = [metrics.score(last, actual, m, 0.01)["mase"] for m in members]
    assert report["seeds"]["mase"]["max"] == pytest.approx(max(member_mase), rel=1e-12)
    assert report["seeds"]["rmse_ratio_persistence"]["min"] == pytest.approx(
        min(metrics.rmse(actual, m) for m in members) / metrics.rmse(actual, last), rel=1e-12)
    drift = last * 1.001
    assert report["baselines"]["drift"] == {
        "n": 50, "rmse": metrics.rmse(actual, drift),
        "rmse_ratio_persistence": metrics.rmse(actual, drift) / metrics.rmse(actual, last),
        "dm_p_value": significance.diebold_mariano(drift - actual, last - actual),
        "dm_abs_p_value": significance.diebold_mariano(drift - actual, last - actual, "absolute"),
        "pt_p_value": significance.pesaran_timmermann(actual > last, drift > last * (1 + 1e-9)),
        "rmse_ratio_ci95": list(significance.rmse_ratio_interval(drift - actual, last - actual, 5, 200, 0)),
        "directional_accuracy": metrics.directional_accuracy(last, actual, drift),
        "majority_class_rate": metrics.majority_class_rate(last, actual),
    }
    flat = backtest.tracked_metrics(report)
    assert flat["members/count"] == 3 and flat["members/mase_max"] == report["seeds"]["mase"]["max"]
    assert flat["baseline/drift_rmse"] == report["baselines"]["drift"]["rmse"] and flat["n"] == 50
    other_seed = backtest.report(folds, EVALUATE, seed=1)
    assert other_seed["pooled"]["rmse_ratio_ci95"] != pooled["rmse_ratio_ci95"]
    assert other_seed["baselines"]["drift"]["rmse_ratio_ci95"] != report["baselines"]["drift"]["rmse_ratio_ci95"]


def test_the_table_has_a_row_per_day():
    folds = two_hand_made_folds()
    table = backtest.table(folds)
    assert table["date"].tolist()[:2] == ["2020-01-01", "2020-01-02"] and table["date"].iloc[-1] == "2020-02-25"
    np.testing.assert_array_equal(table["actual"], np.concatenate([f.samples.next_close for f in folds]))
    np.testing.assert_array_equal(table["persistence"], np.concatenate([f.samples.last_close for f in folds]))
    np.testing.assert_array_equal(table["drift"], np.concatenate([f.baselines["drift"] for f in folds]))
    np.testing.assert_array_equal(table["lower"], np.concatenate([f.lower for f in folds]))
    np.testing.assert_array_equal(table["upper"], np.concatenate([f.upper for f in folds]))
    assert table.shape == (50, len(backtest.COLUMNS))
    empty = backtest.table([])
    assert list(empty.columns) == list(backtest.COLUMNS) and empty.empty


def test_the_empty_report_of_the_tutorial_kind():
    assert backtest.empty_report() == {"folds": [], "pooled": {"n": 0}}
    assert backtest.tracked_metrics(backtest.empty_report()) == {"n": 0.0}


def test_the_summary_table_lines():
    spread = {"mean": 1.0, "std": 0.01, "min": 0.98, "max": 1.02}
    pooled = {"n": 20, "rmse_ratio_persistence": 0.98765, "directional_accuracy": 0.55, "dm_p_value": 0.2,
              "rmse_ratio_ci95": [0.9, 1.1], "pt_p_value": 0.3, "majority_class_rate": 0.6,
              "interval_nominal": 0.9, "interval_coverage": 0.85, "interval_width_mean": 1.23456}
    report = {
        "folds": [{"start": "2020-01-01", "end": "2020-01-14", "n": 10, "rmse_ratio_persistence": 1.01234,
                   "directional_accuracy": 0.5},
                  {"start": "2020-01-15", "end": "2020-01-28", "n": 10, "rmse_ratio_persistence": 0.96,
                   "directional_accuracy": 0.6}],
        "pooled": pooled,
        "seeds": {"count": 3, "beat_persistence": 2, "rmse_ratio_persistence": spread,
                  "directional_accuracy": {"mean": 0.5, "std": 0.01, "min": 0.45, "max": 0.55}},
        "baselines": {"drift": {"rmse_ratio_persistence": 1.00012, "dm_p_value": 0.6}},
    }
    lines = backtest.summary_table(report).splitlines()
    assert lines[:6] == [
        "fold     first day    last day  days  RMSE/pers.  dir. acc",
        "1       2020-01-01  2020-01-14    10      1.0123     0.500",
        "2       2020-01-15  2020-01-28    10      0.9600     0.600",
        "all                               20      0.9877     0.550",
        "  drift: RMSE/pers. 1.0001, Diebold-Mariano p 0.600",
        "90% conformal intervals held the close on 85.0% of the days; mean width 1.2346",
    ]
    assert lines[6].startswith("verdict: no skill shown over 20 walk-forward days in 2 folds. "
                               "The model's RMSE is 0.9877 x persistence's, within chance "
                               "(Diebold-Mariano p = 0.200, 95% interval of the ratio 0.9000 .. 1.1000; "
                               "2 of 3 members beat persistence alone).")
    assert lines[6].endswith("Direction: 0.550 right (members 0.450 .. 0.550) against 0.600 for always "
                             "guessing the commoner direction; Pesaran-Timmermann p = 0.300: no evidence of skill.")
    assert len(lines) == 7


def test_folds_at_the_edges():
    assert [fold.forecast.tolist() for fold in backtest.plan_folds(20, 3, 3, 5)] == [[17], [18], [19]]  # a day each
    assert len(backtest.plan_folds(20, 3, 1, 5)) == 1
    with pytest.raises(DataError, match=r"^backtest.folds=0 must lie in 1 .. backtest.days \(3\)$"):
        backtest.plan_folds(20, 3, 0, 5)
    with pytest.raises(DataError, match=(
            r"^backtest: 10 samples are too few for backtest.days=12 and backtest.validation_days=3: "
            r"the first fold would train on 0 samples, at least 5 needed$")):
        backtest.plan_folds(10, 12, 2, 3)


def test_one_fold_alone():
    fold = two_hand_made_folds()[0]
    report = backtest.report([fold], EVALUATE, seed=0)
    assert [f["n"] for f in report["folds"]] == [25] and report["pooled"]["n"] == 25
    assert set(report["baselines"]) == {"drift"}
    table = backtest.table([fold])
    assert table["fold"].tolist() == [1] * 25
    np.testing.assert_array_equal(table["drift"], fold.baselines["drift"])

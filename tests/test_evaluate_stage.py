"""The evaluate stage: no forecast sees its future, statistics come from the training
slice, and the files and the MLflow run say the same thing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest

from nextclose import evaluation, features, preparation, training
from nextclose import model as models
from nextclose.cli import main
from nextclose.params import ModelParams, ParamsError, parse_params

from helpers import random_walk_bars, tiny_params, write_params

FORECASTERS = ("model", "persistence", "drift", "arima")
SCORE_KEYS = ("rmse", "mae", "mape", "mase", "directional_accuracy", "direction_p_value",
              "rmse_ratio_persistence")
TEST_KEYS = ("dm_p_value", "dm_abs_p_value", "pt_p_value", "rmse_ratio_ci95")


def prepare(bars: pd.DataFrame, source: str, params) -> preparation.Prepared:
    return preparation.prepare(bars, source, params.data, params.split, params.features)


def tiny_lstm(window: int, normalisation: features.Normalisation, seed: int = 0) -> keras.Model:
    """Two 4-unit LSTM members whose output layers are not zero, so their forecasts depend
    on the inputs (and differ)."""
    network = models.EnsembleLSTM.initialised(
        window, normalisation, ModelParams(kind="lstm", hidden_units=4, layers=1, dropout=0.0),
        [seed, seed + 1], training.set_determinism,
    )
    network.output_kernel.assign(np.random.default_rng(seed).normal(0, 1, network.output_kernel.shape))
    return network


def shake_after(bars: pd.DataFrame, row: int, seed: int = 1) -> pd.DataFrame:
    """``bars`` with every price and volume from ``row`` on changed (highs and lows kept valid)."""
    changed = bars.copy()
    factor = np.exp(np.random.default_rng(seed).normal(0, 0.05, len(bars) - row))
    for column in ("open", "high", "low", "close"):
        changed.loc[row:, column] = bars.loc[row:, column].to_numpy() * factor
    changed.loc[row:, "volume"] = bars.loc[row:, "volume"].to_numpy()[::-1]
    return changed


# --- causality -----------------------------------------------------------------------------

def test_lstm_forecast_of_a_day_ignores_that_day_and_everything_after():
    bars = random_walk_bars(90, seed=2)
    feature_params = parse_params(tiny_params()).features
    windows = features.make_windows(bars, feature_params)
    network = tiny_lstm(feature_params.window, features.fit_normalisation(
        windows, features.feature_names(feature_params.volume)))
    original, original_members = evaluation.forecast_lstm(network, windows)
    row = 60
    changed, changed_members = evaluation.forecast_lstm(
        network, features.make_windows(shake_after(bars, row), feature_params))
    # Sample i forecasts row i + window from rows i .. i + window - 1.
    unchanged = row - feature_params.window + 1
    np.testing.assert_array_equal(changed[:unchanged], original[:unchanged])
    assert np.all(changed[unchanged:] != original[unchanged:])
    np.testing.assert_array_equal(changed_members[:, :unchanged], original_members[:, :unchanged])
    assert np.all(changed_members[:, unchanged:] != original_members[:, unchanged:])


def test_every_forecast_of_a_test_day_ignores_that_day_and_everything_after():
    """The model and all baselines, through prepare and evaluate as the pipeline runs them."""
    params = parse_params(tiny_params(
        data={"start": None, "end": None}, evaluate={"arima": True, "arima_max_p": 1, "arima_max_q": 1}
    ))
    bars = random_walk_bars(160, seed=4)
    first = prepare(bars, "synthetic", params)
    network = tiny_lstm(params.features.window, first.normalisation)
    original = evaluation.evaluate_lstm(network, first.bars, first.splits["validation"], first.splits["test"],
                                        params.evaluate, 0)
    row = 150  # inside the test period
    second = prepare(shake_after(bars, row), "synthetic", params)
    changed = evaluation.evaluate_lstm(network, second.bars, second.splits["validation"], second.splits["test"],
                                       params.evaluate, 0)

    cutoff = bars["date"].iloc[row].strftime("%Y-%m-%d")
    kept = original.predictions["date"] <= cutoff
    assert 5 < kept.sum() < len(kept)
    columns = list(FORECASTERS)
    pd.testing.assert_frame_equal(changed.predictions.loc[kept, columns], original.predictions.loc[kept, columns])
    for column in columns:
        assert (changed.predictions.loc[~kept, column] != original.predictions.loc[~kept, column]).all()
    assert changed.fitted == original.fitted  # fitted on training closes only


def test_without_arima_its_column_stays_empty_and_unscored():
    params = parse_params(tiny_params(data={"start": None, "end": None}))
    assert params.evaluate.arima is False
    prepared = prepare(random_walk_bars(120, seed=6), "synthetic", params)
    network = tiny_lstm(params.features.window, prepared.normalisation)
    result = evaluation.evaluate_lstm(network, prepared.bars, prepared.splits["validation"],
                                      prepared.splits["test"], params.evaluate, 0)
    assert list(result.predictions.columns) == ["date", "actual", *FORECASTERS, "lower", "upper"]
    assert result.predictions["arima"].isna().all() and result.predictions["drift"].notna().all()
    assert set(result.report["baselines"]) == {"persistence", "drift"}


# --- the stage end to end ----------------------------------------------------------------

def training_slice_statistics(bars: pd.DataFrame, window: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Feature mean and std and the target scale, from the training rows' windows, by hand."""
    log_prices = np.log(bars[["open", "high", "low", "close"]].to_numpy())
    log_volume = np.log1p(bars["volume"].to_numpy())
    validation_start = bars.index[bars["split"] == "validation"][0]
    rows = []
    targets = []
    for target in range(window, validation_start):  # samples whose target day is a training day
        days = slice(target - window, target)
        prices = log_prices[days] - log_prices[target - 1, 3]
        volume = log_volume[days] - log_volume[days].mean()
        rows.append(np.column_stack([prices, volume]))
        targets.append(log_prices[target, 3] - log_prices[target - 1, 3])
    flat = np.concatenate(rows)
    return flat.mean(axis=0), flat.std(axis=0), math.sqrt(np.mean(np.square(targets)))


def run_by_stage(client: mlflow.MlflowClient, stage: str):
    experiment = client.get_experiment_by_name(f"nextclose-{stage}")
    (run,) = client.search_runs([experiment.experiment_id])
    return run


def test_evaluate_stage_end_to_end(workspace):
    window = 10
    write_params(workspace, tiny_params(evaluate={"arima": True, "arima_max_p": 1, "arima_max_q": 1}))
    assert main(["prepare"]) == 0
    assert main(["train"]) == 0
    assert main(["evaluate"]) == 0

    report = json.loads(Path("reports/metrics.json").read_text())
    prepared = json.loads(Path("data/prepared/prepared.json").read_text())
    bars = pd.read_csv("data/prepared/bars.csv")
    predictions = pd.read_csv("reports/predictions.csv")

    assert set(report) == {"n_test", "majority_class_rate", "baselines", "seeds", *SCORE_KEYS, *TEST_KEYS,
                           "interval_nominal", "interval_coverage", "interval_width_mean"}
    assert set(report["baselines"]) == {"persistence", "drift", "arima"}
    for name, scores in report["baselines"].items():
        assert set(scores) == set(SCORE_KEYS) | (set() if name == "persistence" else set(TEST_KEYS))
    # The intervals: the model's forecast inside each, their share holding the close as reported
    inside = (predictions["lower"] <= predictions["actual"]) & (predictions["actual"] <= predictions["upper"])
    assert report["interval_coverage"] == pytest.approx(inside.mean())
    assert ((predictions["lower"] < predictions["model"]) & (predictions["model"] < predictions["upper"])).all()
    low, high = report["rmse_ratio_ci95"]
    assert low <= report["rmse_ratio_persistence"] <= high
    n_test = prepared["splits"]["test"]["samples"]
    assert report["n_test"] == n_test == len(predictions)
    # The ratio, from the bars themselves: each forecast against yesterday's close.
    actual_closes = bars.loc[bars["split"] == "test", "close"].to_numpy()
    yesterday = bars["close"].to_numpy()[bars.index[bars["split"] == "test"] - 1]
    persistence_rmse = np.sqrt(np.mean((yesterday - actual_closes) ** 2))
    for name in FORECASTERS:
        scores = report if name == "model" else report["baselines"][name]
        rmse = np.sqrt(np.mean((predictions[name].to_numpy() - actual_closes) ** 2))
        assert scores["rmse_ratio_persistence"] == pytest.approx(rmse / persistence_rmse, rel=1e-9), name
    assert report["baselines"]["persistence"]["rmse_ratio_persistence"] == 1.0

    # A single series is a panel of one: panel_predictions.csv holds the same forecasts.
    panel = pd.read_csv("reports/panel_predictions.csv")
    assert list(panel.columns) == ["date", "symbol", "actual", "model", "persistence", "lower", "upper"]
    assert set(panel["symbol"]) == {prepared["source"]}
    for column in ("date", "actual", "model", "persistence", "lower", "upper"):
        assert panel[column].tolist() == predictions[column].tolist()
    assert "panel" not in report

    # The CSV holds the forecasts that were scored, on the test days only.
    test_rows = bars[bars["split"] == "test"]
    assert list(predictions.columns) == ["date", "actual", *FORECASTERS, "lower", "upper"]
    assert predictions["date"].tolist() == test_rows["date"].tolist()
    np.testing.assert_allclose(predictions["actual"], test_rows["close"])
    np.testing.assert_allclose(predictions["persistence"].to_numpy(), bars["close"].to_numpy()[test_rows.index - 1])
    for name in FORECASTERS:
        scores = report if name == "model" else report["baselines"][name]
        error = predictions[name] - predictions["actual"]
        assert scores["rmse"] == pytest.approx(math.sqrt(np.mean(error**2)), rel=1e-9)
        assert scores["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-9)

    # Every statistic comes from the training slice: normalisation, MASE scale, drift.
    mean, std, target_scale = training_slice_statistics(bars, window)
    stats = prepared["normalisation"]
    np.testing.assert_allclose(stats["mean"], mean, atol=1e-6)
    np.testing.assert_allclose(stats["std"], std, rtol=1e-5)
    assert stats["target_scale"] == pytest.approx(target_scale, rel=1e-5)
    layer = keras.saving.load_model("models/model.keras").get_layer("normalise").get_config()
    np.testing.assert_allclose(np.ravel(layer["mean"]), stats["mean"], rtol=1e-6)
    np.testing.assert_allclose(np.ravel(layer["variance"]), np.square(stats["std"]), rtol=1e-6)
    train_closes = bars.loc[bars["split"] == "train", "close"].to_numpy()
    scale = np.mean(np.abs(np.diff(np.log(train_closes))))  # MASE on log prices
    persistence = report["baselines"]["persistence"]
    log_moves = np.abs(np.log(actual_closes) - np.log(yesterday))
    assert persistence["mase"] == pytest.approx(np.mean(log_moves) / scale, rel=1e-9)

    # The MLflow run: same numbers, the figures, and links both ways to the training run.
    client = mlflow.MlflowClient()
    run = run_by_stage(client, "evaluate")
    assert run.data.metrics["rmse"] == pytest.approx(report["rmse"])
    assert run.data.metrics["n_test"] == n_test
    for name in ("persistence", "drift", "arima"):
        assert run.data.metrics[f"baseline/{name}_rmse"] == pytest.approx(report["baselines"][name]["rmse"])
    assert run.data.params["model.hidden_units"] == "4"  # what the model was trained with, beside its figures
    # DVC's metric is the headline alone; the execution's run has it beside every param
    assert json.loads(Path("reports/scores.json").read_text()) == {"rmse_ratio": report["rmse_ratio_persistence"]}
    (execution,) = client.search_runs(
        [client.get_experiment_by_name("nextclose").experiment_id],
        filter_string=f"tags.pipeline_execution = '{run.data.tags['pipeline_execution']}'")
    assert execution.data.metrics["test_rmse_ratio"] == report["rmse_ratio_persistence"]
    assert execution.data.metrics["test_rmse_ratio_members_std"] == report["seeds"]["rmse_ratio_persistence"]["std"]
    assert execution.data.params["train.learning_rate"] == "0.001"
    assert float(run.data.params["fitted.naive_scale"]) == pytest.approx(scale, rel=1e-12)
    rate = np.log(train_closes[-1] / train_closes[0]) / (len(train_closes) - 1)
    assert float(run.data.params["fitted.drift_rate"]) == pytest.approx(rate, rel=1e-9)
    trained_by = json.loads(Path(".nextclose/train_run.json").read_text())
    assert run.data.tags["train_run_id"] == trained_by["run_id"]
    assert run.data.tags["model_uri"] == trained_by["model_uri"]
    assert client.get_run(trained_by["run_id"]).data.tags["evaluate_run_id"] == run.info.run_id
    figures = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {"figures/predictions.png", "figures/residuals.png", "figures/learning_curve.png"}
    model_metrics = {metric.key: metric.value for metric in client.get_logged_model(trained_by["model_id"]).metrics}
    assert model_metrics["rmse"] == pytest.approx(report["rmse"])


def test_tutorial_kind_reports_in_sample_figures(workspace):
    write_params(workspace, tiny_params(
        data={"start": "2017-01-01", "end": "2017-04-30"},
        model={"kind": "tutorial", "hidden_units": 4},
        train={"steps": 4, "eval_every": 2, "steps_per_call": 2, "log_every": 2},
    ))
    assert main(["prepare"]) == 0
    assert main(["train"]) == 0
    assert main(["evaluate"]) == 0

    report = json.loads(Path("reports/metrics.json").read_text())
    train = json.loads(Path("models/train.json").read_text())
    predictions = pd.read_csv("reports/predictions.csv")
    with np.load("data/prepared/tutorial.npz") as sequence:
        x, y = sequence["x"].astype(np.float64), sequence["y"][:, 0].astype(np.float64)

    assert report["in_sample"] is True and "in-sample" in report["label"]
    assert report["n_days"] == len(y) == len(predictions)
    assert report["in_sample_mse"] == train["final_cost"]
    assert report["in_sample_mse_persistence"] == pytest.approx(np.mean((y - x[:, 1]) ** 2))
    np.testing.assert_allclose(predictions["actual"], y)
    np.testing.assert_allclose(predictions["persistence"], x[:, 1])
    # the DVC plot names them all
    assert list(predictions.columns) == ["date", "actual", *FORECASTERS, "lower", "upper"]
    assert predictions[["drift", "arima"]].isna().all().all()
    assert report["in_sample_mse_per_day"] == pytest.approx(
        np.mean((predictions["model"] - predictions["actual"]) ** 2), rel=1e-9
    )
    run = run_by_stage(mlflow.MlflowClient(), "evaluate")
    assert run.data.metrics["in_sample_mse"] == pytest.approx(train["final_cost"])
    assert run.data.tags["evaluated_on"] == "in-sample"


# --- small pieces ----------------------------------------------------------------------

def test_tracked_metrics_put_the_headline_first_and_the_rest_under_prefixes():
    report = {"n_test": 3, "rmse": 1.5, "rmse_ratio_persistence": 0.98, "rmse_ratio_ci95": [0.9, 1.1],
              "baselines": {"drift": {"rmse": 2.0, "mase": 0.5}},
              "seeds": {"count": 2, "rmse": {"mean": 1.6, "std": 0.1}}}
    flat = evaluation.tracked_metrics(report)
    assert flat == {"rmse_ratio_persistence": 0.98, "n_test": 3.0, "rmse": 1.5, "rmse_ratio_ci95_low": 0.9,
                    "rmse_ratio_ci95_high": 1.1, "baseline/drift_rmse": 2.0, "baseline/drift_mase": 0.5,
                    "members/count": 2.0, "members/rmse_mean": 1.6, "members/rmse_std": 0.1}
    assert next(iter(flat)) == "rmse_ratio_persistence"  # logged first: the compare view's default plot


def test_negative_arima_order_is_refused_by_name():
    with pytest.raises(ParamsError, match="evaluate.arima_max_q"):
        parse_params(tiny_params(evaluate={"arima_max_q": -1}))


def test_the_seeds_block_scores_each_member_alone_and_the_model_is_their_mean():
    params = parse_params(tiny_params(data={"start": None, "end": None}))
    prepared = prepare(random_walk_bars(160, seed=8), "synthetic", params)
    network = tiny_lstm(params.features.window, prepared.normalisation)
    test = prepared.splits["test"]
    result = evaluation.evaluate_lstm(network, prepared.bars, prepared.splits["validation"], test, params.evaluate, 0)
    report, seeds = result.report, result.report["seeds"]
    member_returns = np.asarray(network.member_outputs(test.inputs), dtype=np.float64)
    member_closes = test.last_close * np.exp(member_returns)
    persistence_rmse = np.sqrt(np.mean((test.last_close - test.next_close) ** 2))
    member_rmse = np.sqrt(np.mean((member_closes - test.next_close) ** 2, axis=1))
    assert seeds["count"] == 2 and not np.isclose(member_rmse[0], member_rmse[1])
    assert seeds["rmse"]["min"] == pytest.approx(member_rmse.min(), rel=1e-9)
    assert seeds["rmse"]["max"] == pytest.approx(member_rmse.max(), rel=1e-9)
    assert seeds["rmse"]["std"] == pytest.approx(np.std(member_rmse, ddof=1), rel=1e-9)
    assert seeds["rmse_ratio_persistence"]["mean"] == pytest.approx(np.mean(member_rmse / persistence_rmse), rel=1e-9)
    assert seeds["beat_persistence"] == int(np.sum(member_rmse < persistence_rmse))
    for key in ("mae", "mape", "mase", "directional_accuracy", "direction_p_value"):
        assert set(seeds[key]) == {"mean", "std", "min", "max"}
    # the model row is the served ensemble: the members' mean log return on the last close
    ensemble = test.last_close * np.exp(member_returns.mean(axis=0))
    np.testing.assert_allclose(result.predictions["model"], ensemble, rtol=1e-6)
    # MLflow gets the same figures flat: members/rmse_mean, members/rmse_std, ..., members/count
    flat = evaluation.tracked_metrics(report)
    assert flat["members/rmse_ratio_persistence_std"] == seeds["rmse_ratio_persistence"]["std"]
    assert flat["members/count"] == 2 and flat["members/beat_persistence"] == seeds["beat_persistence"]
    assert "model = the mean of 2 members" in evaluation.summary_table(report)


@pytest.mark.parametrize(("ratio", "p_value", "says"), [
    (1.01, 0.9, "verdict: no skill on this one test period"),
    (0.99, 0.2, "verdict: no skill shown on this one test period"),
    (0.99, 0.01, "verdict: skill on this one test period"),
])
def test_the_verdict_claims_skill_only_on_the_diebold_mariano_test(ratio, p_value, says):
    spread = {"mean": 1.0, "std": 0.01, "min": 0.98, "max": 1.02}
    report = {"rmse_ratio_persistence": ratio, "dm_p_value": p_value, "rmse_ratio_ci95": [0.97, 1.03],
              "directional_accuracy": 0.51, "majority_class_rate": 0.53, "pt_p_value": 0.01,
              "seeds": {"count": 3, "beat_persistence": 2, "rmse_ratio_persistence": spread,
                        "directional_accuracy": {"mean": 0.5, "std": 0.01, "min": 0.49, "max": 0.52}}}
    said = evaluation.verdict(report)
    assert said.startswith(says + ".")
    assert f"Diebold-Mariano p = {p_value:.3f}, 95% interval of the ratio 0.9700 .. 1.0300" in said
    assert "2 of 3 members beat persistence alone" in said
    # direction: informative only above the majority rate and with a Pesaran-Timmermann p below 0.05
    assert said.endswith("Pesaran-Timmermann p = 0.010: no evidence of skill.")
    assert evaluation.verdict(report | {"directional_accuracy": 0.56}).endswith(": informative.")
    assert evaluation.verdict(report | {"directional_accuracy": 0.56, "pt_p_value": 0.2}).endswith(
        "p = 0.200: no evidence of skill.")

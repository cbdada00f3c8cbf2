"""Scoring against the baselines, piece by piece, on data whose answers are known."""

from __future__ import annotations

import math

import keras
import numpy as np
import pandas as pd
import pytest

from nextclose import evaluation, features, metrics, preparation, significance, training
from nextclose import model as models
from nextclose.errors import DataError
from nextclose.params import EvaluateParams, parse_params

from helpers import ConstantNetwork, random_walk_bars, tiny_params


def prepared(n: int = 120, seed: int = 6) -> preparation.Prepared:
    params = parse_params(tiny_params(data={"source": "csv", "path": "walk.csv", "start": None, "end": None}))
    return preparation.prepare(random_walk_bars(n, seed=seed), "walk.csv", params.data, params.split,
                               params.features)


def untrained_lstm(data: preparation.Prepared) -> keras.Model:
    """The default ensemble before training forecasts "no change": persistence, exactly."""
    return models.EnsembleLSTM.initialised(10, data.normalisation, parse_params(tiny_params()).model, [0, 1],
                                           training.set_determinism)


def test_training_closes_are_the_closes_of_the_training_rows():
    bars = pd.DataFrame({"close": [1, 2, 3, 4], "split": ["train", "train", "validation", "test"]})
    np.testing.assert_array_equal(evaluation.training_closes(bars), [1.0, 2.0])
    assert evaluation.training_closes(bars).dtype == np.float64  # integer closes too


def test_later_closes_line_up_with_the_test_samples():
    data = prepared()
    closes, first_target = evaluation.later_closes(data.bars, data.splits["test"])
    later = data.bars[data.bars["split"] != "train"]
    np.testing.assert_array_equal(closes, later["close"].to_numpy())
    assert first_target == len(data.splits["validation"].targets)
    np.testing.assert_array_equal(closes[first_target:], data.splits["test"].next_close)


@pytest.mark.parametrize("field", ["target_dates", "next_close", "last_close"])
def test_later_closes_refuse_test_samples_that_disagree_with_the_bars(field):
    data = prepared()
    test = data.splits["test"]
    value = getattr(test, field).copy()
    value[-1] = value[-1] + (np.timedelta64(1, "D") if field == "target_dates" else 1.0)
    with pytest.raises(DataError, match=(
            "^data/prepared: bars.csv and windows.npz disagree on the test days; rerun prepare$")):
        evaluation.later_closes(data.bars, features.Windows(**{**test.__dict__, field: value}))


def test_later_closes_refuse_a_test_period_with_no_day_before_it():
    data = prepared()
    no_validation = data.bars[data.bars["split"] != "validation"]
    with pytest.raises(DataError, match="disagree on the test days"):
        evaluation.later_closes(no_validation, data.splits["test"])


def test_score_forecasts_on_hand_made_numbers():
    dates = np.array(["2020-01-02", "2020-01-03", "2020-01-06"], "datetime64[D]")
    test = features.Windows(np.zeros((3, 2, 4), np.float32), np.zeros(3, np.float32),
                            np.array([10.0, 11.0, 12.0]), np.array([11.0, 12.0, 11.0]), dates)
    model = np.array([10.5, 11.5, 12.5])
    report = evaluation.score_forecasts(
        test, {"model": model, "persistence": test.last_close}, np.array([9.0, 10.0, 9.0]))
    assert list(report) == ["n_test", *metrics.SCORE_KEYS, "rmse_ratio_persistence", "majority_class_rate",
                            "baselines"]
    assert report["n_test"] == 3 and list(report["baselines"]) == ["persistence"]
    assert report["rmse"] == pytest.approx(np.sqrt((0.25 + 0.25 + 2.25) / 3))
    # on log prices: the model's log errors over the training closes' mean absolute log change
    log_errors = (math.log(11 / 10.5) + math.log(12 / 11.5) + math.log(12.5 / 11)) / 3
    assert report["mase"] == pytest.approx(log_errors / ((math.log(10 / 9) + math.log(10 / 9)) / 2))
    assert report["rmse_ratio_persistence"] == pytest.approx(report["rmse"] / 1.0)
    assert report["baselines"]["persistence"]["rmse_ratio_persistence"] == 1.0
    assert report["majority_class_rate"] == pytest.approx(2 / 3)
    assert report["directional_accuracy"] == pytest.approx(2 / 3)  # up, up, up called; up, up, down came


def test_the_untrained_model_scores_exactly_as_persistence():
    data = prepared()
    test = data.splits["test"]
    result = evaluation.evaluate_lstm(untrained_lstm(data), data.bars, data.splits["validation"], test,
                                      EvaluateParams(False, 0, 0, 0.9, 10, 200), 0)
    baselines = result.report["baselines"]
    assert {k: result.report[k] for k in metrics.SCORE_KEYS} == {k: baselines["persistence"][k]
                                                                 for k in metrics.SCORE_KEYS}
    train = evaluation.training_closes(data.bars)
    assert result.fitted == {"drift_rate": metrics.drift_rate(train), "naive_scale": metrics.naive_scale(train)}
    assert result.predictions["date"].tolist() == [str(d) for d in test.target_dates]
    np.testing.assert_array_equal(result.predictions["actual"], test.next_close)
    np.testing.assert_array_equal(result.predictions["model"], test.last_close)
    seeds = result.report["seeds"]  # every member is persistence too
    assert seeds["count"] == 2 and seeds["rmse_ratio_persistence"] == {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0}
    assert seeds["beat_persistence"] == 0
    np.testing.assert_allclose(result.predictions["drift"], test.last_close * np.exp(result.fitted["drift_rate"]))
    assert result.predictions["arima"].isna().all() and "arima" not in baselines


def test_arima_of_order_zero_in_the_evaluation_is_persistence():
    data = prepared()
    test = data.splits["test"]
    result = evaluation.evaluate_lstm(untrained_lstm(data), data.bars, data.splits["validation"], test,
                                      EvaluateParams(True, 0, 0, 0.9, 10, 200), 0)
    assert result.fitted["arima_order"] == "(0, 1, 0)" and result.fitted["arima_with_intercept"] is False
    np.testing.assert_allclose(result.predictions["arima"], test.last_close, rtol=1e-12)
    assert list(result.report["baselines"]) == ["persistence", "drift", "arima"]


def test_the_tutorial_is_scored_in_sample():
    keras.utils.set_random_seed(0)
    bars = random_walk_bars(21)
    x, y = features.tutorial_sequence(bars)
    network = models.TutorialEnsemble.initialised(20, 4, [0, 1], training.set_determinism)
    trained_x = np.stack([x * 1.01, x * 0.99])  # each member's own copy, as training leaves them
    dates = bars["date"].to_numpy().astype("datetime64[D]")[1:]
    result = evaluation.evaluate_tutorial(network, x, y, trained_x, 123.5, dates)
    members = np.asarray(network.member_outputs(trained_x[:, None]), dtype=np.float64)[:, 0]
    predicted = members.mean(axis=0)  # the model: the members' mean, each on its own x
    actual = y.astype(np.float64).reshape(-1)
    member_mse = np.mean((members - actual) ** 2, axis=1)
    assert result.report == {
        "in_sample": True, "label": evaluation.TUTORIAL_LABEL, "n_days": 20, "in_sample_mse": 123.5,
        "in_sample_mse_per_day": pytest.approx(np.mean((predicted - actual) ** 2)),
        "in_sample_mse_persistence": pytest.approx(np.mean((x[:, 1].astype(np.float64) - actual) ** 2)),
        "seeds": {"count": 2, "in_sample_mse_per_day": {
            "mean": pytest.approx(member_mse.mean()), "std": pytest.approx(np.std(member_mse, ddof=1)),
            "min": pytest.approx(member_mse.min()), "max": pytest.approx(member_mse.max())}},
    }
    assert list(result.predictions.columns) == list(evaluation.PREDICTION_COLUMNS)
    assert result.predictions["date"].iloc[0] == str(dates[0])
    np.testing.assert_allclose(result.predictions["model"], predicted)
    np.testing.assert_array_equal(result.predictions["persistence"], x[:, 1].astype(np.float64))
    assert result.predictions[["drift", "arima"]].isna().all().all() and result.fitted == {}


def test_summary_tables():
    scores = dict(zip(metrics.SCORE_KEYS, (1.5, 1.25, 0.5, 0.75, 0.5, 0.25))) | {"rmse_ratio_persistence": 1.0}
    report = {**scores, "n_test": 4, "majority_class_rate": 0.75, "baselines": {"drift": scores}}
    assert evaluation.summary_table(report).splitlines() == [
        "                    RMSE         MAE      MAPE %        MASE    dir. acc     p-value  RMSE/pers.",
        "model             1.5000      1.2500       0.500       0.750       0.500       0.250      1.0000",
        "drift             1.5000      1.2500       0.500       0.750       0.500       0.250      1.0000",
        "4 test days; always guessing the commoner direction scores 0.750",
    ]
    tutorial = {"in_sample": True, "label": "in-sample", "n_days": 9, "in_sample_mse": 2.0,
                "in_sample_mse_per_day": 0.5, "in_sample_mse_persistence": 0.25}
    assert [line.split() for line in evaluation.summary_table(tutorial).splitlines()] == [
        ["in-sample", "(9", "days)"],
        ["tutorial", "cost", "(broadcast", "[1,n]-[n,1])", "2"],
        ["model,", "per-day", "MSE", "0.5"],
        ["persistence,", "per-day", "MSE", "0.25"],
    ]


# --- fast pieces: a stand-in network, hand-made reports ---------------------------------------

def test_forecast_lstm_turns_log_returns_into_closes():
    test = prepared().splits["test"]
    ensemble, members = evaluation.forecast_lstm(ConstantNetwork([1 / 128, 3 / 128]), test)
    np.testing.assert_allclose(ensemble, test.last_close * np.exp(1 / 64), rtol=1e-12)
    assert ensemble.shape == (len(test.last_close),) and ensemble.dtype == np.float64
    np.testing.assert_allclose(members, [test.last_close * np.exp(1 / 128), test.last_close * np.exp(3 / 128)],
                               rtol=1e-12)


def test_evaluate_lstm_with_a_stand_in_network():
    data = prepared()
    test, validation = data.splits["test"], data.splits["validation"]
    params = EvaluateParams(True, 1, 0, 0.8, 5, 200)
    result = evaluation.evaluate_lstm(ConstantNetwork([1 / 128, 3 / 128]), data.bars, validation, test, params, 3)
    model = test.last_close * np.exp(1 / 64)
    residuals = np.abs(np.log(validation.next_close / (validation.last_close * np.exp(1 / 64))))
    half_width = significance.conformal_quantile(residuals, 0.8)
    np.testing.assert_allclose(result.predictions["lower"], model * np.exp(-half_width), rtol=1e-12)
    np.testing.assert_allclose(result.predictions["upper"], model * np.exp(half_width), rtol=1e-12)
    report = result.report
    assert report["interval_nominal"] == 0.8
    assert report["interval_coverage"] == significance.interval_coverage(
        test.next_close, result.predictions["lower"].to_numpy(), result.predictions["upper"].to_numpy())
    errors, reference = model - test.next_close, test.last_close - test.next_close
    assert report["dm_p_value"] == pytest.approx(significance.diebold_mariano(errors, reference), rel=1e-9)
    assert report["rmse_ratio_ci95"] == pytest.approx(
        list(significance.rmse_ratio_interval(errors, reference, 5, 200, 3)), rel=1e-9)
    train = evaluation.training_closes(data.bars)
    later, first_target = evaluation.later_closes(data.bars, test)
    arima = metrics.arima_forecasts(train, later, first_target, 1, 0)
    assert result.fitted == {"drift_rate": metrics.drift_rate(train), "naive_scale": metrics.naive_scale(train),
                             "arima_order": str(arima.order), "arima_with_intercept": arima.with_intercept}
    np.testing.assert_array_equal(result.predictions["arima"], arima.forecasts)
    assert report["seeds"]["count"] == 2
    assert report["seeds"]["mase"]["min"] == pytest.approx(
        metrics.score(test.last_close, test.next_close, test.last_close * np.exp(1 / 128),
                      metrics.naive_scale(train))["mase"], rel=1e-9)


def test_against_persistence_on_hand_made_numbers():
    last = np.array([10.0, 11.0, 12.0, 11.5, 12.5])
    actual = np.array([11.0, 12.0, 11.5, 12.5, 12.0])
    model = np.array([10.5, 11.4, 11.9, 11.8, 12.4])
    figures = evaluation.against_persistence(last, actual, model, last, EvaluateParams(False, 0, 0, 0.9, 50, 200), 0)
    assert figures == {
        "dm_p_value": significance.diebold_mariano(model - actual, last - actual),
        "dm_abs_p_value": significance.diebold_mariano(model - actual, last - actual, "absolute"),
        "pt_p_value": significance.pesaran_timmermann(actual > last, model > last * (1 + 1e-9)),
        # a block longer than the days is cut to the days
        "rmse_ratio_ci95": list(significance.rmse_ratio_interval(model - actual, last - actual, 5, 200, 0)),
    }
    assert figures["dm_p_value"] != figures["dm_abs_p_value"]


def test_interval_figures_on_hand_made_numbers():
    assert evaluation.interval_figures(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 2.5, 2.0, 3.0]),
                                       np.array([1.5, 3.5, 3.5, 6.0]), 0.9) == {
        "interval_nominal": 0.9, "interval_coverage": 0.75, "interval_width_mean": 1.625}


def test_score_forecasts_with_the_tests_and_the_intervals():
    rng = np.random.default_rng(1)
    last = 100 + np.cumsum(rng.normal(0, 1, 40))
    actual = last + rng.normal(0, 1, 40)
    dates = np.datetime64("2020-01-01", "D") + np.arange(40)
    test = features.Windows(np.zeros((40, 2, 4), np.float32), np.zeros(40, np.float32), last, actual, dates)
    forecasts = {"model": last + 0.5 * (actual - last) + rng.normal(0, 0.1, 40), "persistence": last,
                 "drift": last * 1.01}
    params = EvaluateParams(False, 0, 0, 0.9, 2, 200)
    report = evaluation.score_forecasts(
        test, forecasts, np.array([9.0, 10.0, 9.0]), tests=(params, 4),
        interval=(forecasts["model"] - 1, forecasts["model"] + 1, 0.9))
    for name, scores in (("model", report), ("drift", report["baselines"]["drift"])):
        assert {k: scores[k] for k in ("dm_p_value", "dm_abs_p_value", "pt_p_value", "rmse_ratio_ci95")} == \
            evaluation.against_persistence(last, actual, forecasts[name], last, params, 4)
    assert report["pt_p_value"] < 0.05  # the model calls the direction: the test has something to find
    assert "dm_p_value" not in report["baselines"]["persistence"]
    assert report["interval_coverage"] == significance.interval_coverage(
        actual, forecasts["model"] - 1, forecasts["model"] + 1) and report["interval_width_mean"] == 2.0
    assert list(report["baselines"]) == ["persistence", "drift"] and "seeds" not in report


def test_tracked_metrics_flatten_intervals_and_seeds():
    report = {"n_test": 3, "rmse": 1.5, "rmse_ratio_ci95": [0.9, 1.1], "label": "x", "members": [1, 2, 3],
              "baselines": {"drift": {"rmse": 2.0, "rmse_ratio_ci95": [0.8, 1.2]}},
              "seeds": {"count": 2, "beat_persistence": 1, "rmse": {"mean": 1.0, "std": 0.5, "min": 0.5, "max": 1.5}}}
    assert evaluation.tracked_metrics(report) == {
        "n_test": 3.0, "rmse": 1.5, "rmse_ratio_ci95_low": 0.9, "rmse_ratio_ci95_high": 1.1,
        "baseline/drift_rmse": 2.0, "baseline/drift_rmse_ratio_ci95_low": 0.8,
        "baseline/drift_rmse_ratio_ci95_high": 1.2, "members/count": 2.0, "members/beat_persistence": 1.0,
        "members/rmse_mean": 1.0, "members/rmse_std": 0.5, "members/rmse_min": 0.5, "members/rmse_max": 1.5,
    }
    assert evaluation.tracked_metrics({"rmse": 1.0}) == {"rmse": 1.0}


def verdict_report(**changes):
    spread = {"mean": 1.0, "std": 0.01, "min": 0.98, "max": 1.02}
    return {"rmse_ratio_persistence": 0.99, "dm_p_value": 0.2, "rmse_ratio_ci95": [0.97, 1.03],
            "directional_accuracy": 0.51, "majority_class_rate": 0.53, "pt_p_value": 0.01,
            "seeds": {"count": 3, "beat_persistence": 2, "rmse_ratio_persistence": spread,
                      "directional_accuracy": {"mean": 0.5, "std": 0.01, "min": 0.49, "max": 0.52}}} | changes


def test_the_verdict_at_its_thresholds():
    assert evaluation.verdict(verdict_report(dm_p_value=0.05)).startswith("verdict: no skill shown on this")
    assert evaluation.verdict(verdict_report(dm_p_value=0.049)).startswith("verdict: skill on this")
    assert evaluation.verdict(verdict_report(rmse_ratio_persistence=1.0, dm_p_value=0.5)).startswith(
        "verdict: no skill on this one test period. The model's RMSE is 1.0000 x persistence's (Diebold-Mariano")
    assert evaluation.verdict(verdict_report(rmse_ratio_persistence=0.5, dm_p_value=0.01)) == (
        "verdict: skill on this one test period. The model's RMSE is 0.5000 x persistence's (Diebold-Mariano "
        "p = 0.010, 95% interval of the ratio 0.9700 .. 1.0300; 2 of 3 members beat persistence alone). "
        "Direction: 0.510 right (members 0.490 .. 0.520) against 0.530 for always guessing the commoner "
        "direction; Pesaran-Timmermann p = 0.010: no evidence of skill.")
    assert evaluation.verdict(verdict_report(), period="over 5 days").startswith(
        "verdict: no skill shown over 5 days. The model's RMSE is 0.9900 x persistence's, within chance (")
    # direction: informative only strictly above the majority rate and strictly below p 0.05
    assert evaluation.verdict(verdict_report(directional_accuracy=0.53)).endswith(": no evidence of skill.")
    assert evaluation.verdict(verdict_report(directional_accuracy=0.54)).endswith(": informative.")
    assert evaluation.verdict(verdict_report(directional_accuracy=0.54, pt_p_value=0.05)).endswith(
        ": no evidence of skill.")


def test_the_summary_table_with_intervals_and_seeds():
    scores = dict(zip(metrics.SCORE_KEYS, (1.5, 1.25, 0.5, 0.75, 0.5, 0.25))) | {"rmse_ratio_persistence": 1.0}
    report = {**scores, **verdict_report(), "n_test": 4, "baselines": {},
              "interval_nominal": 0.9, "interval_coverage": 0.75, "interval_width_mean": 1.23456}
    lines = evaluation.summary_table(report).splitlines()
    assert lines[2:] == [
        "4 test days; always guessing the commoner direction scores 0.530",
        "90% conformal intervals held the close on 75.0% of the days; mean width 1.2346",
        "model = the mean of 3 members; each alone: RMSE/pers. 1.0000 ± 0.0100 (0.9800 .. 1.0200)",
        evaluation.verdict(report),
    ]


class TutorialStandIn:
    """The tutorial ensemble's shape of output, float32 as Keras gives it: member k forecasts
    ``factors[k]`` times the close of its own x."""

    def __init__(self, factors):
        self.factors = np.asarray(factors, np.float32)

    def member_outputs(self, x):  # [members, 1, n, 4] -> [members, 1, n]
        return x[..., 1] * self.factors[:, None, None]


def test_the_tutorial_report_and_predictions_in_float64():
    x = np.array([[10.1, 10.3, 10.4, 10.0], [10.3, 10.2, 10.5, 10.1], [10.2, 10.7, 10.8, 10.2]], np.float32)
    y = np.array([[10.2], [10.7], [10.6]], np.float32)
    dates = np.array(["2020-01-03", "2020-01-06", "2020-01-07"], "datetime64[D]")
    trained_x = np.stack([x * np.float32(1.01), x])
    network = TutorialStandIn([1.0, 0.999])
    result = evaluation.evaluate_tutorial(network, x, y, trained_x, 0.5, dates)
    members = network.member_outputs(trained_x[:, None])[:, 0].astype(np.float64)
    actual = y.astype(np.float64).reshape(-1)
    predicted = members.mean(axis=0)
    assert result.report["in_sample_mse_per_day"] == float(np.mean(np.square(predicted - actual)))
    predictions = result.predictions
    assert predictions["date"].tolist() == ["2020-01-03", "2020-01-06", "2020-01-07"]
    for column in ("actual", "model", "persistence"):
        assert predictions[column].dtype == np.float64, column
    np.testing.assert_array_equal(predictions["actual"], actual)
    np.testing.assert_array_equal(predictions["model"], predicted)
    np.testing.assert_array_equal(predictions["persistence"], x[:, 1].astype(np.float64))


def test_the_summary_table_writes_infinities_and_gaps_in_lower_case():
    """A constant training series gives an infinite MASE; a figure not defined is NaN."""
    scores = {"rmse": math.inf, "mae": math.nan, "mape": math.inf, "mase": math.inf,
              "directional_accuracy": math.nan, "direction_p_value": math.nan, "rmse_ratio_persistence": math.nan}
    report = {**scores, "n_test": 4, "majority_class_rate": 0.75, "baselines": {}}
    assert evaluation.summary_table(report).splitlines()[1].split() == ["model", "inf", "nan", "inf", "inf",
                                                                          "nan", "nan", "nan"]


def test_later_closes_with_one_day_before_the_test_period():
    bars = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=6), "close": [1, 2, 3, 4, 5, 6],
                         "split": ["train", "train", "validation", "test", "test", "test"]})
    test = features.Windows(np.zeros((3, 2, 4), np.float32), np.zeros(3, np.float32), np.array([3.0, 4.0, 5.0]),
                            np.array([4.0, 5.0, 6.0]), np.array(["2020-01-04", "2020-01-05", "2020-01-06"],
                                                                "datetime64[D]"))
    closes, first_target = evaluation.later_closes(bars, test)
    assert first_target == 1
    np.testing.assert_array_equal(closes, [3.0, 4.0, 5.0, 6.0])
    assert closes.dtype == np.float64  # integer closes too

"""Properties that must hold for any input, not only for the hand-picked cases (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nextclose import evaluation, features, metrics, preparation
from nextclose.params import FeatureParams, parse_params

from helpers import random_walk_bars, tiny_params

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def prepared_with(bars: pd.DataFrame, window: int, validation_fraction: float, test_fraction: float):
    params = parse_params(tiny_params(
        data={"source": "csv", "path": "walk.csv", "start": None, "end": None},
        features={"window": window, "volume": True},
        split={"validation_fraction": validation_fraction, "test_fraction": test_fraction},
    ))
    return preparation.prepare(bars, "walk.csv", params.data, params.split, params.features)


@FAST
@given(
    n=st.integers(60, 260),
    window=st.integers(2, 20),
    validation_fraction=st.floats(0.05, 0.45),
    test_fraction=st.floats(0.05, 0.45),
    seed=st.integers(0, 2**16),
)
def test_splits_partition_the_samples_in_time_order_for_any_fractions(
    n, window, validation_fraction, test_fraction, seed
):
    assume(validation_fraction + test_fraction < 0.9)
    samples = n - window
    n_test = int(round(samples * test_fraction))
    n_validation = int(round(samples * validation_fraction))
    n_train = samples - n_test - n_validation
    assume(min(n_train, n_validation, n_test) >= features.MIN_SAMPLES_PER_SPLIT)
    bars = random_walk_bars(n, seed=seed)
    prepared = prepared_with(bars, window, validation_fraction, test_fraction)
    train, validation, test = (prepared.splits[name] for name in features.SPLITS)
    # The counts follow from the fractions alone, and the three splits are the samples in order.
    assert (len(train.targets), len(validation.targets), len(test.targets)) == (n_train, n_validation, n_test)
    dates = bars["date"].to_numpy().astype("datetime64[D]")
    np.testing.assert_array_equal(
        np.concatenate([train.target_dates, validation.target_dates, test.target_dates]), dates[window:]
    )
    # Every row is labelled with the split of the sample that targets it (the first rows, which
    # only ever feed windows, count as training), so drift, ARIMA and MASE learn from training rows.
    expected = ["train"] * (window + n_train) + ["validation"] * n_validation + ["test"] * n_test
    assert prepared.bars["split"].tolist() == expected


@FAST
@given(
    n=st.integers(30, 120),
    window=st.integers(2, 15),
    cut=st.integers(0, 10_000),
    factor=st.floats(0.5, 2.0).filter(lambda f: abs(f - 1) > 1e-3),
)
def test_a_window_never_holds_a_bar_from_its_target_day_or_later(n, window, cut, factor):
    bars = random_walk_bars(n, seed=n)
    row = window + cut % (n - window)  # some target row
    changed = bars.copy()
    changed.loc[row:, ["open", "high", "low", "close"]] *= factor
    changed.loc[row:, "volume"] += 1000.0
    params = FeatureParams(window=window, volume=True)
    before, after = features.make_windows(bars, params), features.make_windows(changed, params)
    # sample i ends on row i + window - 1 and targets row i + window
    untouched = np.arange(len(before.targets)) + window <= row
    np.testing.assert_array_equal(before.inputs[untouched], after.inputs[untouched])
    np.testing.assert_array_equal(before.last_close[untouched], after.last_close[untouched])
    first_changed_target = row - window
    assert before.targets[first_changed_target] != after.targets[first_changed_target]


closes_strategy = st.lists(st.floats(1.0, 1000.0), min_size=6, max_size=60).map(np.array)


# Moves of a forecast: none, or clearly more than the billionth that counts as no move (at that
# edge, rounding of the scaled prices decides the call either way).
moves = st.one_of(st.just(0.0), st.floats(1e-6, 0.05), st.floats(-0.05, -1e-6))


@FAST
@given(closes=closes_strategy, noise=st.lists(moves, min_size=60, max_size=60),
       scale=st.sampled_from([1e-3, 0.37, 7.0, 1e4]))
def test_scale_free_metrics_do_not_move_when_every_price_is_scaled(closes, noise, scale):
    last, actual = closes[:-1], closes[1:]
    predicted = last * np.exp(np.array(noise[: len(last)]))
    # MASE divides by the mean absolute log change: closes that differ only in their last bits
    # would make it rounding over rounding
    assume(np.abs(np.diff(np.log(closes))).mean() > 1e-6)
    base = metrics.score(last, actual, predicted, metrics.naive_scale(closes))
    scaled = metrics.score(last * scale, actual * scale, predicted * scale, metrics.naive_scale(closes * scale))
    for key in ("mape", "mase", "directional_accuracy", "direction_p_value"):
        assert scaled[key] == pytest.approx(base[key], rel=1e-9, abs=1e-12), key
    for key in ("rmse", "mae"):  # price units: they scale with the prices
        assert scaled[key] == pytest.approx(base[key] * scale, rel=1e-9, abs=1e-12), key


@FAST
@given(closes=closes_strategy, noise=st.lists(st.floats(-0.05, 0.05), min_size=60, max_size=60))
def test_persistence_scores_exactly_one_against_itself(closes, noise):
    assume(np.any(np.diff(closes) != 0))
    dates = np.arange(len(closes) - 1).astype("datetime64[D]")
    test = features.Windows(np.zeros((len(closes) - 1, 2, 4), np.float32), np.zeros(len(closes) - 1, np.float32),
                            closes[:-1], closes[1:], dates)
    model = closes[:-1] * np.exp(np.array(noise[: len(closes) - 1]))
    report = evaluation.score_forecasts(
        test, {"model": model, "persistence": metrics.persistence_forecast(closes[:-1])}, closes
    )
    assert report["baselines"]["persistence"]["rmse_ratio_persistence"] == 1.0
    expected = np.sqrt(np.mean((model - closes[1:]) ** 2)) / np.sqrt(np.mean((closes[:-1] - closes[1:]) ** 2))
    assert report["rmse_ratio_persistence"] == pytest.approx(expected, rel=1e-12)


@FAST
@given(closes=closes_strategy, later=closes_strategy, cut=st.integers(0, 100))
def test_drift_forecasts_read_only_the_training_closes_and_today(closes, later, cut):
    rate = metrics.drift_rate(closes)
    forecast = metrics.drift_forecast(later, rate)
    position = cut % len(later)
    changed = later.copy()
    changed[position + 1:] *= 1.5
    np.testing.assert_array_equal(metrics.drift_forecast(changed, rate)[: position + 1], forecast[: position + 1])


@settings(max_examples=3, deadline=None)  # two auto_arima fits an example
@given(seed=st.integers(0, 1000), cut=st.integers(0, 19), factor=st.floats(0.7, 1.4))
def test_arima_forecasts_never_read_a_later_close(seed, cut, factor):
    rng = np.random.default_rng(seed)
    returns = np.zeros(130)
    for day in range(1, 130):
        returns[day] = 0.4 * returns[day - 1] + rng.normal(0, 0.01)
    closes = 50.0 * np.exp(np.cumsum(returns))
    train, later, first_target = closes[:100], closes[100:], 5
    original = metrics.arima_forecasts(train, later, first_target, max_p=1, max_q=1)
    position = first_target + cut  # change the close of this day and every later one
    assume(position < len(later))
    changed_later = later.copy()
    changed_later[position:] *= factor
    changed = metrics.arima_forecasts(train, changed_later, first_target, max_p=1, max_q=1)
    kept = position - first_target + 1  # forecasts of later[first_target..position] saw none of it
    np.testing.assert_array_equal(changed.forecasts[:kept], original.forecasts[:kept])

"""The evaluation's arithmetic on series whose answers are known in advance."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from nextclose import metrics


def random_walk(n: int, seed: int, drift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(drift, 0.01, n)))


def one_step(closes: np.ndarray, first_target: int) -> tuple[np.ndarray, np.ndarray]:
    """(last_close, actual) of every target from ``first_target`` on."""
    return closes[first_target - 1 : -1], closes[first_target:]


# --- the metrics ----------------------------------------------------------------------

def test_point_metrics_on_hand_made_errors():
    actual = np.array([100.0, 200.0, 50.0, 100.0])
    predicted = np.array([110.0, 190.0, 50.0, 80.0])  # errors +10, -10, 0, -20
    assert metrics.rmse(actual, predicted) == pytest.approx(math.sqrt((100 + 100 + 0 + 400) / 4))
    assert metrics.mae(actual, predicted) == pytest.approx(10.0)
    assert metrics.mape(actual, predicted) == pytest.approx(100 * (0.1 + 0.05 + 0 + 0.2) / 4)
    # MASE on log prices: |log(110/100)|, |log(190/200)|, 0, |log(80/100)|
    log_errors = (math.log(1.1) + math.log(200 / 190) + 0 + math.log(100 / 80)) / 4
    assert metrics.mase(actual, predicted, scale=0.04) == pytest.approx(log_errors / 0.04)


def test_naive_scale_is_the_mean_absolute_training_log_change():
    # The first change (10 -> 20) dominates: leaving it out, or any other, gives another figure.
    assert metrics.naive_scale(np.array([10.0, 20.0, 21.0, 23.0])) == pytest.approx(
        (math.log(2) + math.log(21 / 20) + math.log(23 / 21)) / 3)
    assert metrics.naive_scale(np.array([10.0, 12.0, 11.0, 14.0])) == pytest.approx(
        (math.log(1.2) + math.log(12 / 11) + math.log(14 / 11)) / 3)
    with pytest.raises(ValueError, match="never change"):
        metrics.naive_scale(np.array([5.0, 5.0, 5.0]))


def test_directional_accuracy_counts_up_and_not_up_calls():
    last = np.array([10.0, 10.0, 10.0, 10.0, 10.0])
    actual = np.array([11.0, 9.0, 10.0, 12.0, 8.0])  # up, down, flat, up, down
    predicted = np.array([10.5, 9.5, 9.0, 9.0, 10.0])  # up, down, down, down, flat
    # hits: yes, yes, yes (flat = not up, down = not up), no, yes (flat = not up)
    np.testing.assert_array_equal(
        metrics.direction_hits(last, actual, predicted), [True, True, True, False, True]
    )
    assert metrics.directional_accuracy(last, actual, predicted) == pytest.approx(0.8)
    assert metrics.majority_class_rate(last, actual) == pytest.approx(0.6)  # 3 of 5 not up


def test_rounding_noise_is_no_move():
    """A forecast equal to today's close up to float round-off makes no directional call."""
    last = np.full(4, 55.844)
    predicted = np.exp(np.log(last)) * np.array([1 + 1e-15, 1 - 1e-15, 1.0, 1 + 1e-6])
    assert metrics.rises(last, predicted).tolist() == [False, False, False, True]
    # exactly at the tolerance is still no move
    assert not metrics.rises(last, last * (1.0 + metrics.MOVE_TOLERANCE)).any()


def test_persistence_direction_equals_the_share_of_days_that_did_not_rise():
    closes = random_walk(300, seed=3)
    last, actual = one_step(closes, 1)
    accuracy = metrics.directional_accuracy(last, actual, metrics.persistence_forecast(last))
    assert accuracy == pytest.approx(np.mean(actual <= last))


def test_direction_p_value_is_the_binomial_tail():
    # P(X >= 8) for X ~ Binomial(10, 0.5) = (45 + 10 + 1) / 1024
    assert metrics.direction_p_value(8, 10) == pytest.approx(56 / 1024)
    assert metrics.direction_p_value(0, 3) == pytest.approx(1.0)
    assert metrics.direction_p_value(20, 20) == pytest.approx(0.5**20)
    with pytest.raises(ValueError):
        metrics.direction_p_value(4, 3)


def test_score_rejects_mismatched_or_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.rmse(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="positive"):
        metrics.mape(np.array([1.0, 0.0]), np.ones(2))
    with pytest.raises(ValueError, match="finite"):
        metrics.mae(np.ones(2), np.array([1.0, np.nan]))


# --- baselines with known answers -------------------------------------------------------

def test_straight_line_persistence_error_is_the_slope():
    slope = 0.5
    closes = 20.0 + slope * np.arange(60)
    train, last, actual = closes[:40], *one_step(closes, 40)
    scores = metrics.score(last, actual, metrics.persistence_forecast(last), metrics.naive_scale(train))
    assert scores["rmse"] == pytest.approx(slope)
    assert scores["mae"] == pytest.approx(slope)
    assert scores["mape"] == pytest.approx(100 * np.mean(slope / actual))
    # a falling log change: the test's moves are smaller in log terms than the training's
    test_log_moves = np.mean(np.log(actual / last))
    assert scores["mase"] == pytest.approx(test_log_moves / np.mean(np.diff(np.log(train))))
    assert scores["mase"] < 1.0
    assert scores["directional_accuracy"] == 0.0  # every day rose; persistence never calls a rise
    assert scores["direction_p_value"] == pytest.approx(1.0)


def test_drift_on_a_constant_growth_line_is_exact():
    growth = 0.002
    closes = 30.0 * np.exp(growth * np.arange(80))
    train, last, actual = closes[:50], *one_step(closes, 50)
    rate = metrics.drift_rate(train)
    assert rate == pytest.approx(growth, rel=1e-12)
    scores = metrics.score(last, actual, metrics.drift_forecast(last, rate), metrics.naive_scale(train))
    assert scores["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert scores["mase"] == pytest.approx(0.0, abs=1e-9)
    assert scores["directional_accuracy"] == 1.0
    assert scores["direction_p_value"] == pytest.approx(0.5**30)


def test_baselines_on_a_seeded_random_walk_match_independent_arithmetic():
    closes = random_walk(500, seed=7, drift=0.0005)
    first_target = 400
    train, last, actual = closes[:first_target], *one_step(closes, first_target)
    # Computed here without the module: drift telescopes, persistence is the previous close.
    expected_rate = (math.log(train[-1]) - math.log(train[0])) / (len(train) - 1)
    assert metrics.drift_rate(train) == pytest.approx(expected_rate, rel=1e-10)
    expected_drift = last * math.exp(expected_rate)
    scale = np.abs(np.diff(np.log(train))).mean()
    persistence = metrics.score(last, actual, metrics.persistence_forecast(last), scale)
    drift = metrics.score(last, actual, metrics.drift_forecast(last, expected_rate), scale)
    changes = actual - last
    assert persistence["rmse"] == pytest.approx(math.sqrt(np.mean(changes**2)))
    assert persistence["mase"] == pytest.approx(np.abs(np.log(actual / last)).mean() / scale)
    assert drift["rmse"] == pytest.approx(math.sqrt(np.mean((expected_drift - actual) ** 2)))
    # Drift calls the same direction every day: up when the training drift is positive.
    rose = np.mean(actual > last)
    assert drift["directional_accuracy"] == pytest.approx(rose if expected_rate > 0 else 1 - rose)


def test_arima_on_a_random_walk_is_the_random_walk():
    """auto_arima finds (0, 1, 0) without drift in a pure random walk, whose one-step
    forecast is today's close: ARIMA must then reproduce persistence."""
    closes = random_walk(130, seed=0)
    result = metrics.arima_forecasts(closes[:100], closes[100:], 10, max_p=1, max_q=1)
    assert result.order == (0, 1, 0) and not result.with_intercept
    np.testing.assert_allclose(result.forecasts, closes[109:-1], rtol=1e-12)


def test_arima_forecast_of_a_day_ignores_that_day_and_everything_after():
    # Log returns with AR(1) coefficient 0.5: auto_arima fits ARIMA(1, 1, 0), whose forecast
    # reads yesterday's move, so a leak through the filter pass would show.
    rng = np.random.default_rng(1)
    noise, returns = rng.normal(0, 0.01, 115), np.zeros(115)
    for day in range(1, 115):
        returns[day] = 0.5 * returns[day - 1] + noise[day]
    closes = 100.0 * np.exp(np.cumsum(returns))
    train, later, first_target = closes[:90], closes[90:], 5
    original = metrics.arima_forecasts(train, later, first_target, max_p=1, max_q=0)
    assert original.order == (1, 1, 0)
    cut = 15  # change later[15:]: forecasts of later[5..15] must not move
    changed_later = later.copy()
    changed_later[cut:] *= np.linspace(1.2, 0.7, len(later) - cut)
    changed = metrics.arima_forecasts(train, changed_later, first_target, max_p=1, max_q=0)
    unchanged = cut - first_target + 1
    np.testing.assert_array_equal(changed.forecasts[:unchanged], original.forecasts[:unchanged])
    assert not np.allclose(changed.forecasts[unchanged:], original.forecasts[unchanged:])


def arma_closes(n: int, seed: int) -> np.ndarray:
    """Closes whose log returns are ARMA(1, 1) with a drift: every ARIMA term has work to do."""
    rng = np.random.default_rng(seed)
    noise, returns = rng.normal(0, 0.01, n), np.zeros(n)
    for day in range(1, n):
        returns[day] = 0.0004 + 0.4 * returns[day - 1] + noise[day] + 0.3 * noise[day - 1]
    return 100.0 * np.exp(np.cumsum(returns))


def test_one_filter_pass_equals_a_daily_forecast_with_the_parameters_held_fixed():
    """The slow way: each day, the fitted model applied to the whole history up to the day before
    (parameters fixed, state filtered from the start), then one step forecast. The fast way: one
    pass over all later days. Same numbers."""
    import pmdarima

    logs = np.log(arma_closes(260, seed=3))
    train, later = logs[:200], logs[200:]
    fitted = pmdarima.ARIMA(order=(1, 1, 1), with_intercept=True, suppress_warnings=True).fit(train).arima_res_
    slow = [float(fitted.apply(logs[:200 + day], refit=False).forecast(1)[0]) for day in range(len(later))]
    np.testing.assert_allclose(metrics.one_step_forecasts(fitted, later), slow, rtol=0, atol=1e-12)
    # from a later first target: the days before it are read, not forecast
    np.testing.assert_allclose(metrics.one_step_forecasts(fitted, later, 7), slow[7:], rtol=0, atol=1e-12)


def test_arima_forecasts_are_the_fixed_parameter_forecasts_of_the_chosen_model():
    import pmdarima

    closes = arma_closes(300, seed=4)
    train, later = closes[:220], closes[220:]
    result = metrics.arima_forecasts(train, later, 10, max_p=1, max_q=1)
    chosen = pmdarima.ARIMA(order=result.order, with_intercept=result.with_intercept,
                            suppress_warnings=True).fit(np.log(train)).arima_res_
    everything = np.log(closes)
    slow = [float(chosen.apply(everything[:220 + day], refit=False).forecast(1)[0]) for day in range(10, 80)]
    assert result.order != (0, 1, 0)
    np.testing.assert_allclose(np.log(result.forecasts), slow, rtol=0, atol=1e-9)


# --- the input checks, at their edges ------------------------------------------------------

def test_prices_are_checked_by_name_shape_and_sign():
    with pytest.raises(ValueError, match=r"^actual: expected a 1-d array, got shape \(2, 2\)$"):
        metrics.rmse(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="^actual: prices must be finite and positive$"):
        metrics.rmse(np.array([1.0, np.inf]), np.ones(2))
    with pytest.raises(ValueError, match="^train_closes: prices must be finite and positive$"):
        metrics.naive_scale(np.array([1.0, -2.0, 3.0]))
    with pytest.raises(ValueError, match=r"^predicted has shape \(3,\), actual \(2,\)$"):
        metrics.rmse(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="^no forecasts to score$"):
        metrics.mae(np.ones(0), np.ones(0))
    with pytest.raises(ValueError, match="^predicted: forecasts must be finite$"):
        metrics.mae(np.ones(2), np.array([1.0, np.inf]))
    # the smallest valid input: one forecast of a positive price, a forecast may be anything finite
    assert metrics.mae(np.array([2.0]), np.array([-1.0])) == 3.0


def test_the_training_statistics_need_two_closes_and_two_are_enough():
    with pytest.raises(ValueError, match="^the naive scale needs at least two training closes$"):
        metrics.naive_scale(np.array([5.0]))
    with pytest.raises(ValueError, match="^the drift needs at least two training closes$"):
        metrics.drift_rate(np.array([5.0]))
    with pytest.raises(ValueError, match="^train_closes: prices must be finite and positive$"):
        metrics.drift_rate(np.array([5.0, 0.0]))
    assert metrics.naive_scale(np.array([4.0, 5.0])) == math.log(5.0) - math.log(4.0)
    assert metrics.drift_rate(np.array([4.0, 8.0])) == pytest.approx(math.log(2.0))
    with pytest.raises(ValueError, match="^the training closes never change, so MASE is undefined$"):
        metrics.naive_scale(np.array([5.0, 5.0]))


def test_mase_refuses_a_scale_that_is_not_positive():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="^scale must be positive, got "):
            metrics.mase(np.ones(2), np.ones(2), bad)


def test_mase_on_log_prices_refuses_a_forecast_that_is_not_a_price():
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="^predicted: MASE on log prices needs positive forecasts$"):
            metrics.mase(np.ones(2), np.array([1.0, bad]), 0.01)


def test_direction_hits_need_a_last_close_per_forecast():
    with pytest.raises(ValueError, match=r"^last_close has shape \(3,\), actual \(2,\)$"):
        metrics.direction_hits(np.ones(3), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="^last_close: prices must be finite and positive$"):
        metrics.direction_hits(np.array([1.0, 0.0]), np.ones(2), np.ones(2))


@pytest.mark.parametrize("hits, days", [(0, 0), (-1, 3), (4, 3)])
def test_direction_p_value_refuses_impossible_counts(hits, days):
    with pytest.raises(ValueError, match=rf"^need 0 <= hits <= days and days >= 1, got {hits} of {days}$"):
        metrics.direction_p_value(hits, days)


def test_direction_p_value_at_the_edges_of_the_counts():
    assert metrics.direction_p_value(1, 1) == 0.5
    assert metrics.direction_p_value(0, 1) == 1.0
    assert metrics.direction_p_value(2, 3) == pytest.approx(0.5)  # P(X >= 2), X ~ B(3, 1/2)


def test_score_has_every_key_in_report_order():
    closes = random_walk(30, seed=2)
    last, actual = one_step(closes, 10)
    scores = metrics.score(last, actual, actual * 1.01, metrics.naive_scale(closes[:10]))
    assert tuple(scores) == metrics.SCORE_KEYS
    assert all(type(value) is float for value in scores.values())


def test_arima_checks_its_arguments_before_fitting():
    closes = random_walk(30, seed=5)
    train, later = closes[:20], closes[20:]
    for first_target in (10, -1):
        with pytest.raises(ValueError, match=rf"^first_target {first_target} is outside 0\.\.9$"):
            metrics.arima_forecasts(train, later, first_target, max_p=1, max_q=1)
    with pytest.raises(ValueError, match="^max_p and max_q must be at least 0, got -1 and 0$"):
        metrics.arima_forecasts(train, later, 1, max_p=-1, max_q=0)
    with pytest.raises(ValueError, match="^max_p and max_q must be at least 0, got 0 and -1$"):
        metrics.arima_forecasts(train, later, 1, max_p=0, max_q=-1)
    with pytest.raises(ValueError, match="^train_closes: prices must be finite and positive$"):
        metrics.arima_forecasts(np.r_[train, 0.0], later, 1, max_p=1, max_q=1)
    with pytest.raises(ValueError, match="^later_closes: prices must be finite and positive$"):
        metrics.arima_forecasts(train, np.r_[later, -1.0], 1, max_p=1, max_q=1)


def test_arima_of_order_zero_from_the_first_later_day_is_persistence():
    closes = random_walk(80, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the updates' convergence warnings are silenced; nothing else is expected
        result = metrics.arima_forecasts(closes[:60], closes[60:], 0, max_p=0, max_q=0)
    assert result.order == (0, 1, 0) and result.with_intercept is False
    np.testing.assert_allclose(result.forecasts, closes[59:-1], rtol=1e-12)
    # from the second later day: the model has read the first one first
    from_second = metrics.arima_forecasts(closes[:60], closes[60:], 1, max_p=0, max_q=0)
    np.testing.assert_allclose(from_second.forecasts, closes[60:-1], rtol=1e-12)


def test_arima_on_a_steady_climb_finds_the_drift():
    closes = random_walk(80, seed=4, drift=0.01)
    result = metrics.arima_forecasts(closes[:60], closes[60:], 5, max_p=0, max_q=0)
    assert result.order == (0, 1, 0) and result.with_intercept is True
    assert len(result.forecasts) == 15
    # each forecast is the previous close grown by about the drift
    np.testing.assert_allclose(result.forecasts / closes[64:-1], math.exp(0.01), rtol=2e-3)


def test_float32_log_returns_are_widened_before_exp():
    """The model's float32 output must not cost the forecast its float64 precision."""
    last = np.array([100.0, 250.5])
    log_returns = np.array([0.012345, -0.0321], dtype=np.float32)
    forecast = metrics.closes_from_log_returns(last, log_returns)
    assert forecast.dtype == np.float64
    np.testing.assert_array_equal(forecast, last * np.exp(log_returns.astype(np.float64)))


def test_the_persistence_forecast_is_a_float64_copy_of_the_last_closes():
    last = np.array([100, 101])
    forecast = metrics.persistence_forecast(last)
    assert forecast.dtype == np.float64 and forecast.tolist() == [100.0, 101.0]
    forecast[0] = 1.0
    assert last[0] == 100


def test_mase_of_persistence_does_not_grow_with_the_price_level():
    """A stock that grew a thousandfold at a constant volatility: on price levels, the test
    period's moves would be hundreds of times the training period's; on log prices, persistence
    scores about 1."""
    rng = np.random.default_rng(9)
    closes = 1.0 * np.exp(np.cumsum(rng.normal(math.log(1000) / 5000, 0.01, 5000)))
    assert closes[-1] / closes[0] > 500
    train, (last, actual) = closes[:2500], one_step(closes, 4000)
    mase = metrics.mase(actual, metrics.persistence_forecast(last), metrics.naive_scale(train))
    assert mase == pytest.approx(1.0, abs=0.06)
    price_level_mase = np.mean(np.abs(actual - last)) / np.mean(np.abs(np.diff(train)))
    assert price_level_mase > 12


def test_float32_closes_are_scored_in_float64():
    closes = random_walk(50, seed=8)
    narrow = closes.astype(np.float32)
    wide = narrow.astype(np.float64)  # the same numbers
    assert metrics.naive_scale(narrow) == metrics.naive_scale(wide)
    assert metrics.drift_rate(narrow) == metrics.drift_rate(wide)
    assert metrics.mape(narrow, closes) == metrics.mape(wide, closes)

def test_spread_is_mean_sample_std_min_max():
    assert metrics.spread([1.0, 2.0, 4.0]) == {"mean": 7 / 3, "std": pytest.approx(np.std([1, 2, 4], ddof=1)),
                                               "min": 1.0, "max": 4.0}
    assert metrics.spread([0.5]) == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}

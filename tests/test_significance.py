"""The tests against persistence and the intervals, on small series worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nextclose import significance


def student_t3_cdf(t: float) -> float:
    """Student's t with 3 degrees of freedom has a closed-form CDF: no library needed."""
    u = t / math.sqrt(3.0)
    return 0.5 + (u / (1.0 + u * u) + math.atan(u)) / math.pi


def normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# --- Diebold-Mariano ------------------------------------------------------------------------

MODEL = np.array([1.0, -2.0, 0.5, 1.0])
REFERENCE = np.array([2.0, 2.0, -1.0, 1.5])


def test_diebold_mariano_on_squared_errors_by_hand():
    # d = e_m^2 - e_p^2 = [-3, 0, -0.75, -1.25]: mean -1.25, deviations -1.75, 1.25, 0.5, 0
    variance = (1.75**2 + 1.25**2 + 0.5**2 + 0.0) / 3  # ddof 1: 1.625
    statistic = -1.25 / math.sqrt(variance / 4) * math.sqrt(3 / 4)  # Harvey-Leybourne-Newbold, h = 1
    assert statistic == pytest.approx(-1.698416, abs=1e-6)
    assert significance.diebold_mariano(MODEL, REFERENCE) == pytest.approx(student_t3_cdf(statistic), rel=1e-12)
    assert significance.diebold_mariano(MODEL, REFERENCE) == pytest.approx(0.0939965, abs=1e-6)


def test_diebold_mariano_on_absolute_errors_by_hand():
    # d = |e_m| - |e_p| = [-1, 0, -0.5, -0.5]: mean -0.5, deviations -0.5, 0.5, 0, 0
    statistic = -0.5 / math.sqrt((0.25 + 0.25) / 3 / 4) * math.sqrt(3 / 4)
    assert significance.diebold_mariano(MODEL, REFERENCE, "absolute") == pytest.approx(
        student_t3_cdf(statistic), rel=1e-12)


def test_diebold_mariano_is_one_sided_and_symmetric():
    better = significance.diebold_mariano(MODEL, REFERENCE)
    worse = significance.diebold_mariano(REFERENCE, MODEL)
    assert better < 0.5 < worse and better + worse == pytest.approx(1.0)


def test_diebold_mariano_when_the_differential_never_varies():
    assert significance.diebold_mariano(REFERENCE, REFERENCE) == 1.0  # identical: no evidence
    # the same forecasts up to rounding: no evidence either way, not a coin flip on the last bits
    rounded = REFERENCE * (1 + np.array([1e-15, -1e-15, 2e-15, -1e-15]))
    assert significance.diebold_mariano(rounded, REFERENCE) == 1.0
    assert significance.diebold_mariano(REFERENCE * (1 + np.array([1e-6, -1e-6, 0.0, 0.0])), REFERENCE) != 1.0
    assert significance.diebold_mariano(np.zeros(3), np.ones(3)) == 0.0  # better by the same every day
    assert significance.diebold_mariano(np.full(3, 2.0), np.ones(3)) == 1.0


def test_diebold_mariano_checks_its_input():
    with pytest.raises(ValueError, match="at least two forecasts"):
        significance.diebold_mariano(np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match=r"model_errors has shape \(2,\), reference_errors \(3,\)"):
        significance.diebold_mariano(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="reference_errors: errors must be finite"):
        significance.diebold_mariano(np.ones(2), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="loss must be one of"):
        significance.diebold_mariano(np.ones(2), np.ones(2), "cubed")


def test_diebold_mariano_rejects_at_the_right_rate_under_the_null():
    """Equal-accuracy forecasts: a 5% test rejects about 5% of the time (1,000 seeded series)."""
    rng = np.random.default_rng(0)
    p_values = [significance.diebold_mariano(rng.normal(size=250), rng.normal(size=250)) for _ in range(1000)]
    assert 0.035 <= np.mean(np.array(p_values) < 0.05) <= 0.065


# --- Pesaran-Timmermann ---------------------------------------------------------------------

def test_pesaran_timmermann_by_hand():
    actual = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 1], bool)
    called = np.array([1, 0, 0, 0, 1, 1, 1, 1, 0, 0], bool)
    # P = 7/10, Py = 0.6, Px = 0.5, P* = 0.6*0.5 + 0.4*0.5 = 0.5
    var_p = 0.5 * 0.5 / 10
    var_p_star = (0.2**2 * 0.25 / 10) + (0.0 * 0.24 / 10) + 4 * 0.6 * 0.5 * 0.4 * 0.5 / 100
    statistic = (0.7 - 0.5) / math.sqrt(var_p - var_p_star)
    assert statistic == pytest.approx(1.360828, abs=1e-6)
    assert significance.pesaran_timmermann(actual, called) == pytest.approx(normal_sf(statistic), rel=1e-12)


def test_pesaran_timmermann_of_a_forecast_that_never_changes_its_call_is_one():
    actual = np.array([1, 0, 1, 1, 0], bool)
    assert significance.pesaran_timmermann(actual, np.zeros(5, bool)) == 1.0  # persistence: never up
    assert significance.pesaran_timmermann(actual, np.ones(5, bool)) == 1.0  # a positive drift: always up
    assert significance.pesaran_timmermann(np.ones(5, bool), actual) == 1.0  # nothing to predict


def test_pesaran_timmermann_tells_information_from_chance():
    rng = np.random.default_rng(1)
    actual = rng.random(500) < 0.55
    noisy_copy = np.where(rng.random(500) < 0.8, actual, ~actual)  # right 80% of the time
    assert significance.pesaran_timmermann(actual, noisy_copy) < 1e-6
    assert significance.pesaran_timmermann(actual, rng.random(500) < 0.55) > 0.01


# --- the bootstrap interval of the RMSE ratio ----------------------------------------------

def test_block_bootstrap_rows_are_runs_of_consecutive_days():
    rows = significance.block_bootstrap_indices(23, 5, 40, seed=3)
    assert rows.shape == (40, 23) and rows.min() >= 0 and rows.max() <= 22
    for row in rows:
        for start in range(0, 23, 5):  # every block is consecutive days
            block = row[start:start + 5]
            np.testing.assert_array_equal(np.diff(block), 1)
    np.testing.assert_array_equal(rows, significance.block_bootstrap_indices(23, 5, 40, seed=3))  # seeded
    assert not np.array_equal(rows, significance.block_bootstrap_indices(23, 5, 40, seed=4))
    with pytest.raises(ValueError, match="block_length must lie in 1 .. 23"):
        significance.block_bootstrap_indices(23, 24, 40, seed=3)


def test_bootstrap_interval_contains_the_ratio_and_narrows_with_more_days():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=2000)
    model = 0.95 * reference + rng.normal(scale=0.2, size=2000)
    widths = []
    for n in (200, 2000):
        low, high = significance.rmse_ratio_interval(model[:n], reference[:n], 10, 1000, seed=0)
        assert low < significance.rmse_ratio(model[:n], reference[:n]) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # about sqrt(10) narrower
    assert significance.rmse_ratio_interval(model, reference, 10, 1000, seed=0) == \
        significance.rmse_ratio_interval(model, reference, 10, 1000, seed=0)


def test_bootstrap_interval_covers_the_true_ratio_about_as_often_as_it_says():
    """On 200 seeded series whose true RMSE ratio is 1, the 95% interval holds 1 in most of them."""
    rng = np.random.default_rng(5)
    held = 0
    for _ in range(200):
        held += (lambda lo_hi: lo_hi[0] <= 1.0 <= lo_hi[1])(significance.rmse_ratio_interval(
            rng.normal(size=300), rng.normal(size=300), 10, 300, seed=int(rng.integers(1 << 31))))
    assert 0.88 <= held / 200 <= 0.99


# --- split-conformal intervals --------------------------------------------------------------

def test_conformal_quantile_takes_the_rank_the_level_asks_for():
    scores = np.array([9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0])  # 1 .. 9 shuffled
    assert significance.conformal_quantile(scores, 0.8) == 8.0  # ceil(10 * 0.8) = 8th smallest
    assert significance.conformal_quantile(scores, 0.5) == 5.0  # ceil(10 * 0.5) = 5th
    assert significance.conformal_quantile(scores, 0.9) == 9.0  # ceil(10 * 0.9) = 9th: the largest
    with pytest.raises(ValueError, match="9 calibration days cannot give a 0.95 interval: at least 19"):
        significance.conformal_quantile(scores, 0.95)


def test_conformal_intervals_of_a_known_distribution_cover_the_nominal_share():
    """Log returns N(0, 1%): 90% intervals from 1,000 calibration days hold the close on about
    90% of 20,000 new days."""
    rng = np.random.default_rng(11)
    calibration_forecast = 100 * np.exp(rng.normal(0, 0.05, 1000))
    calibration_actual = calibration_forecast * np.exp(rng.normal(0, 0.01, 1000))
    forecast = 50 * np.exp(rng.normal(0, 0.05, 20_000))  # another price level: the interval follows it
    actual = forecast * np.exp(rng.normal(0, 0.01, 20_000))
    lower, upper = significance.conformal_log_interval(calibration_actual, calibration_forecast, forecast, 0.9)
    assert significance.interval_coverage(actual, lower, upper) == pytest.approx(0.9, abs=0.015)
    # half-width near the normal's 95th percentile of |r|: 1.645 * 1%
    assert np.log(upper / forecast) == pytest.approx(np.full(20_000, 0.01645), rel=0.06)
    np.testing.assert_allclose(np.log(forecast / lower), np.log(upper / forecast))


def test_interval_coverage_counts_the_ends_as_inside():
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    assert significance.interval_coverage(actual, np.array([1.0, 2.5, 0.0, 4.5]),
                                          np.array([2.0, 3.0, 3.0, 5.0])) == 0.5


# --- edges and input checks (each found by mutating significance.py) ------------------------

def test_pesaran_timmermann_by_hand_when_neither_rate_is_a_half():
    """The second and third terms of var(P*) vanish when a rate is 1/2; here neither is."""
    actual = np.array([1, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0], bool)  # py = 8/12
    called = np.array([1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0], bool)  # px = 7/12
    n, py, px = 12, 8 / 12, 7 / 12
    hits = np.mean(actual == called)  # 9/12
    expected = py * px + (1 - py) * (1 - px)
    var_p = expected * (1 - expected) / n
    var_p_star = ((2 * py - 1) ** 2 * px * (1 - px) / n + (2 * px - 1) ** 2 * py * (1 - py) / n
                  + 4 * py * px * (1 - py) * (1 - px) / n**2)
    # (1/3)^2 * 35/144 / 12 + (1/6)^2 * 2/9 / 12 + 4 * (2/3)(7/12)(1/3)(5/12) / 144
    assert hits == 0.75 and var_p_star == pytest.approx(35 / 15552 + 2 / 3888 + 280 / 186624, rel=1e-12)
    statistic = (hits - expected) / math.sqrt(var_p - var_p_star)
    assert significance.pesaran_timmermann(actual, called) == pytest.approx(normal_sf(statistic), rel=1e-12)


def test_float32_errors_are_tested_in_float64():
    rng = np.random.default_rng(3)
    model, reference = rng.normal(size=50).astype(np.float32), rng.normal(size=50).astype(np.float32)
    wide_model, wide_reference = model.astype(np.float64), reference.astype(np.float64)
    assert significance.diebold_mariano(model, reference) == significance.diebold_mariano(wide_model, wide_reference)
    assert significance.conformal_quantile(model, 0.9) == significance.conformal_quantile(wide_model, 0.9)
    actual = np.float32(100) * np.exp(model / 100)
    forecast = np.full(50, np.float32(100))
    narrow = significance.conformal_log_interval(actual, forecast, np.array([100.0]), 0.9)
    wide = significance.conformal_log_interval(actual.astype(np.float64), forecast.astype(np.float64),
                                               np.array([100.0]), 0.9)
    assert narrow == wide


def test_rounding_in_either_direction_is_no_evidence_at_any_scale():
    """Errors of about 1,000 (price units of an index): losses that differ by rounding only."""
    reference = 1000.0 + np.arange(20.0)
    assert significance.diebold_mariano(reference * (1 - 1e-13), reference) == 1.0
    assert significance.diebold_mariano(reference * (1 + 1e-13), reference) == 1.0
    assert significance.diebold_mariano(reference * (1 - 1e-4), reference) < 1e-6  # better every day


def test_a_constant_differential_decides_by_its_sign():
    assert significance.diebold_mariano(np.full(4, math.sqrt(1.5)), np.ones(4)) == 1.0  # d = +0.5 every day
    assert significance.diebold_mariano(np.full(4, math.sqrt(0.5)), np.ones(4)) == 0.0  # d = -0.5 every day


def test_two_forecasts_are_enough_for_the_diebold_mariano_test():
    assert 0.0 < significance.diebold_mariano(np.array([1.0, 2.0]), np.array([2.0, 2.5])) < 0.5


def test_input_checks_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"^the Diebold-Mariano test needs at least two forecasts$"):
        significance.diebold_mariano(np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match=r"^model_errors: errors must be finite$"):
        significance.diebold_mariano(np.array([1.0, np.inf]), np.ones(2))
    with pytest.raises(ValueError, match=r"^model_errors: expected a non-empty 1-d array, got shape \(2, 2\)$"):
        significance.diebold_mariano(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"^reference_errors: expected a non-empty 1-d array, got shape \(0,\)$"):
        significance.diebold_mariano(np.ones(2), np.ones(0))
    with pytest.raises(ValueError, match=r"^need two 1-d arrays of the same non-zero length, got \(2,\) and \(3,\)$"):
        significance.pesaran_timmermann(np.ones(2, bool), np.ones(3, bool))
    with pytest.raises(ValueError, match=r"^need two 1-d arrays of the same non-zero length, got \(1, 2\) and"):
        significance.pesaran_timmermann(np.ones((1, 2), bool), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match=r"^need two 1-d arrays of the same non-zero length, got \(0,\) and \(0,\)$"):
        significance.pesaran_timmermann(np.ones(0, bool), np.ones(0, bool))
    assert significance.pesaran_timmermann(np.array([True]), np.array([False])) == 1.0  # one day: no test
    with pytest.raises(ValueError, match=r"^calibration_scores: errors must be finite$"):
        significance.conformal_quantile(np.array([1.0, np.nan]), 0.5)
    with pytest.raises(ValueError, match=r"^actual: errors must be finite$"):
        significance.interval_coverage(np.array([np.nan]), np.zeros(1), np.ones(1))
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"^coverage must lie strictly between 0 and 1, got {bad}$"):
            significance.conformal_quantile(np.arange(100.0), bad)
        with pytest.raises(ValueError, match=rf"^level must lie strictly between 0 and 1, got {bad}$"):
            significance.rmse_ratio_interval(np.ones(10), np.ones(10), 2, 10, 0, level=bad)


def test_block_bootstrap_at_its_smallest():
    np.testing.assert_array_equal(significance.block_bootstrap_indices(1, 1, 3, seed=0), np.zeros((3, 1)))
    assert significance.block_bootstrap_indices(5, 1, 1, seed=0).shape == (1, 5)  # one draw, blocks of one day
    with pytest.raises(ValueError, match=r"^need n >= 1 and draws >= 1, got 0 and 3$"):
        significance.block_bootstrap_indices(0, 1, 3, seed=0)
    with pytest.raises(ValueError, match=r"^need n >= 1 and draws >= 1, got 5 and 0$"):
        significance.block_bootstrap_indices(5, 1, 0, seed=0)
    with pytest.raises(ValueError, match=r"^block_length must lie in 1 .. 5 \(the number of days\), got 0$"):
        significance.block_bootstrap_indices(5, 0, 3, seed=0)


def test_bootstrap_interval_is_the_percentiles_of_the_resampled_ratios():
    """Errors far from 1 (ratio 2 on a scale of 50), so a product and a quotient differ."""
    rng = np.random.default_rng(8)
    reference = rng.normal(0, 50, 120)
    model = 2 * reference + rng.normal(0, 5, 120)
    rows = significance.block_bootstrap_indices(120, 6, 400, seed=1)
    ratios = np.sqrt(np.mean(model[rows] ** 2, axis=1) / np.mean(reference[rows] ** 2, axis=1))
    expected = np.quantile(ratios, [0.05, 0.95])  # a 90% interval
    interval = significance.rmse_ratio_interval(model, reference, 6, 400, seed=1, level=0.9)
    np.testing.assert_allclose(interval, expected, rtol=1e-12)
    assert interval[0] < 2.0 < interval[1]


def test_bootstrap_interval_refuses_a_resample_without_any_reference_error():
    with pytest.raises(ValueError, match=r"^reference_errors: a resample has no error at all; the ratio is undefined$"):
        significance.rmse_ratio_interval(np.ones(5), np.array([0.0, 0.0, 0.0, 0.0, 1.0]), 1, 200, seed=0)


def test_intervals_of_float32_forecasts_are_float64():
    lower, upper = significance.log_interval(np.array([100.0, 50.0], np.float32), 0.01)
    assert lower.dtype == upper.dtype == np.float64
    np.testing.assert_array_equal(upper, np.array([100.0, 50.0]) * math.exp(0.01))


def test_pesaran_timmermann_of_a_constant_call_or_outcome_at_a_rate_that_rounds_badly():
    """With 3 of 7 days up and a constant call, var(P) - var(P*) is 0 in exact arithmetic but
    +7e-18 in floating point: without the guard the statistic would be noise divided by noise."""
    three_of_seven = np.array([1, 0, 0, 1, 0, 1, 0], bool)
    assert significance.pesaran_timmermann(three_of_seven, np.zeros(7, bool)) == 1.0
    assert significance.pesaran_timmermann(np.zeros(7, bool), three_of_seven) == 1.0
    assert significance.pesaran_timmermann(np.ones(7, bool), three_of_seven) == 1.0

"""The windows and the split, at their edges: sizes, boundaries, dtypes, the statistics."""

from __future__ import annotations

import numpy as np
import pytest

from nextclose import features
from nextclose.errors import DataError
from nextclose.params import FeatureParams, SplitParams

from helpers import random_walk_bars


def windows_ending(dates: list[str]) -> features.Windows:
    """Samples whose target dates are ``dates`` (the values are the sample's index)."""
    n = len(dates)
    index = np.arange(n, dtype=np.float64)
    return features.Windows(np.zeros((n, 2, 4), np.float32), index.astype(np.float32), index + 1, index + 2,
                            np.array(dates, dtype="datetime64[D]"))


def test_feature_names_with_and_without_volume():
    assert features.feature_names(False) == ("log_open", "log_high", "log_low", "log_close")
    assert features.feature_names(True) == ("log_open", "log_high", "log_low", "log_close", "log_volume")


@pytest.mark.parametrize("volume, channels", [(True, 5), (False, 4)])
def test_too_few_rows_give_no_samples_of_the_right_shape(volume, channels):
    windows = features.make_windows(random_walk_bars(10), FeatureParams(window=10, volume=volume))
    assert windows.inputs.shape == (0, 10, channels) and windows.inputs.dtype == np.float32
    assert windows.targets.shape == (0,) and windows.targets.dtype == np.float32
    assert windows.last_close.shape == windows.next_close.shape == (0,)
    assert windows.target_dates.dtype == np.dtype("datetime64[D]") and len(windows.target_dates) == 0


def test_one_more_row_than_the_window_gives_one_sample():
    bars = random_walk_bars(6)
    windows = features.make_windows(bars, FeatureParams(window=5, volume=False))
    close = bars["close"].to_numpy()
    assert windows.inputs.shape == (1, 5, 4) and windows.inputs.dtype == np.float32
    np.testing.assert_allclose(windows.inputs[0, :, 0], np.log(bars["open"].to_numpy()[:5] / close[4]), rtol=1e-5)
    np.testing.assert_allclose(windows.inputs[0, :, 2], np.log(bars["low"].to_numpy()[:5] / close[4]), rtol=1e-5)
    assert windows.targets.dtype == np.float32 and windows.targets[0] == np.float32(np.log(close[5] / close[4]))
    assert windows.last_close.tolist() == [close[4]] and windows.next_close.tolist() == [close[5]]
    assert windows.target_dates.tolist() == [bars["date"].iloc[5].date()]
    assert windows.target_dates.dtype == np.dtype("datetime64[D]")


def test_split_boundaries_from_fractions():
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-11"))  # ten target dates
    split = SplitParams(validation_fraction=0.3, test_fraction=0.2, validation_start=None, test_start=None)
    # 2 test, 3 validation, 5 train
    assert features.split_boundaries(dates, split) == (dates[5], dates[8])
    one_date = SplitParams(0.3, 0.2, validation_start="2020-01-02", test_start=None)
    assert features.split_boundaries(dates, one_date) == (dates[5], dates[8])  # both dates, or none


def test_split_boundaries_from_dates():
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-11"))
    split = SplitParams(0.3, 0.2, validation_start="2020-01-03", test_start="2020-01-09")
    boundaries = features.split_boundaries(dates, split)
    assert boundaries == (np.datetime64("2020-01-03"), np.datetime64("2020-01-09"))
    assert all(b.dtype == np.dtype("datetime64[D]") for b in boundaries)


def test_each_split_needs_at_least_one_sample_from_the_fractions():
    split = SplitParams(validation_fraction=0.2, test_fraction=0.2, validation_start=None, test_start=None)
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-04"))
    assert features.split_boundaries(dates, split) == (dates[1], dates[2])  # 1 of each: just enough
    with pytest.raises(DataError, match="^2 samples cannot be split into train, validation and test$"):
        features.split_boundaries(dates[:2], split)
    ten = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-11"))
    with pytest.raises(DataError, match="^2 samples cannot be split"):  # 45 % twice leaves training none
        features.split_boundaries(dates[:2], SplitParams(0.45, 0.45, None, None))
    # 4 % of ten samples rounds to none
    for no_validation_or_no_test in (SplitParams(0.04, 0.3, None, None), SplitParams(0.3, 0.04, None, None)):
        with pytest.raises(DataError, match="^10 samples cannot be split"):
            features.split_boundaries(ten, no_validation_or_no_test)


def test_a_sample_on_a_boundary_date_belongs_to_the_later_split():
    dates = [f"2020-01-{day:02d}" for day in range(1, 16)]
    parts = features.split_windows(
        windows_ending(dates), (np.datetime64("2020-01-06"), np.datetime64("2020-01-11")), "s", 3)
    assert [len(parts[name].targets) for name in features.SPLITS] == [5, 5, 5]
    assert str(parts["validation"].target_dates[0]) == "2020-01-06"
    assert str(parts["test"].target_dates[0]) == "2020-01-11"
    # every field is cut with the same mask
    assert parts["test"].targets.tolist() == [10, 11, 12, 13, 14]
    assert parts["test"].last_close.tolist() == [11, 12, 13, 14, 15]
    assert parts["test"].next_close.tolist() == [12, 13, 14, 15, 16]
    assert parts["validation"].inputs.shape == (5, 2, 4)


def test_a_split_of_four_samples_is_refused_with_the_reason():
    dates = [f"2020-01-{day:02d}" for day in range(1, 15)]
    boundaries = (np.datetime64("2020-01-06"), np.datetime64("2020-01-11"))
    with pytest.raises(DataError, match=(
            r"^s.csv: too few rows: the test split gets 4 samples, at least 5 needed \(each sample needs "
            r"features.window=3 days of history and a next day; 17 rows in range, validation from "
            r"2020-01-06, test from 2020-01-11\)$")):
        features.split_windows(windows_ending(dates), boundaries, "s.csv", 3)


def test_normalisation_of_hand_made_windows():
    inputs = np.array([[[1.0, 5.0]], [[3.0, 5.0]]], np.float32)  # the second feature never moves
    train = features.Windows(inputs, np.array([3.0, -4.0], np.float32), np.ones(2), np.ones(2),
                             np.array(["2020-01-01", "2020-01-02"], "datetime64[D]"))
    normalisation = features.fit_normalisation(train, ("a", "b"))
    assert normalisation == features.Normalisation(("a", "b"), (2.0, 5.0), (1.0, 1.0), np.sqrt(12.5))
    assert type(normalisation.target_scale) is float and all(type(v) is float for v in normalisation.mean)
    still = features.Windows(inputs * 2, np.zeros(2, np.float32), np.ones(2), np.ones(2), train.target_dates)
    assert features.fit_normalisation(still, ("a", "b")) == features.Normalisation(
        ("a", "b"), (4.0, 10.0), (2.0, 1.0), 1.0)  # no move at all: the target stays unscaled


def test_date_range():
    assert features.date_range(np.array([], "datetime64[D]")) is None
    dates = np.array(["2020-01-01T10:00", "2020-01-05T00:00", "2020-02-03T23:59"], "datetime64[m]")
    assert features.date_range(dates) == ("2020-01-01", "2020-02-03")


def test_float32_bars_give_the_windows_of_the_same_numbers_in_float64():
    bars = random_walk_bars(30)
    columns = ("open", "high", "low", "close", "volume")
    narrow = bars.astype({column: np.float32 for column in columns})
    wide = narrow.astype({column: np.float64 for column in columns})
    params = FeatureParams(window=5, volume=True)
    got, expected = features.make_windows(narrow, params), features.make_windows(wide, params)
    assert got.last_close.dtype == np.float64
    np.testing.assert_array_equal(got.targets, expected.targets)
    np.testing.assert_array_equal(got.inputs, expected.inputs)

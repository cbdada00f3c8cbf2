"""What the tests share: tiny params, synthetic bars. Imported as ``from helpers import ...``."""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]


def script_module(name: str):
    """A module of scripts/, loaded as running a script would: scripts/ on the path, for the
    modules the scripts share (loopback.py)."""
    scripts = str(REPO / "scripts")
    if scripts not in sys.path:
        sys.path.append(scripts)
    return importlib.import_module(name)


# a free loopback port, and waiting until a server a test started answers (scripts/loopback.py)
_loopback = script_module("loopback")
free_port, wait_until_up = _loopback.free_port, _loopback.wait_until_up

# Small enough that a whole stage runs in seconds on two cores.
TINY_OVERRIDES = {
    "data": {"start": "2016-01-01", "end": "2017-06-30"},
    "features": {"window": 10},
    "model": {"hidden_units": 4},
    "train": {"seeds": 2, "steps": 60, "batch_size": 16, "eval_every": 20, "steps_per_call": 10,
              "log_every": 20, "patience": None},  # two members: the ensemble paths, at half the cost of five
    "evaluate": {"arima": False, "arima_max_p": 1, "arima_max_q": 1, "bootstrap_draws": 200},
    "backtest": {"folds": 2},
    "tune": {"n_trials": 3, "timeout": None, "cv_folds": 1, "hidden_units_min": 2, "hidden_units_max": 8,
             "steps_min": 20, "steps_max": 60, "steps_step": 20},
}


def repo_params() -> dict:
    """The committed params.yaml as a plain dict."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


def merged(base: dict, overrides: dict) -> dict:
    result = copy.deepcopy(base)
    for section, values in overrides.items():
        result.setdefault(section, {}).update(values)
    return result


def tiny_params(**overrides: dict) -> dict:
    """params.yaml with tiny settings, then ``overrides`` (``section={key: value}``)."""
    return merged(merged(repo_params(), TINY_OVERRIDES), overrides)


def write_params(directory: Path, params: dict, name: str = "params.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def random_walk_bars(n: int = 200, seed: int = 0, start: str = "2018-01-02") -> pd.DataFrame:
    """Valid synthetic daily bars: a geometric random walk with consistent highs and lows."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    dates = pd.bdate_range(start, periods=n)
    return pd.DataFrame({"date": dates, "open": open_, "high": high, "low": low,
                         "close": close, "volume": rng.integers(1_000, 10_000, n).astype(float)})


def predictable_bars(n: int = 260) -> pd.DataFrame:
    """Bars whose next move follows today's move (strong momentum): an LSTM can learn it."""
    rng = np.random.default_rng(1)
    returns = np.zeros(n)
    for t in range(1, n):
        returns[t] = 0.8 * returns[t - 1] + rng.normal(0, 0.01)
    bars = random_walk_bars(n)
    close = 100 * np.exp(np.cumsum(returns))
    bars["open"] = np.r_[close[0], close[:-1]]
    bars["close"] = close
    bars["high"] = np.maximum(bars["open"], close) * 1.001
    bars["low"] = np.minimum(bars["open"], close) * 0.999
    return bars


def lstm_splits(bars: pd.DataFrame, window: int = 10):
    """The default model's train / validation / test windows of ``bars`` (tiny params' split),
    and the normalisation fitted on the training windows."""
    from nextclose import features
    from nextclose.params import parse_params

    windows = features.make_windows(bars, features.FeatureParams(window=window, volume=True))
    boundaries = features.split_boundaries(windows.target_dates, parse_params(tiny_params()).split)
    parts = features.split_windows(windows, boundaries, "walk", window)
    return parts, features.fit_normalisation(parts["train"], features.feature_names(True))


class ConstantNetwork:
    """A trained ensemble stand-in: member k forecasts the log return ``returns[k]`` whatever
    the inputs, and the ensemble their mean."""

    def __init__(self, returns):
        self.returns = np.asarray(returns, np.float32)

    def __call__(self, inputs):
        return np.full((len(inputs), 1), self.returns.mean(), np.float32)

    def member_outputs(self, inputs):
        return np.repeat(self.returns[:, None], len(inputs), axis=1)


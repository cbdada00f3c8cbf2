"""The ranking figures (IC, Rank IC, their HAC t, the long-short portfolio, the baselines) on
panels worked by hand or checked against scipy and statsmodels."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from nextclose import cross_section as cs

NAN = math.nan
SYMBOLS = ["A", "B", "C", "D", "E"]


def random_panel(rng: np.random.Generator, days: int, symbols: int, missing: float = 0.0) -> cs.Panel:
    """Independent normal signals and returns; a share ``missing`` of the cells has no return."""
    signal = rng.normal(size=(days, symbols))
    realised = rng.normal(scale=0.02, size=(days, symbols))
    realised[rng.random((days, symbols)) < missing] = np.nan
    dates = pd.bdate_range("2020-01-01", periods=days).to_numpy()
    return cs.Panel(dates, np.array([f"S{i:02d}" for i in range(symbols)]), signal, realised)


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    values = np.empty(n)
    values[0] = rng.normal()
    for i in range(1, n):
        values[i] = phi * values[i - 1] + rng.normal()
    return values + 0.1


# --- IC and Rank IC ----------------------------------------------------------------------------

# one row per symbol-day: (day, symbol, signal, realised)
ROWS = [
    # ties in the signal (B, C) and in the returns (A, C)
    ("2024-01-02", "A", 0.02, 0.01), ("2024-01-02", "B", 0.01, -0.02), ("2024-01-02", "C", 0.01, 0.01),
    ("2024-01-02", "D", -0.03, 0.00), ("2024-01-02", "E", 0.00, 0.03),
    # C has no row, D no signal (its return would rank between A and B): the day is A, B, E
    ("2024-01-03", "A", 0.05, 0.01), ("2024-01-03", "B", -0.01, 0.02), ("2024-01-03", "D", NAN, 0.015),
    ("2024-01-03", "E", 0.02, -0.01),
    # E has no return (its signal would rank between A and B): the day is A, B, C, D
    ("2024-01-04", "A", 0.01, 0.02), ("2024-01-04", "B", 0.03, 0.01), ("2024-01-04", "C", -0.02, -0.01),
    ("2024-01-04", "D", 0.04, 0.03), ("2024-01-04", "E", 0.015, NAN),
    # a constant signal (0.1 is not a binary fraction: its mean over three is rounded): undefined
    ("2024-01-05", "A", 0.1, 0.01), ("2024-01-05", "B", 0.1, -0.02), ("2024-01-05", "C", 0.1, 0.03),
    # the same return for everyone: undefined
    ("2024-01-08", "A", 0.01, 0.02), ("2024-01-08", "B", 0.03, 0.02), ("2024-01-08", "C", -0.02, 0.02),
    # one symbol: undefined
    ("2024-01-09", "A", 0.01, 0.02),
    # two symbols: defined, and -1
    ("2024-01-10", "A", 0.01, 0.03), ("2024-01-10", "B", 0.02, -0.01),
]


def hand_panel() -> cs.Panel:
    days, symbols, signal, realised = zip(*ROWS)
    return cs.grid(pd.to_datetime(np.array(days)).to_numpy(), np.array(symbols), np.array(signal),
                   np.array(realised))


def expected_correlations(correlation) -> list[float]:
    """``correlation`` (scipy's) of each day over the rows with both a signal and a return."""
    out = []
    for day in dict.fromkeys(row[0] for row in ROWS):
        pairs = [(s, r) for d, _, s, r in ROWS if d == day and math.isfinite(s) and math.isfinite(r)]
        x, y = np.array(pairs).T
        out.append(float(correlation(x, y).statistic) if len(pairs) >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0
                   else NAN)
    return out


def test_grid_lays_out_the_days_and_symbols():
    """The grid is days x sorted symbols, NaN for an absent row."""
    panel = hand_panel()
    assert list(panel.symbols) == SYMBOLS
    assert len(panel.dates) == 7 and np.all(np.diff(panel.dates) > np.timedelta64(0))
    assert np.isnan(panel.signal[1, 2]) and np.isnan(panel.realised[1, 2])  # C on 2024-01-03: no row
    assert panel.realised[1, 3] == 0.015 and np.isnan(panel.signal[1, 3])


def test_ic_is_pearson_over_the_symbols_present_each_day():
    """IC is scipy's pearsonr per day over the symbols with both values; NaN when undefined."""
    ic, _ = cs.daily_ic(hand_panel())
    expected = expected_correlations(stats.pearsonr)
    assert [math.isnan(value) for value in expected] == [False, False, False, True, True, True, False]
    np.testing.assert_allclose(ic, expected, rtol=1e-12, atol=1e-15)
    assert np.isnan(ic[3:6]).all()  # the constant signal's day is undefined, not a rounded 0
    assert ic[6] == pytest.approx(-1.0, abs=1e-15)


def test_rank_ic_is_spearman_with_average_ranks():
    """Rank IC is scipy's spearmanr per day (ties share their average rank); NaN when undefined."""
    _, rank_ic = cs.daily_ic(hand_panel())
    expected = expected_correlations(stats.spearmanr)
    np.testing.assert_allclose(rank_ic, expected, rtol=1e-12, atol=1e-15)
    assert rank_ic[6] == pytest.approx(-1.0, abs=1e-15)
    # day one by hand: signal ranks A 5, B 3.5, C 3.5, D 1, E 2; return ranks A 3.5, B 1, C 3.5, D 2, E 5
    by_hand = np.corrcoef([5, 3.5, 3.5, 1, 2], [3.5, 1, 3.5, 2, 5])[0, 1]
    assert rank_ic[0] == pytest.approx(by_hand, rel=1e-12)
    assert rank_ic[0] != pytest.approx(stats.pearsonr([5, 4, 3, 1, 2], [4, 1, 3, 2, 5]).statistic)  # not first-seen


def test_grid_refuses_a_repeated_symbol_day():
    """Two forecasts for one symbol-day are refused, naming the symbol and the day."""
    dates = pd.to_datetime(np.array(["2024-01-02", "2024-01-02", "2024-01-03", "2024-01-03"])).to_numpy()
    with pytest.raises(ValueError, match=r"symbol B .*2024-01-03"):
        cs.grid(dates, np.array(["A", "B", "B", "B"]), np.zeros(4), np.zeros(4))


# --- Newey-West t --------------------------------------------------------------------------------


@pytest.mark.parametrize("lags", [0, 1, 4, 12])
def test_newey_west_t_is_statsmodels_hac(lags):
    """t and p of the mean equal statsmodels' HAC OLS on a constant, on an autocorrelated series."""
    values = ar1(np.random.default_rng(7), 300, 0.6)
    fit = sm.OLS(values, np.ones(len(values))).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    t, p_value = cs.newey_west_t(values, lags)
    assert t == pytest.approx(float(fit.tvalues[0]), rel=1e-10)
    assert p_value == pytest.approx(float(fit.pvalues[0]), rel=1e-10)


def test_newey_west_lags_matter_on_a_persistent_series():
    """On positively autocorrelated values more lags widen the error: the t falls."""
    values = ar1(np.random.default_rng(7), 300, 0.6)
    t0, t4 = cs.newey_west_t(values, 0)[0], cs.newey_west_t(values, 4)[0]
    assert abs(t4) < abs(t0)
    assert t0 == pytest.approx(values.mean() / math.sqrt(values.var() / len(values)), rel=1e-12)  # lag 0: ddof 0


def test_mean_figures_by_hand():
    """Mean, std (n - 1), IR = mean / std (not annualised) and the HAC t of the defined days only."""
    daily = np.array([0.1, -0.05, np.nan, 0.2, 0.05])
    values = [0.1, -0.05, 0.2, 0.05]
    figures = cs.mean_figures(daily, lags=None)
    fit = sm.OLS(np.array(values), np.ones(4)).fit(cov_type="HAC", cov_kwds={"maxlags": cs.default_lags(4)})
    assert figures == pytest.approx({
        "mean": 0.075, "std": statistics.stdev(values), "ir": 0.075 / statistics.stdev(values),
        "t": float(fit.tvalues[0]), "p_value": float(fit.pvalues[0])}, rel=1e-10)
    assert cs.mean_figures(np.array([0.1, np.nan]), lags=None) == dict.fromkeys(cs.MEAN_KEYS)


def test_default_lags_is_newey_west_1994():
    """floor(4 (days / 100)^(2/9))."""
    assert [cs.default_lags(days) for days in (50, 100, 250, 1000)] == [3, 4, 4, 6]


# --- the long-short portfolio -------------------------------------------------------------------

#                       A      B      C      D
HAND_SIGNAL = np.array([[0.03, 0.01, -0.02, 0.00],
                        [0.02, 0.04, -0.01, -0.03],
                        [-0.05, 0.05, 0.02, -0.04]])
HAND_REALISED = np.array([[0.02, -0.01, 0.01, 0.005],
                          [-0.01, 0.03, 0.00, 0.02],
                          [0.00, -0.02, 0.01, 0.01]])


def test_long_short_by_hand():
    """Top 1 long, bottom 1 short, 25 bps per unit of turnover, on three days worked out by hand."""
    panel = cs.Panel(pd.bdate_range("2024-01-02", periods=3).to_numpy(), np.array(["A", "B", "C", "D"]),
                     HAND_SIGNAL, HAND_REALISED)
    weights = np.array([[1, 0, -1, 0],    # long A, short C
                        [0, 1, 0, -1],    # long B, short D: all four change
                        [-1, 1, 0, 0]])   # long B, short A: A and D change
    gross = (weights * HAND_REALISED).sum(axis=1)
    assert gross == pytest.approx([0.02 - 0.01, 0.03 - 0.02, -0.02 - 0.00])
    turnover = [2.0, 4.0, 2.0]  # from cash; |-1| + 1 + 1 + |-1|; |-1 - 0| + |0 - (-1)|
    returns, traded = cs.long_short(panel, top_k=1, cost_bps=25.0)
    assert traded == pytest.approx(turnover, abs=1e-15)
    assert returns == pytest.approx([0.01 - 2 * 0.0025, 0.01 - 4 * 0.0025, -0.02 - 2 * 0.0025], abs=1e-15)
    assert cs.long_short(panel, top_k=1, cost_bps=0.0)[0] == pytest.approx(gross, abs=1e-15)
    # top 2 on day one: long A and B, short D and C, half a unit each
    two, two_turnover = cs.long_short(panel, top_k=2, cost_bps=25.0)
    assert two[0] == pytest.approx(0.5 * (0.02 - 0.01) - 0.5 * (0.005 + 0.01) - 2 * 0.0025, abs=1e-15)
    assert two_turnover[0] == pytest.approx(2.0)


def test_portfolio_figures_by_hand():
    """Annualised as Qlib's sum mode: mean x 252, std (n - 1) x sqrt(252), drawdown of the summed returns."""
    returns = np.array([0.005, 0.0, -0.025])
    figures = cs.portfolio_figures(returns, np.array([2.0, 4.0, 2.0]), top_k=1, cost_bps=25.0)
    mean, std = -0.02 / 3, statistics.stdev([0.005, 0.0, -0.025])
    assert figures == pytest.approx({
        "annual_return": mean * 252, "annual_volatility": std * math.sqrt(252),
        "information_ratio": mean / std * math.sqrt(252),
        "max_drawdown": -0.025,  # summed: 0.005, 0.005, -0.02; from the peak 0.005 down to -0.02
        "turnover": 8.0 / 3, "cost_bps": 25.0, "top_k": 1}, rel=1e-12)
    rising = cs.portfolio_figures(np.array([0.01, 0.02, 0.0]), np.full(3, 2.0), top_k=1, cost_bps=0.0)
    assert rising["max_drawdown"] == 0.0
    assert cs.portfolio_figures(np.array([0.01]), np.array([2.0]), 1, 0.0)["annual_return"] is None


def test_only_symbols_with_a_return_are_held():
    """A symbol without a return that day is skipped: the next one takes its side."""
    realised = HAND_REALISED[:1].copy()
    realised[0, 0] = np.nan  # A, the top signal, has no return
    panel = cs.Panel(np.array(["2024-01-02"], dtype="datetime64[ns]"), np.array(["A", "B", "C", "D"]),
                     HAND_SIGNAL[:1], realised)
    returns, turnover = cs.long_short(panel, top_k=1, cost_bps=0.0)
    assert returns == pytest.approx([-0.01 - 0.01]) and turnover == pytest.approx([2.0])  # long B, short C


def test_sides_and_ties():
    """Top and bottom k among the finite signals, ties by position, sides never shared, half each when short."""
    np.testing.assert_array_equal(cs.sides(np.array([0.3, -0.1, 0.2, 0.0, -0.5]), 2), [1, -1, 1, 0, -1])
    np.testing.assert_array_equal(cs.sides(np.array([3.0, 1.0, 1.0, 0.0]), 2), [1, 1, -1, -1])
    np.testing.assert_array_equal(cs.sides(np.array([1.0, 1.0, 1.0, 1.0]), 1), [1, 0, 0, -1])
    np.testing.assert_array_equal(cs.sides(np.array([np.nan, 2.0, 1.0, np.nan, 3.0]), 1), [0, 0, -1, 0, 1])
    np.testing.assert_array_equal(cs.sides(np.array([5.0, 4.0, 3.0, 2.0, 1.0]), 3), [1, 1, 0, -1, -1])  # 5 // 2
    np.testing.assert_array_equal(cs.sides(np.array([2.0, np.nan, 1.0, 3.0]), 2), [0, 0, -1, 1])  # 3 // 2
    np.testing.assert_array_equal(cs.sides(np.array([2.0, np.nan]), 1), [0, 0])
    rng = np.random.default_rng(3)
    for _ in range(200):  # ties galore: both sides always k, never the same symbol
        signal = rng.integers(0, 3, size=7).astype(np.float64)
        side = cs.sides(signal, 3)
        assert (side == 1).sum() == (side == -1).sum() == 3
        assert signal[side == 1].min() >= signal[side == -1].max()


def test_resolve_top_k():
    """Null top_k: a fifth of the symbols, at least one; a given one is kept."""
    assert cs.resolve_top_k(None, 20) == 4
    assert cs.resolve_top_k(None, 3) == 1
    assert cs.resolve_top_k(2, 20) == 2


# --- perfect, reversed, random ------------------------------------------------------------------


def test_perfect_and_reversed_forecasters():
    """signal = realised ranks perfectly every day (IC and Rank IC 1); its negative gives -1."""
    panel = random_panel(np.random.default_rng(11), 60, 8, missing=0.1)
    reversed_ = cs.score(dataclasses.replace(panel, signal=-panel.realised), top_k=2, cost_bps=0.0, lags=None)
    perfect = cs.score(dataclasses.replace(panel, signal=panel.realised), top_k=2, cost_bps=0.0, lags=None)
    np.testing.assert_allclose(perfect.daily["ic"], 1.0, atol=1e-12)
    np.testing.assert_allclose(perfect.daily["rank_ic"], 1.0, atol=1e-12)
    np.testing.assert_allclose(reversed_.daily["rank_ic"], -1.0, atol=1e-12)
    np.testing.assert_allclose(reversed_.daily["ic"], -1.0, atol=1e-12)
    assert perfect.figures["rank_ic"]["mean"] == pytest.approx(1.0) and perfect.figures["days"] == 60
    assert (perfect.daily["long_short_return"] > 0).all() and (reversed_.daily["long_short_return"] < 0).all()
    document = perfect.figures | {"hac_lags": 4}
    assert "undefined" in cs.verdict(document, "on test")  # the same IC every day: no t, and no crash


def rank_ic_p_value(panel: cs.Panel) -> float:
    return cs.mean_figures(cs.daily_ic(panel)[1], lags=None)["p_value"]


def test_size_of_the_rank_ic_test():
    """With no skill, the HAC test of the Rank IC mean rejects at 5 % in 3 % to 7 % of 500 panels."""
    rejected = [rank_ic_p_value(random_panel(np.random.default_rng(seed), 250, 20)) < 0.05 for seed in range(500)]
    assert 0.03 <= np.mean(rejected) <= 0.07


def test_power_of_the_rank_ic_test():
    """A weak real signal (correlation about 0.1 with the return) is found in most panels."""
    rejected = []
    for seed in range(100):
        rng = np.random.default_rng(10_000 + seed)
        panel = random_panel(rng, 250, 20)
        noisy = panel.realised + rng.normal(scale=0.2, size=panel.realised.shape)  # std 10x the return's
        rejected.append(rank_ic_p_value(dataclasses.replace(panel, signal=noisy)) < 0.05)
    assert np.mean(rejected) >= 0.9


# --- the daily table ----------------------------------------------------------------------------


def test_figures_from_daily_reproduce_score(tmp_path):
    """The daily table alone gives the summary, exactly, and to 1e-12 once written to CSV and read back."""
    panel = random_panel(np.random.default_rng(5), 120, 9, missing=0.15)
    signal = panel.signal.copy()
    signal[10] = 0.1  # a constant day: undefined IC
    signal[20, 1:] = np.nan  # a day with one forecast: not traded
    panel = dataclasses.replace(panel, signal=signal)
    scored = cs.score(panel, top_k=None, cost_bps=10.0, lags=None)
    assert list(scored.daily.columns) == list(cs.DAILY_COLUMNS)
    assert np.isnan(scored.daily.loc[10, "rank_ic"]) and np.isnan(scored.daily.loc[20, "long_short_return"])
    k = cs.resolve_top_k(None, 9)
    again = cs.figures_from_daily(scored.daily, k, 10.0, None)
    for block in ("ic", "rank_ic", "long_short"):
        assert again[block] == scored.figures[block]
    path = tmp_path / "cross_section.csv"
    scored.daily.to_csv(path, index=False)
    read = cs.figures_from_daily(pd.read_csv(path), k, 10.0, None)
    for block in ("ic", "rank_ic", "long_short"):
        assert read[block] == pytest.approx(scored.figures[block], rel=1e-12, abs=1e-15)


# --- baselines ----------------------------------------------------------------------------------


def test_baseline_signals_by_symbol_for_the_next_bar():
    """Reversal = -(last return), momentum = 20-day return, keyed by each symbol's own next date."""
    rng = np.random.default_rng(2)
    a_dates = pd.bdate_range("2024-01-01", periods=26)
    b_dates = pd.bdate_range("2024-01-01", periods=50)[::2][:23]  # another calendar: every other day
    c_dates = pd.bdate_range("2024-03-01", periods=4)  # too short for momentum
    bars = pd.concat([pd.DataFrame({"date": dates, "symbol": name, "close": 10 + rng.random(len(dates))})
                      for name, dates in (("A", a_dates), ("B", b_dates), ("C", c_dates))])
    signals = cs.baseline_signals(bars.sample(frac=1.0, random_state=0))  # row order does not matter
    expected = []
    for name, rows in bars.groupby("symbol"):
        close, dates = list(rows["close"]), list(rows["date"])
        for i in range(len(close) - 1):
            expected.append((dates[i + 1], name, -(close[i] / close[i - 1] - 1) if i >= 1 else NAN,
                             close[i] / close[i - 20] - 1 if i >= 20 else NAN))
    got = signals.sort_values(["symbol", "target_date"]).reset_index(drop=True)
    want = pd.DataFrame(expected, columns=["target_date", "symbol", "reversal", "momentum"])
    assert list(got["symbol"]) == list(want["symbol"])
    assert list(pd.to_datetime(got["target_date"])) == list(want["target_date"])
    np.testing.assert_allclose(got["reversal"], want["reversal"], rtol=1e-14)
    np.testing.assert_allclose(got["momentum"], want["momentum"], rtol=1e-14)
    assert got.loc[got["symbol"] == "C", "momentum"].isna().all()
    assert got.loc[got["symbol"] == "B", "momentum"].notna().sum() == 2  # bars 21 and 22 of 23
    assert got["target_date"].notna().all()


# --- the report ---------------------------------------------------------------------------------


def small_report_inputs(symbols: list[str], days: int = 40, seed: int = 0):
    """Bars for ``symbols`` (a random walk each), and the scored rows of the last ``days`` bars."""
    rng = np.random.default_rng(seed)
    calendar = pd.bdate_range("2024-01-01", periods=days + 25)
    bars = pd.concat([pd.DataFrame({"date": calendar, "symbol": name,
                                    "close": 10 * np.exp(np.cumsum(rng.normal(0, 0.02, len(calendar))))})
                      for name in symbols], ignore_index=True)
    rows = []
    for name, frame in bars.groupby("symbol"):
        close = frame["close"].to_numpy()
        for i in range(len(close) - days, len(close)):
            rows.append((calendar[i].strftime("%Y-%m-%d"), name, close[i - 1], close[i], close[i - 2]))
    table = pd.DataFrame(rows, columns=["date", "symbol", "last_close", "actual", "two_back"])
    forecast = table["last_close"] * (1 + rng.normal(0, 0.01, len(table)))
    return bars, table, forecast.to_numpy()


def test_report_end_to_end():
    """The document's keys, the baselines (reversal checked by hand), the zero note and the seeds."""
    bars, table, forecast = small_report_inputs(["A", "B", "C", "D", "E", "F"])
    members = np.stack([forecast * (1 + 0.001 * i) + 0.01 * i for i in range(3)])
    document, daily = cs.report(table["date"].to_numpy(), table["symbol"].to_numpy(),
                                table["last_close"].to_numpy(), table["actual"].to_numpy(), forecast, members,
                                bars, None, 10.0, None)
    figures = set(cs.MEAN_KEYS)
    portfolio = {"annual_return", "annual_volatility", "information_ratio", "max_drawdown", "turnover",
                 "cost_bps", "top_k"}
    assert set(document) == {"days", "symbols", "ic", "rank_ic", "long_short", "hac_lags", "baselines", "seeds"}
    assert set(document["ic"]) == set(document["rank_ic"]) == figures and set(document["long_short"]) == portfolio
    assert document["days"] == 40 and document["symbols"] == 6 and document["hac_lags"] == cs.default_lags(40)
    assert document["long_short"]["top_k"] == 1 and document["long_short"]["cost_bps"] == 10.0
    assert set(document["baselines"]) == {"reversal", "momentum", "zero"}
    for name in ("reversal", "momentum"):
        assert set(document["baselines"][name]["rank_ic"]) == figures
        assert set(document["baselines"][name]["long_short"]) == portfolio
    zero = document["baselines"]["zero"]
    assert zero["ic"] is None and zero["rank_ic"] is None and "undefined" in zero["note"]
    assert set(document["seeds"]) == {"count", "rank_ic_mean"} and document["seeds"]["count"] == 3
    assert set(document["seeds"]["rank_ic_mean"]) == {"mean", "std", "min", "max"}
    spread = document["seeds"]["rank_ic_mean"]
    assert spread["min"] <= spread["mean"] <= spread["max"] and spread["std"] >= 0
    assert list(daily.columns) == list(cs.DAILY_COLUMNS) and len(daily) == 40
    # the reversal baseline: minus the return into the last close, ranked against the next return
    by_day = [stats.spearmanr(-(g["last_close"] / g["two_back"]), g["actual"] / g["last_close"]).statistic
              for _, g in table.groupby("date")]
    assert document["baselines"]["reversal"]["rank_ic"]["mean"] == pytest.approx(np.mean(by_day), rel=1e-12)
    ic_by_day = [stats.pearsonr(g["forecast"] / g["last_close"] - 1, g["actual"] / g["last_close"] - 1).statistic
                 for _, g in table.assign(forecast=forecast).groupby("date")]
    assert document["ic"]["mean"] == pytest.approx(np.mean(ic_by_day), rel=1e-12)
    assert document["ic"]["std"] == pytest.approx(statistics.stdev(ic_by_day), rel=1e-10)


def test_report_on_one_symbol():
    """One symbol: a note, no figures, and a verdict that says there is nothing to rank."""
    bars, table, forecast = small_report_inputs(["A"])
    document, daily = cs.report(table["date"].to_numpy(), table["symbol"].to_numpy(),
                                table["last_close"].to_numpy(), table["actual"].to_numpy(), forecast, None,
                                bars, None, 10.0, None)
    assert "note" in document and document["symbols"] == 1 and document["days"] == 0
    assert all(value is None for value in document["rank_ic"].values())
    assert all(value is None for value in document["ic"].values())
    assert document["long_short"]["annual_return"] is None
    assert daily["rank_ic"].isna().all()
    assert "nothing to rank" in cs.verdict(document, "on test")
    assert not cs.ranking_skill(document)


def document_with(mean: float, p_value: float) -> dict:
    rank_ic = {"mean": mean, "std": 0.1, "ir": mean / 0.1, "t": 2.5 if mean > 0 else -2.5, "p_value": p_value}
    portfolio = {"annual_return": 0.12, "annual_volatility": 0.2, "information_ratio": 0.6, "max_drawdown": -0.1,
                 "turnover": 1.2, "cost_bps": 10.0, "top_k": 4}
    return {"days": 250, "symbols": 20, "ic": dict(rank_ic), "rank_ic": rank_ic, "long_short": portfolio}


def test_ranking_skill_and_verdict():
    """Skill only for a positive Rank IC mean with p < 0.05; claimed only when claims=True."""
    skilled = document_with(0.03, 0.01)
    assert cs.ranking_skill(skilled)
    assert cs.verdict(skilled, "on test").startswith("ranking verdict: skill on test")
    for document in (document_with(0.03, 0.2), document_with(-0.03, 0.01), document_with(0.03, 0.05)):
        assert not cs.ranking_skill(document)
        assert "no skill shown" in cs.verdict(document, "on test")
    for document in (skilled, document_with(0.03, 0.2)):
        said = cs.verdict(document, "on test", claims=False)
        assert "verdict: skill" not in said and "no skill" not in said and "walk-forward" in said
    undefined = document_with(0.03, 0.01) | {"rank_ic": {"mean": 0.03, "std": 0.0, "ir": None, "t": None,
                                                          "p_value": None}}
    assert not cs.ranking_skill(undefined) and "no skill shown" in cs.verdict(undefined, "on test")

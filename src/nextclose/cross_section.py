"""Scoring a ranking: how well one day's forecasts order the next day's returns across symbols.

On a panel, what a forecaster is worth to a user who trades many stocks is the order it puts
them in, not its error on price levels. The figures are the field's (Qlib's CSI 300
benchmarks): each day's information coefficient, the Pearson correlation across symbols of the
forecast return (forecast / last close - 1) with the realised one, and the Rank IC, the
Spearman correlation (Pearson on average ranks, so ties share a rank); their mean, standard
deviation and IR (mean / std); and a long-short portfolio long the top ``k`` and short the
bottom ``k`` symbols each day, equal weights, held one day, after costs.

The mean of the daily ICs is tested with a Newey-West (HAC) standard error: a signal that
persists makes neighbouring days' ICs move together, and a plain t-test would then claim too
much. Returns are annualised as Qlib does (mean x 252, std x sqrt(252), drawdown on the summed
returns).

Plain arrays in, plain values out: no files, no models.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import numpy as np
import pandas as pd
from scipy import stats

TRADING_DAYS = 252  # a year of daily returns, for the annualised figures
SKILL_P_VALUE = 0.05  # ranking skill is claimed only below this HAC p-value of the Rank IC mean
DAILY_COLUMNS = ("date", "ic", "rank_ic", "long_short_return", "turnover")  # reports/cross_section.csv
MEAN_KEYS = ("mean", "std", "ir", "t", "p_value")


@dataclasses.dataclass(frozen=True)
class Panel:
    """Signals and realised returns as a ``days x symbols`` grid; NaN where a symbol has no
    forecast or no return that day (not listed, not a member, not trading)."""

    dates: np.ndarray  # the days, ascending
    symbols: np.ndarray  # the columns, sorted (ties in a signal go to the earlier symbol)
    signal: np.ndarray  # [days, symbols]
    realised: np.ndarray  # [days, symbols]


def grid(dates: np.ndarray, symbols: np.ndarray, signal: np.ndarray, realised: np.ndarray) -> Panel:
    """One row per symbol-day in, the grid out; a repeated symbol-day is refused."""
    frame = pd.DataFrame({"date": dates, "symbol": symbols, "signal": signal, "realised": realised})
    repeated = frame.duplicated(["date", "symbol"])
    if repeated.any():
        row = frame.loc[repeated].iloc[0]
        raise ValueError(f"symbol {row['symbol']} has two forecasts for {row['date']}")
    wide = frame.pivot(index="date", columns="symbol").sort_index().sort_index(axis=1)
    return Panel(wide.index.to_numpy(), wide["signal"].columns.to_numpy(),
                 wide["signal"].to_numpy(dtype=np.float64), wide["realised"].to_numpy(dtype=np.float64))


def _row_correlation(x: np.ndarray, y: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Pearson's r of each row over the cells where ``both`` holds; NaN for a row with fewer than
    two such cells or with no spread in either (a constant signal ranks nothing)."""
    count = both.sum(axis=1)
    # compared, not summed: the deviations from a rounded mean of a constant row are not all zero
    varies = ((np.where(both, x, -np.inf).max(axis=1) > np.where(both, x, np.inf).min(axis=1))
              & (np.where(both, y, -np.inf).max(axis=1) > np.where(both, y, np.inf).min(axis=1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        x_mean = np.where(both, x, 0.0).sum(axis=1) / count
        y_mean = np.where(both, y, 0.0).sum(axis=1) / count
        dx = np.where(both, x - x_mean[:, None], 0.0)
        dy = np.where(both, y - y_mean[:, None], 0.0)
        spread = (dx * dx).sum(axis=1) * (dy * dy).sum(axis=1)
        r = (dx * dy).sum(axis=1) / np.sqrt(spread)
    return np.where((count >= 2) & varies & (spread > 0), np.clip(r, -1.0, 1.0), np.nan)


def daily_ic(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """Each day's IC and Rank IC over the symbols with both a signal and a return that day."""
    both = np.isfinite(panel.signal) & np.isfinite(panel.realised)
    signal, realised = np.where(both, panel.signal, np.nan), np.where(both, panel.realised, np.nan)
    ic = _row_correlation(signal, realised, both)
    rank_ic = _row_correlation(stats.rankdata(signal, axis=1, nan_policy="omit"),
                               stats.rankdata(realised, axis=1, nan_policy="omit"), both)
    return ic, rank_ic


def resolve_top_k(top_k: Optional[int], symbols: int) -> int:
    """``evaluate.top_k``, null: a fifth of the symbols, at least one."""
    return max(1, symbols // 5) if top_k is None else top_k


def sides(signal: np.ndarray, top_k: int) -> np.ndarray:
    """+1 for the ``top_k`` highest signals, -1 for the ``top_k`` lowest, 0 otherwise, among the
    finite ones; with fewer than ``2 * top_k`` of them, each side takes half (floor). One order
    for both sides, ties to the earlier position (long first, short last), so the choice is
    deterministic and the sides never share a symbol."""
    valid = np.flatnonzero(np.isfinite(signal))
    k = min(top_k, len(valid) // 2)
    side = np.zeros(len(signal), dtype=np.int64)
    if k == 0:
        return side
    ordered = valid[np.argsort(-signal[valid], kind="stable")]  # highest first, ties by position
    side[ordered[:k]] = 1
    side[ordered[-k:]] = -1  # disjoint from the long side: k <= len(valid) // 2
    return side


def long_short(panel: Panel, top_k: int, cost_bps: float) -> tuple[np.ndarray, np.ndarray]:
    """Each day's return after costs and turnover of the portfolio long the top ``top_k`` and
    short the bottom ``top_k`` by signal (weights +-1/k each side, rebalanced daily). Turnover is
    the sum of the absolute weight changes from the day before (the first day opens from cash,
    2.0), and costs ``cost_bps`` basis points per unit of it. Only symbols with a return that day
    are held."""
    tradable = np.where(np.isfinite(panel.realised), panel.signal, np.nan)
    weights = np.zeros_like(tradable)
    for day, row in enumerate(tradable):
        side = sides(row, top_k)
        held = max(int((side == 1).sum()), 1)
        weights[day] = side / held
    gross = np.where(weights != 0, weights * np.nan_to_num(panel.realised), 0.0).sum(axis=1)
    previous = np.vstack([np.zeros((1, weights.shape[1])), weights[:-1]])
    turnover = np.abs(weights - previous).sum(axis=1)
    return gross - turnover * cost_bps / 10_000.0, turnover


def newey_west_t(values: np.ndarray, lags: int) -> tuple[float, float]:
    """t-statistic of the mean of ``values`` with a Newey-West standard error (Bartlett weights
    over ``lags`` lags, no small-sample factor), and its two-sided p-value from the normal: what
    statsmodels' ``OLS(values, ones).fit(cov_type="HAC", cov_kwds={"maxlags": lags})`` reports for the constant."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    errors = values - values.mean()
    long_run = float(errors @ errors) / n
    for lag in range(1, min(lags, n - 1) + 1):
        long_run += 2.0 * (1.0 - lag / (lags + 1.0)) * float(errors[lag:] @ errors[:-lag]) / n
    variance = long_run / n
    if not variance > 0:
        return math.nan, math.nan
    t = float(values.mean() / math.sqrt(variance))
    return t, float(2.0 * stats.norm.sf(abs(t)))


def default_lags(days: int) -> int:
    """Newey and West's (1994) rule for the number of lags: floor(4 (days / 100)^(2/9))."""
    return int(math.floor(4.0 * (days / 100.0) ** (2.0 / 9.0)))


def mean_figures(daily: np.ndarray, lags: Optional[int]) -> dict[str, Any]:
    """``{mean, std, ir, t, p_value}`` of the defined days of a daily series (std with n - 1; IR
    = mean / std, not annualised, as Qlib's ICIR); None throughout when fewer than two days."""
    values = daily[np.isfinite(daily)]
    if len(values) < 2:
        return dict.fromkeys(MEAN_KEYS)
    mean, std = float(values.mean()), float(values.std(ddof=1))
    t, p_value = newey_west_t(values, default_lags(len(values)) if lags is None else lags)
    return {"mean": mean, "std": std, "ir": mean / std if std > 0 else None,
            "t": _number(t), "p_value": _number(p_value)}


def portfolio_figures(returns: np.ndarray, turnover: np.ndarray, top_k: int, cost_bps: float) -> dict[str, Any]:
    """The long-short figures of daily returns after costs, annualised as Qlib's
    ``risk_analysis`` (sum mode): return = mean x 252, volatility = std x sqrt(252), information
    ratio = their quotient, maximum drawdown of the running sum of returns (a negative number)."""
    figures: dict[str, Any] = {"annual_return": None, "annual_volatility": None, "information_ratio": None,
                               "max_drawdown": None, "turnover": None, "cost_bps": cost_bps, "top_k": top_k}
    if len(returns) < 2:
        return figures
    mean, std = float(returns.mean()), float(returns.std(ddof=1))
    wealth = np.cumsum(returns)
    figures.update({
        "annual_return": mean * TRADING_DAYS,
        "annual_volatility": std * math.sqrt(TRADING_DAYS),
        "information_ratio": mean / std * math.sqrt(TRADING_DAYS) if std > 0 else None,
        "max_drawdown": float(np.min(wealth - np.maximum.accumulate(wealth))),
        "turnover": float(turnover.mean()),
    })
    return figures


def _number(value: float) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclasses.dataclass(frozen=True)
class Scored:
    """One signal scored: the daily table (``DAILY_COLUMNS``) and the summary figures."""

    daily: pd.DataFrame
    figures: dict[str, Any]  # {days, symbols, ic, rank_ic, long_short}


def score(panel: Panel, top_k: Optional[int], cost_bps: float, lags: Optional[int]) -> Scored:
    """Every figure of one signal on one panel."""
    k = resolve_top_k(top_k, len(panel.symbols))
    ic, rank_ic = daily_ic(panel)
    returns, turnover = long_short(panel, k, cost_bps)
    traded = np.array([np.isfinite(row).sum() >= 2 for row in np.where(np.isfinite(panel.realised),
                                                                      panel.signal, np.nan)], dtype=bool)
    daily = pd.DataFrame({
        "date": pd.to_datetime(panel.dates).strftime("%Y-%m-%d"), "ic": ic, "rank_ic": rank_ic,
        "long_short_return": np.where(traded, returns, np.nan), "turnover": np.where(traded, turnover, np.nan),
    })
    return Scored(daily, {
        "days": int(np.isfinite(rank_ic).sum()),
        "symbols": int(len(panel.symbols)),
        "ic": mean_figures(ic, lags),
        "rank_ic": mean_figures(rank_ic, lags),
        "long_short": portfolio_figures(returns[traded], turnover[traded], k, cost_bps),
    })


def figures_from_daily(daily: pd.DataFrame, top_k: int, cost_bps: float, lags: Optional[int]) -> dict[str, Any]:
    """The summary of :func:`score` recomputed from its daily table alone (what a reader of
    ``reports/cross_section.csv`` can check)."""
    traded = daily["long_short_return"].notna().to_numpy()
    return {
        "ic": mean_figures(daily["ic"].to_numpy(dtype=np.float64), lags),
        "rank_ic": mean_figures(daily["rank_ic"].to_numpy(dtype=np.float64), lags),
        "long_short": portfolio_figures(daily["long_short_return"].to_numpy(dtype=np.float64)[traded],
                                        daily["turnover"].to_numpy(dtype=np.float64)[traded], top_k, cost_bps),
    }


def baseline_signals(bars: pd.DataFrame, momentum_days: int = 20) -> pd.DataFrame:
    """The simple signals each symbol's closes give for its next bar: ``target_date, symbol,
    reversal`` (minus the last day's return) and ``momentum`` (the return over the last
    ``momentum_days`` days); NaN where the history is too short."""
    parts = []
    for symbol, rows in bars.sort_values("date").groupby("symbol", sort=True):
        close = rows["close"].to_numpy(dtype=np.float64)
        dates = rows["date"].to_numpy()
        previous = np.concatenate([[np.nan], close[:-1]])
        lagged = np.concatenate([np.full(min(momentum_days, len(close)), np.nan), close[:-momentum_days]])
        parts.append(pd.DataFrame({
            # the signal known at a bar's close is for the next bar's date
            "target_date": np.concatenate([dates[1:], [np.datetime64("NaT")]]).astype("datetime64[ns]"),
            "symbol": str(symbol), "reversal": -(close / previous - 1.0), "momentum": close / lagged - 1.0,
        }))
    return pd.concat(parts, ignore_index=True).dropna(subset=["target_date"])


UNDEFINED_ZERO = ("a zero forecast (persistence) gives every symbol the same return, so it ranks nothing: "
                  "its IC is undefined")


def report(
    dates: np.ndarray, symbols: np.ndarray, last_close: np.ndarray, actual: np.ndarray, forecast: np.ndarray,
    members: Optional[np.ndarray], bars: Optional[pd.DataFrame], top_k: Optional[int], cost_bps: float,
    lags: Optional[int],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``reports/cross_section.json`` (or backtest.json's ``cross_section``) and the daily table,
    from one row per scored symbol-day: the model's figures, the baselines' (when ``bars``
    gives the closes behind them) and each member's Rank IC mean (when ``members``, ``[k, n]``)."""
    dates = pd.to_datetime(dates).to_numpy()
    symbols = np.asarray(symbols).astype(str)
    realised = actual / last_close - 1.0
    scored = score(grid(dates, symbols, forecast / last_close - 1.0, realised), top_k, cost_bps, lags)
    document: dict[str, Any] = scored.figures | {
        "hac_lags": default_lags(scored.figures["days"]) if lags is None else lags,
    }
    if scored.figures["symbols"] < 2:
        document["note"] = "one symbol: there is no cross-section to rank, so these figures are undefined"
    baselines: dict[str, Any] = {}
    signals = pd.DataFrame({"target_date": dates, "symbol": symbols})
    if bars is not None and scored.figures["symbols"] >= 2:
        signals = signals.merge(baseline_signals(bars), on=["target_date", "symbol"], how="left")
    for name in ("reversal", "momentum"):  # one symbol, or no bars: undefined as the model's
        signal = signals[name].to_numpy(dtype=np.float64) if name in signals else np.full(len(dates), np.nan)
        baselines[name] = score(grid(dates, symbols, signal, realised), top_k, cost_bps, lags).figures
    baselines["zero"] = {"ic": None, "rank_ic": None, "long_short": None, "note": UNDEFINED_ZERO}
    document["baselines"] = baselines
    document["seeds"] = {"count": 0, "rank_ic_mean": None}
    if members is not None and len(members):
        means = [score(grid(dates, symbols, values / last_close - 1.0, realised), top_k, cost_bps, lags)
                 .figures["rank_ic"]["mean"] for values in members]
        defined = [value for value in means if value is not None]
        document["seeds"] = {"count": len(means), "rank_ic_mean": (
            {"mean": float(np.mean(defined)), "std": float(np.std(defined)),
             "min": float(np.min(defined)), "max": float(np.max(defined))} if defined else None)}
    # only the days that scored something (a single series: none)
    daily = scored.daily.dropna(how="all", subset=["ic", "rank_ic", "long_short_return"])
    return document, daily.reindex(columns=DAILY_COLUMNS).reset_index(drop=True)


def ranking_skill(document: dict[str, Any]) -> bool:
    """Ranking skill: a positive Rank IC mean whose HAC p-value is below 0.05."""
    rank_ic = document.get("rank_ic") or {}
    return (rank_ic.get("p_value") is not None and rank_ic["p_value"] < SKILL_P_VALUE
            and rank_ic["mean"] > 0)


def _shown(value: Optional[float], spec: str) -> str:
    """A figure in ``spec``, or "undefined" for None (a t with no spread: the same IC every day)."""
    return "undefined" if value is None else format(value, spec)


def verdict(document: dict[str, Any], period: str, claims: bool = True) -> str:
    """Plain words on ranking skill. ``claims`` is False for the single split: there the figures
    are reported and the claim is left to the walk-forward backtest."""
    if document.get("symbols", 0) < 2 or document["rank_ic"]["mean"] is None:
        return "ranking: one symbol (or fewer than two scored days), nothing to rank"
    rank_ic, portfolio = document["rank_ic"], document["long_short"]
    evidence = (f"Rank IC {rank_ic['mean']:+.4f} ± {rank_ic['std']:.4f} a day (ICIR {rank_ic['ir'] or 0:+.3f}, "
                f"HAC t {_shown(rank_ic['t'], '+.2f')}, p = {_shown(rank_ic['p_value'], '.3f')}) "
                f"over {document['days']} days and {document['symbols']} symbols")
    after_costs = ""
    if portfolio.get("annual_return") is not None:
        after_costs = (f"; long-short top/bottom {portfolio['top_k']} after {portfolio['cost_bps']:g} bps: "
                       f"{portfolio['annual_return']:+.1%} a year, "
                       f"IR {_shown(portfolio['information_ratio'], '+.2f')}, "
                       f"max drawdown {portfolio['max_drawdown']:.1%}")
    if not claims:
        return f"ranking {period}: {evidence}{after_costs} (the verdict is the walk-forward backtest's)"
    if ranking_skill(document):
        return f"ranking verdict: skill {period}: {evidence}{after_costs}."
    return f"ranking verdict: no skill shown {period}: {evidence}{after_costs}."


def from_predictions(
    predictions: pd.DataFrame, members: Optional[np.ndarray], bars: Optional[pd.DataFrame],
    top_k: Optional[int], cost_bps: float, lags: Optional[int],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """:func:`report` from a table with ``date, symbol, actual, model, persistence`` (persistence
    is the last close): ``reports/panel_predictions.csv``, or the backtest's table (relative
    prices: a last close of 1 ranks the same)."""
    return report(predictions["date"].to_numpy(), predictions["symbol"].to_numpy(),
                  predictions["persistence"].to_numpy(dtype=np.float64),
                  predictions["actual"].to_numpy(dtype=np.float64),
                  predictions["model"].to_numpy(dtype=np.float64), members,
                  None if bars is None else bars.assign(date=pd.to_datetime(bars["date"])),
                  top_k, cost_bps, lags)


def headline(document: dict[str, Any]) -> dict[str, float]:
    """The few figures DVC and MLflow headline: the Rank IC mean and its p-value, and the
    long-short return after costs; none for one symbol."""
    if document.get("symbols", 0) < 2 or document.get("rank_ic", {}).get("mean") is None:
        return {}
    figures = {"rank_ic": document["rank_ic"]["mean"], "rank_ic_p_value": document["rank_ic"]["p_value"],
               "long_short_annual_return": document["long_short"]["annual_return"]}
    return {key: float(value) for key, value in figures.items() if value is not None}


def tracked_metrics(document: dict[str, Any], prefix: str = "cross_section/") -> dict[str, float]:
    """The summary flattened for MLflow (``cross_section/rank_ic_mean``,
    ``cross_section/long_short_information_ratio``, ``cross_section/momentum_rank_ic_mean``, ...):
    the numbers only, none for one symbol."""
    if document.get("symbols", 0) < 2:
        return {}

    def flat(figures: dict[str, Any], name: str) -> dict[str, float]:
        return {f"{prefix}{name}{block}_{key}": float(value)
                for block in ("ic", "rank_ic", "long_short") for key, value in (figures.get(block) or {}).items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)}

    numbers = flat(document, "")
    for name, figures in document.get("baselines", {}).items():
        numbers |= flat(figures, f"{name}_")
    spread = (document.get("seeds") or {}).get("rank_ic_mean") or {}
    numbers |= {f"{prefix}members_rank_ic_mean_{key}": float(value) for key, value in spread.items()}
    return numbers


def summary_table(document: dict[str, Any]) -> str:
    """The model and the baselines' ranking figures side by side, for the terminal."""
    lines = [f"ranking over {document['symbols']} symbols and {document['days']} days "
             f"(long-short top/bottom {document['long_short']['top_k']}, {document['long_short']['cost_bps']:g} bps "
             f"per unit of turnover)",
             f"{'signal':<12}{'IC':>9}{'Rank IC':>9}{'ICIR':>8}{'HAC p':>8}{'ann. ret':>10}{'IR':>7}{'max DD':>9}"]

    def row(name: str, figures: dict[str, Any]) -> str:
        rank_ic, portfolio = figures["rank_ic"], figures["long_short"]
        if rank_ic is None or rank_ic["mean"] is None:
            return f"{name:<12}{'undefined':>9}"

        def number(value: Optional[float], spec: str) -> str:
            return "-" if value is None else format(value, spec)

        return (f"{name:<12}{number(figures['ic']['mean'], '+.4f'):>9}{number(rank_ic['mean'], '+.4f'):>9}"
                f"{number(rank_ic['ir'], '+.3f'):>8}{number(rank_ic['p_value'], '.3f'):>8}"
                f"{number(portfolio['annual_return'], '+.1%'):>10}{number(portfolio['information_ratio'], '+.2f'):>7}"
                f"{number(portfolio['max_drawdown'], '.1%'):>9}")

    lines.append(row("model", document))
    lines += [row(name, figures) for name, figures in document.get("baselines", {}).items() if name != "zero"]
    lines.append(f"{'zero':<12}{'undefined':>9}  (persistence: every symbol the same forecast return)")
    return "\n".join(lines)

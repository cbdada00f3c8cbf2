"""``nextclose predict``: the next trading day's close, from the latest bars of the data source.

The bars come from ``data`` in params (a network source is fetched again; ``--csv`` reads a
file instead) and are checked with prepare's rules; the model is ``--model URI``, else the
registry's ``models:/nextclose-lstm@champion``, else the workspace's ``models/`` (saying so).
Registered models are the bars forecasters of :mod:`nextclose.served`; the workspace's model
runs the same code (:mod:`nextclose.forecaster`) in this process.

On a panel, each symbol's row also carries its forecast return, its rank and the side the
long-short portfolio of ``evaluate.top_k`` would take (:func:`ranked`); the served model's
answer stays the forecasts alone.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from nextclose import atomic, bars, cross_section, forecaster, layout, registry
from nextclose.errors import DataError, UserError
from nextclose.params import PANEL_SOURCES, Params

CHAMPION_URI = f"models:/{registry.registered_name('lstm')}@champion"
WORKSPACE_MODEL = "models/"

# bars, their source's name, coverage, every_day -> forecaster.OUTPUT_COLUMNS
Forecast = Callable[[pd.DataFrame, str, float, bool], pd.DataFrame]
SIDE_NAMES = {1: "long", -1: "short", 0: ""}  # cross_section.sides' +1 / -1 / 0


class NotAForecaster(UserError):
    """The model given cannot forecast from bars (the tutorial kind, or not a nextclose model)."""


def read_latest_bars(params: Params, csv_path: Optional[str]) -> tuple[pd.DataFrame, str]:
    """Every bar of the source, checked like prepare checks them, and the source's name.

    ``data.end`` is not applied: the forecast starts from the latest bar (``--as-of`` cuts the
    history instead); ``data.start`` only bounds what a network source fetches."""
    data = params.data
    if data.source in PANEL_SOURCES:  # every symbol's bars: the model answers one row per symbol
        from nextclose import panels

        if csv_path is not None or data.source == "panel_csv":
            path = csv_path or data.path
            assert path is not None  # the params check guarantees it
            return panels.read_panel_csv(path, data.columns), path
        if data.source == "sp500":
            return panels.load_sp500(), "skfolio.datasets.load_sp500_dataset"
        raise UserError(f"params.yaml: data.source {data.source}: nextclose predict reads a panel from "
                        f"data/prepared's source only for sp500 and panel_csv; pass the bars with --csv")
    if csv_path is not None:
        table, source = bars.read_csv_bars(csv_path, data.columns), csv_path
    elif data.source == "msft":
        table, source = bars.load_msft(), "pmdarima.datasets.load_msft"
    elif data.source == "csv":
        assert data.path is not None  # the params check guarantees it
        table, source = bars.read_csv_bars(data.path, data.columns), data.path
    else:
        from nextclose import sources

        table = sources.fetch(data.source, data.symbol, data.start_date, None)
        source = f"{data.source}:{sources.library_symbol(data.source, data.symbol)}"
    bars.validate_bars(table, source)
    return table, source


def cut_at(table: pd.DataFrame, as_of: Optional[str], source: str) -> pd.DataFrame:
    """The bars up to and including ``as_of`` (an ISO date), or all of them."""
    if as_of is None:
        return table
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise DataError(f"--as-of: {as_of!r} is not an ISO date (YYYY-MM-DD)") from None
    return bars.select_dates(table, None, day, source, hint="--as-of is before the first bar")


def _registered_forecast(uri: str) -> Forecast:
    from nextclose import served, tracking

    mlflow = tracking.mlflow_api()

    try:
        info = mlflow.models.get_model_info(uri)
    except mlflow.exceptions.MlflowException as error:
        raise UserError(f"--model {uri}: cannot be read: {error.message}") from None
    if not served.takes_bars(info.signature):
        schema = None if info.signature is None else info.signature.inputs
        takes = "no signature" if schema is None else "a tensor" if schema.is_tensor_spec() else (
            f"columns {', '.join(schema.input_names())}")
        raise NotAForecaster(
            f"{uri} does not take bars (it takes {takes}): a model of the tutorial kind has no held-out "
            f"forecast to serve, and only lstm models trained by this version of nextclose take bars")
    inputs = info.signature.inputs.input_names()
    model = mlflow.pyfunc.load_model(uri)

    def forecast(table: pd.DataFrame, source: str, coverage: float, every_day: bool) -> pd.DataFrame:
        missing = [name for name in inputs if name not in table.columns]
        if missing:
            raise DataError(f"{source}: no {', '.join(missing)} column, which {uri} reads")
        sent = table[inputs].assign(date=table["date"].dt.strftime("%Y-%m-%d"))
        try:
            return model.predict(sent, params={"interval": coverage, "every_day": every_day})
        except DataError as error:  # the model names the bars it was sent; the user knows them by source
            raise DataError(str(error).replace(served.SENT_BARS, source, 1)) from None

    return forecast


def _workspace_forecast() -> Forecast:
    from nextclose import served

    kind = layout.read_train_summary()["kind"]
    if kind != "lstm":
        raise NotAForecaster(f"{layout.MODELS_DIR}: a model of the {kind} kind, which has no held-out forecast "
                             f"to serve; train an lstm (model.kind: lstm)")
    network, calibration = served.load_forecaster(
        layout.model_file(), layout.read_calibration(), str(layout.MODELS_DIR / layout.CALIBRATION_FILE))

    def forecast(table: pd.DataFrame, source: str, coverage: float, every_day: bool) -> pd.DataFrame:
        checked = forecaster.read_bars(table, calibration, source)
        return forecaster.forecast_table(network, checked, calibration, coverage, every_day)

    return forecast


def resolve_model(model_uri: Optional[str], panel: bool = False) -> tuple[str, Optional[str], Forecast]:
    """The model to use: its URI (a registry version pinned), its registered version, and its forecast."""
    from nextclose import tracking

    mlflow = tracking.mlflow_api()

    with tracking.store_lock():
        client = tracking.open_client()
    if model_uri is not None:
        return model_uri, _registered_version(client, model_uri), _registered_forecast(model_uri)
    name = registry.registered_name("lstm", panel)
    champion_uri = f"models:/{name}@champion"
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        print(f"note: no {champion_uri} in {tracking.tracking_uri()} (run nextclose champion"
              f"{' --panel' if panel else ''}); "
              f"using the workspace's {WORKSPACE_MODEL}", file=sys.stderr)
        return WORKSPACE_MODEL, None, _workspace_forecast()
    pinned = f"models:/{name}/{version.version}"
    return pinned, str(version.version), _registered_forecast(pinned)


def _registered_version(client: Any, uri: str) -> Optional[str]:
    """The version a ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` URI names."""
    from nextclose import tracking

    mlflow = tracking.mlflow_api()

    if not uri.startswith("models:/"):
        return None
    name, _, rest = uri[len("models:/"):].partition("@")
    if rest:
        try:
            return str(client.get_model_version_by_alias(name, rest).version)
        except mlflow.exceptions.MlflowException:
            return None  # reading the model says what is wrong
    _, _, version = name.partition("/")
    return version if version.isdigit() else None


def _number(value: Any) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def main(params: Params, model_uri: Optional[str], csv_path: Optional[str], as_of: Optional[str],
         as_json: bool, every_day: bool, output: Optional[str]) -> None:
    full, source = read_latest_bars(params, csv_path)
    table = cut_at(full, as_of, source)
    uri, version, forecast = resolve_model(model_uri, params.data.source in PANEL_SOURCES)
    coverage = params.evaluate.interval
    answer = forecast(table, source, coverage, every_day)
    if every_day:  # batch: one forecast per day, as a CSV file (or on stdout)
        text = answer.to_csv(index=False, float_format="%.10g")
        if output is None:
            sys.stdout.write(text)
        else:
            atomic.write_text(output, text)
            print(f"wrote {len(answer)} forecasts ({answer['date'].iloc[0]} .. {answer['date'].iloc[-1]}) "
                  f"by {uri} to {output}", file=sys.stderr)
        return
    if "symbol" in answer.columns:
        _print_panel(ranked(answer, params.evaluate.top_k), full, table, uri, version, coverage, source, as_json)
        return
    row = answer.iloc[-1].copy()
    actual = None
    if len(table) < len(full):  # --as-of looked back: the next bar is known, holidays and all
        following = full.iloc[len(table)]
        row["date"], actual = following["date"].strftime("%Y-%m-%d"), float(following["close"])
    if as_json:
        # the first six keys are what users' scripts read; the rest say where the figure came from
        print(json.dumps({
            "date": row["date"], **{key: _number(row[key]) for key in ("last_close", "forecast", "lower", "upper")},
            "model_uri": uri, "last_date": row["last_date"], "model_version": version, "interval": coverage,
            "actual": actual,
        }))
        return
    print(f"model: {uri}" + (f" (version {version}, {CHAMPION_URI})" if version and model_uri is None else ""))
    print(f"bars: {source}, last bar {row['last_date']}: close {row['last_close']:.4f}")
    print(f"forecast for {row['date']}: close {row['forecast']:.4f}, {coverage:.0%} interval "
          f"{row['lower']:.4f} .. {row['upper']:.4f}")
    if actual is not None:
        inside = row["lower"] <= actual <= row["upper"]
        print(f"actual close that day: {actual:.4f} ({'inside' if inside else 'outside'} the interval)")


def ranked(answer: pd.DataFrame, top_k: Optional[int]) -> pd.DataFrame:
    """A panel's forecasts (one row per symbol) with ``forecast_return`` (forecast / last close
    - 1), ``rank`` (1 = the highest return) and ``side``: "long" for the top k, "short" for the
    bottom k, "" otherwise, as the long-short portfolio evaluate and backtest score picks them
    (:func:`nextclose.cross_section.sides`, k from ``evaluate.top_k`` and the number of symbols).

    Symbols are ordered as the scoring orders them (by name), so ties fall alike. Only the rows
    for the latest day are ranked: a symbol whose bars end earlier is not traded tomorrow, and
    gets no rank (NA) and no side. The rows come back in symbol order."""
    frame = answer.sort_values("symbol", kind="stable").reset_index(drop=True)
    returns = frame["forecast"].to_numpy(dtype=float) / frame["last_close"].to_numpy(dtype=float) - 1.0
    current = (frame["last_date"] == frame["last_date"].max()).to_numpy()
    signal = np.where(current, returns, np.nan)
    side = cross_section.sides(signal, cross_section.resolve_top_k(top_k, len(frame)))
    valid = np.flatnonzero(np.isfinite(signal))
    rank = pd.array([pd.NA] * len(frame), dtype="Int64")
    # the order sides() uses: highest first, ties to the earlier symbol
    rank[valid[np.argsort(-signal[valid], kind="stable")]] = np.arange(1, len(valid) + 1)
    return frame.assign(forecast_return=returns, rank=rank, side=[SIDE_NAMES[int(value)] for value in side])


def _print_panel(answer: pd.DataFrame, full: pd.DataFrame, table: pd.DataFrame, uri: str, version: Optional[str],
                 coverage: float, source: str, as_json: bool) -> None:
    """A panel's forecasts, :func:`ranked`: one row per symbol, by rank (with --as-of, each
    symbol's next close beside it); as JSON, in symbol order."""
    actual: dict[str, Optional[float]] = {}
    for symbol, rows in full.groupby("symbol"):
        later = rows.loc[rows["date"] > table.loc[table["symbol"] == symbol, "date"].max()]
        actual[str(symbol)] = float(later["close"].iloc[0]) if len(table) < len(full) and len(later) else None
    if as_json:
        print(json.dumps([
            {"symbol": row["symbol"], "date": row["date"],
             **{key: _number(row[key]) for key in ("last_close", "forecast", "lower", "upper", "forecast_return")},
             "rank": None if pd.isna(row["rank"]) else int(row["rank"]), "side": row["side"] or None,
             "model_uri": uri, "last_date": row["last_date"], "model_version": version, "interval": coverage,
             "actual": actual.get(row["symbol"])}
            for _, row in answer.iterrows()
        ]))
        return
    longs, shorts = int((answer["side"] == "long").sum()), int((answer["side"] == "short").sum())
    latest = answer["last_date"].max()
    print(f"model: {uri}" + (f" (version {version})" if version else ""))
    print(f"bars: {source}, {len(answer)} symbols; {coverage:.0%} intervals")
    print(f"ranked by forecast return (forecast / close - 1): long the top {longs} and short the bottom {shorts} "
          f"of {int(answer['rank'].notna().sum())}, equal weights, held one day (evaluate.top_k)")
    print("side: what the long-short portfolio evaluate and backtest score would hold, not advice")
    stale = answer.loc[answer["last_date"] < latest, "symbol"].tolist()
    if stale:
        print(f"not ranked (last bar before {latest}): {', '.join(stale)}")
    print(f"{'symbol':<10}{'last bar':>12}{'close':>12}{'for':>12}{'forecast':>12}{'return':>10}{'rank':>6}"
          f"{'side':>7}{'lower':>12}{'upper':>12}"
          + (f"{'actual':>12}" if any(v is not None for v in actual.values()) else ""))
    for _, row in answer.sort_values("rank", kind="stable", na_position="last").iterrows():
        known = actual.get(row["symbol"])
        rank = "" if pd.isna(row["rank"]) else str(row["rank"])
        print(f"{row['symbol']:<10}{row['last_date']:>12}{row['last_close']:>12.4f}{row['date']:>12}"
              f"{row['forecast']:>12.4f}{row['forecast_return']:>+10.2%}{rank:>6}{row['side']:>7}"
              f"{row['lower']:>12.4f}{row['upper']:>12.4f}"
              + (f"{known:>12.4f}" if known is not None else ""))

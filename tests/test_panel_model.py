"""One global model across a panel of symbols: the windows, the split by date, the per-symbol
scaling, the pooled and per-symbol figures, and the leakage test across symbols."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextclose import backtest, features, forecaster, panel_evaluation, preparation, significance, training
from nextclose.cli import main
from nextclose.params import parse_params

from helpers import ConstantNetwork, lstm_splits, random_walk_bars, tiny_params, write_params

SYMBOLS = ("AAA", "BBB", "CCC")


def panel_bars(n: int = 180, symbols=SYMBOLS, gaps: bool = True) -> pd.DataFrame:
    """A long panel of random walks of different price levels and volatilities; with ``gaps``,
    BBB starts 7 days late and misses every 13th day (its own calendar)."""
    parts = []
    for number, symbol in enumerate(symbols):
        bars = random_walk_bars(n, seed=10 + number)
        for column in ("open", "high", "low", "close"):
            bars[column] *= 10.0 ** number  # 100, 1000, 10000: pooled price errors would mean nothing
        if gaps and symbol == "BBB":
            bars = bars.iloc[7:]
            bars = bars[np.arange(len(bars)) % 13 != 5]
        parts.append(bars.assign(symbol=symbol))
    return pd.concat(parts).sort_values(["symbol", "date"]).reset_index(drop=True)[
        ["date", "symbol", "open", "high", "low", "close", "volume"]]


def panel_params(**overrides):
    return parse_params(tiny_params(data={"source": "panel_csv", "path": "panel.csv", "start": None, "end": None},
                                    **overrides))


def prepare(bars: pd.DataFrame, params=None) -> preparation.Prepared:
    params = params or panel_params()
    return preparation.prepare(bars, "panel.csv", params.data, params.split, params.features)


# --- windows and the split -------------------------------------------------------------------

def test_each_symbols_windows_are_its_own_and_ordered_by_date_then_symbol():
    bars = panel_bars()
    params = panel_params().features
    windows = features.make_panel_windows(bars, params)
    order = np.lexsort((windows.symbols, windows.target_dates))
    assert np.array_equal(order, np.arange(len(order)))
    for symbol in SYMBOLS:
        own = features.make_windows(bars[bars["symbol"] == symbol].reset_index(drop=True), params)
        mine = windows.symbols == symbol
        np.testing.assert_array_equal(windows.inputs[mine], own.inputs)
        np.testing.assert_array_equal(windows.target_dates[mine], own.target_dates)
        np.testing.assert_array_equal(windows.last_close[mine], own.last_close)
    # BBB's gaps: its windows run over its own trading days, so a target may be days after its last close
    assert len(windows.targets) == sum(len(bars[bars["symbol"] == s]) - params.window for s in SYMBOLS)


def test_the_split_is_by_date_for_every_symbol_at_once():
    prepared = prepare(panel_bars())
    train, validation, test = (prepared.splits[name] for name in features.SPLITS)
    assert train.target_dates.max() < validation.target_dates.min()
    assert validation.target_dates.max() < test.target_dates.min()
    for part in (train, validation, test):
        assert set(part.symbols) == set(SYMBOLS)
    labels = prepared.bars.groupby("split")["date"].agg(["min", "max"])
    assert labels.loc["train", "max"] < labels.loc["validation", "min"]
    # The fractions are of the days, not the samples: the test split holds the last 15% of days.
    days = np.unique(np.concatenate([p.target_dates for p in prepared.splits.values()]))
    assert len(np.unique(test.target_dates)) == round(len(days) * 0.15)


def test_each_symbol_is_scaled_by_its_own_training_windows():
    prepared = prepare(panel_bars())
    names = features.feature_names(True)
    assert prepared.normalisation == features.identity_normalisation(names)
    assert prepared.panel_normalisation is not None
    train = prepared.splits["train"]
    assert isinstance(train, features.PanelWindows)
    for symbol in SYMBOLS:
        own = features.fit_normalisation(features.select(train, train.symbols == symbol), names)
        assert prepared.panel_normalisation[symbol] == own
    scaled = features.normalise_panel(train, prepared.panel_normalisation)
    for symbol in SYMBOLS:  # each symbol's training targets have a root mean square of 1 once scaled
        mine = scaled.targets[scaled.symbols == symbol].astype(np.float64)
        assert math.sqrt(np.mean(np.square(mine))) == pytest.approx(1.0, rel=1e-5)
        assert np.abs(scaled.inputs[scaled.symbols == symbol].mean(axis=(0, 1))).max() < 1e-4
    # Prices stay prices: the scaling touches inputs and targets only.
    np.testing.assert_array_equal(scaled.next_close, train.next_close)


def test_a_symbol_listed_after_the_training_period_is_scaled_by_the_panels_median():
    bars = panel_bars(gaps=False)
    late = bars[(bars["symbol"] != "CCC") | (bars["date"] > bars["date"].iloc[150])].reset_index(drop=True)
    prepared = prepare(late)
    per_symbol = prepared.panel_normalisation
    assert per_symbol is not None and prepared.median_scaled == ("CCC",)
    assert "CCC" not in set(prepared.splits["train"].symbols) and "CCC" in set(prepared.splits["test"].symbols)
    others = (per_symbol["AAA"], per_symbol["BBB"])
    assert per_symbol["CCC"].target_scale == pytest.approx(np.median([n.target_scale for n in others]))
    np.testing.assert_allclose(per_symbol["CCC"].std, np.median([n.std for n in others], axis=0))
    assert prepared.summary()["panel"]["scaled_by_panel_median"] == ["CCC"]
    # the others' statistics are their own, as without the late stock
    alone = prepare(late[late["symbol"] != "CCC"].reset_index(drop=True)).panel_normalisation
    assert alone is not None and {s: per_symbol[s] for s in ("AAA", "BBB")} == alone


def test_a_late_listed_symbol_is_evaluated_and_walked_forward_with_the_median_drift():
    bars = panel_bars(gaps=False)
    listed = bars["date"].iloc[165]  # CCC lists inside the test period (and the backtest's first fold)
    bars = bars[(bars["symbol"] != "CCC") | (bars["date"] >= listed)].reset_index(drop=True)
    params = panel_params()
    prepared = prepare(bars.reset_index(drop=True), params)
    summary = prepared.summary()
    assert (summary["first_date"], summary["last_date"]) == (
        f"{bars['date'].min():%Y-%m-%d}", f"{bars['date'].max():%Y-%m-%d}")
    per_symbol = prepared.panel_normalisation
    assert per_symbol is not None
    validation, test = prepared.splits["validation"], prepared.splits["test"]
    assert isinstance(validation, features.PanelWindows) and isinstance(test, features.PanelWindows)
    assert "CCC" in set(test.symbols)
    text_bars = prepared.bars.assign(date=prepared.bars["date"].dt.strftime("%Y-%m-%d"))
    result = panel_evaluation.evaluate_panel(ConstantNetwork([0.1, 0.2]), text_bars, validation, test, per_symbol,
                                             params.evaluate, 42)
    assert result.fitted["drift_median_for"] == "CCC"
    assert set(result.report["panel"]["per_symbol"]) == set(SYMBOLS)
    # the walk-forward: CCC's first forecast in fold 1 starts from its own last close, not the fold's first day
    samples = backtest.all_samples(prepared.splits)
    days, validation_days = backtest.resolve_lengths(params.backtest, prepared.splits)
    for fold in backtest.plan_panel_folds(samples.target_dates, days, 2, validation_days):
        walked = backtest.forecast_panel_fold(fold, samples, text_bars, prepared.normalisation.feature_names,  # type: ignore[arg-type]
                                              lambda *_: ConstantNetwork([0.1, 0.2]), params.evaluate)
        assert set(walked.samples.symbols) <= set(SYMBOLS)


@pytest.mark.slow  # four trainings, each compiled
def test_only_a_panel_takes_its_forward_passes_in_slices(monkeypatch):
    params = panel_params()
    single, normalisation = lstm_splits(random_walk_bars(120))
    panel = prepare(panel_bars(80, gaps=False), params)
    per_symbol = panel.panel_normalisation
    assert per_symbol is not None
    scaled = {n: features.normalise_panel(panel.splits[n], per_symbol) for n in ("train", "validation")}  # type: ignore[arg-type]

    def curves(chunk):
        monkeypatch.setattr(training, "FORWARD_CHUNK", chunk)
        runs = []
        for train, validation, stats in ((single["train"], single["validation"], normalisation),
                                         (scaled["train"], scaled["validation"], panel.normalisation)):
            result = training.train_lstm(train, validation, stats, params.model, params.train, 42)
            runs.append([(p.loss, p.val_loss) for p in result.history])
        return runs

    (single_whole, panel_whole), (single_sliced, panel_sliced) = curves(100_000), curves(7)
    assert single_sliced == single_whole  # one series: one call, bit for bit
    np.testing.assert_allclose(np.array(panel_sliced, float), np.array(panel_whole, float), rtol=1e-5)


def test_a_close_only_panel_reads_the_close_alone():
    bars = panel_bars()[["date", "symbol", "close"]]
    prepared = prepare(bars, panel_params(features={"volume": False}))
    assert prepared.splits["train"].inputs.shape[-1] == 1
    assert prepared.normalisation.feature_names == ("log_close",)
    with pytest.raises(features.DataError, match="no volume column.*features.volume: false"):
        prepare(bars)


def test_walk_forward_folds_are_cut_in_days_for_every_symbol_at_once():
    prepared = prepare(panel_bars())
    samples = backtest.all_samples(prepared.splits)
    assert isinstance(samples, features.PanelWindows)
    days, validation_days = backtest.resolve_lengths(panel_params().backtest, prepared.splits)
    assert days == len(np.unique(prepared.splits["test"].target_dates))
    folds = backtest.plan_panel_folds(samples.target_dates, days, 2, validation_days)
    forecast_days = np.concatenate([samples.target_dates[f.forecast] for f in folds])
    assert set(forecast_days) == set(prepared.splits["test"].target_dates)
    for fold in folds:
        train, validation, forecast = (samples.target_dates[i] for i in (fold.train, fold.validation, fold.forecast))
        assert train.max() < validation.min() and validation.max() < forecast.min()
        assert len(np.unique(validation)) == validation_days
        # every sample of a forecast day is in the fold: no symbol left behind on a day
        assert len(fold.forecast) == np.isin(samples.target_dates, forecast).sum()
        assert len(fold.train) + len(fold.validation) == np.sum(samples.target_dates < forecast.min())


def test_point_in_time_membership_trains_and_scores_members_days_only():
    bars = panel_bars(gaps=False)
    joined = bars["date"].iloc[140]  # CCC joins the index late in the validation period, AAA leaves
    bars["member"] = True
    bars.loc[(bars["symbol"] == "CCC") & (bars["date"] < joined), "member"] = False
    bars.loc[(bars["symbol"] == "AAA") & (bars["date"] >= joined), "member"] = False
    prepared = prepare(bars)
    everyone = prepare(bars.drop(columns="member"))
    for name, part in prepared.splits.items():
        assert isinstance(part, features.PanelWindows)
        ccc, aaa = part.target_dates[part.symbols == "CCC"], part.target_dates[part.symbols == "AAA"]
        assert (ccc >= np.datetime64(joined, "D")).all() and (aaa < np.datetime64(joined, "D")).all(), name
    assert "CCC" not in set(prepared.splits["train"].symbols)
    assert "AAA" not in set(prepared.splits["test"].symbols)
    assert set(prepared.splits["test"].symbols) == {"BBB", "CCC"}
    # each symbol is still scaled by its own training period (its past, whether a member then or not)
    assert prepared.panel_normalisation == everyone.panel_normalisation
    assert prepared.bars["member"].dtype == bool


# --- no symbol's test days inform training -------------------------------------------------

def test_changing_one_symbols_bars_after_the_test_start_changes_nothing_before_it():
    params = panel_params()
    bars = panel_bars()
    before = prepare(bars, params)
    test_start = pd.Timestamp(before.splits["test"].target_dates.min())
    shaken = bars.copy()
    later = (shaken["symbol"] == "BBB") & (shaken["date"] >= test_start)
    factor = np.exp(np.random.default_rng(5).normal(0, 0.05, later.sum()))
    for column in ("open", "high", "low", "close"):
        shaken.loc[later, column] *= factor
    after = prepare(shaken, params)

    # the normalisation of every symbol, and every training and validation sample
    assert after.panel_normalisation == before.panel_normalisation
    for name in ("train", "validation"):
        for field in ("inputs", "targets", "last_close", "next_close", "target_dates", "symbols"):
            np.testing.assert_array_equal(getattr(after.splits[name], field), getattr(before.splits[name], field))
    # the model: trained twice, the same weights
    models = []
    for prepared in (before, after):
        per_symbol = prepared.panel_normalisation
        assert per_symbol is not None
        train, validation = (features.normalise_panel(prepared.splits[n], per_symbol)  # type: ignore[arg-type]
                             for n in ("train", "validation"))
        data = features.TrainingData(train, validation, prepared.normalisation, np.zeros((0, 4)), np.zeros((0, 1)))
        models.append(training.train_model(data, params.model, params.train, params.base.seed).model)
    for first, second in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_array_equal(first, second)
    # the baselines: every symbol's training closes, hence its drift and the naive scale
    closes = [panel_evaluation.training_closes_by_symbol(p.bars) for p in (before, after)]
    assert closes[0].keys() == closes[1].keys()
    for symbol in SYMBOLS:
        np.testing.assert_array_equal(closes[0][symbol], closes[1][symbol])
    # the forecasts of the other symbols' test days are unchanged, and BBB's first test day's too
    test_before, test_after = before.splits["test"], after.splits["test"]
    assert isinstance(test_before, features.PanelWindows) and isinstance(test_after, features.PanelWindows)
    forecasts = [panel_evaluation.forecast_panel(models[0], t, before.panel_normalisation)[0]  # type: ignore[arg-type]
                 for t in (test_before, test_after)]
    unchanged = (test_before.symbols != "BBB") | (test_before.target_dates == test_before.target_dates.min())
    np.testing.assert_array_equal(forecasts[0][unchanged], forecasts[1][unchanged])
    assert not np.array_equal(forecasts[0][~unchanged], forecasts[1][~unchanged])


# --- pooled and per-symbol figures ----------------------------------------------------------

def test_pooled_figures_weigh_every_symbol_day_and_test_on_days():
    params = panel_params()
    prepared = prepare(panel_bars())
    per_symbol = prepared.panel_normalisation
    assert per_symbol is not None
    validation, test = prepared.splits["validation"], prepared.splits["test"]
    assert isinstance(validation, features.PanelWindows) and isinstance(test, features.PanelWindows)
    network = ConstantNetwork([0.2, 0.4])  # 0.3 of each symbol's target scale, up, every day
    result = panel_evaluation.evaluate_panel(network, prepared.bars.assign(
        date=prepared.bars["date"].dt.strftime("%Y-%m-%d")), validation, test, per_symbol, params.evaluate, 42)
    report, table = result.report, result.panel_predictions

    assert list(table.columns) == list(panel_evaluation.PANEL_PREDICTION_COLUMNS)
    assert len(table) == report["n_test"] == len(test.targets)
    scales = np.array([per_symbol[s].target_scale for s in table["symbol"]])
    np.testing.assert_allclose(table["model"], table["persistence"] * np.exp(0.3 * scales), rtol=1e-6)
    # the pooled ratio recomputes from the CSV: relative errors, every symbol-day alike
    relative = (table["model"] - table["actual"]) / table["persistence"]
    reference = (table["persistence"] - table["actual"]) / table["persistence"]
    ratio = math.sqrt(np.mean(relative**2)) / math.sqrt(np.mean(reference**2))
    assert report["panel"]["rmse_ratio_persistence"] == pytest.approx(ratio, rel=1e-12)
    assert report["rmse_ratio_persistence"] == pytest.approx(ratio, rel=1e-9)
    # Diebold-Mariano on each day's summed loss differential
    frame = pd.DataFrame({"date": table["date"], "d": relative**2 - reference**2})
    daily = frame.groupby("date")["d"].sum().to_numpy()
    statistic = daily.mean() / math.sqrt(daily.var(ddof=1) / len(daily)) * math.sqrt((len(daily) - 1) / len(daily))
    from scipy.stats import t as student_t

    assert report["panel"]["dm_p_value"] == pytest.approx(student_t.cdf(statistic, len(daily) - 1), rel=1e-9)
    assert report["panel"]["days"] == len(daily)
    assert report["panel"]["symbols"] == 3
    # per symbol: its own days alone
    for symbol in SYMBOLS:
        mine = table["symbol"] == symbol
        figures = report["panel"]["per_symbol"][symbol]
        assert figures["n"] == mine.sum()
        assert figures["rmse_ratio_persistence"] == pytest.approx(
            significance.rmse_ratio(relative[mine].to_numpy(), reference[mine].to_numpy()), rel=1e-12)
        assert figures["dm_p_value"] == pytest.approx(
            significance.diebold_mariano(relative[mine].to_numpy(), reference[mine].to_numpy()), rel=1e-12)
    # intervals: each symbol's width follows its own scale; the pooled coverage is what the CSV says
    inside = (table["lower"] <= table["actual"]) & (table["actual"] <= table["upper"])
    assert report["interval_coverage"] == pytest.approx(inside.mean())
    half = np.log(table["upper"] / table["model"]) / scales
    np.testing.assert_allclose(half, half.iloc[0], rtol=1e-9)
    # predictions.csv: relative to each last close
    np.testing.assert_allclose(result.predictions["model"], table["model"] / table["persistence"])
    assert (result.predictions["persistence"] == 1.0).all()


def test_a_perfect_model_on_a_panel_beats_persistence_by_name():
    class Perfect:
        """Forecasts each sample's own realised target (a look at the future, for the test only)."""

        def __init__(self, targets):
            self.targets = targets

        def __call__(self, inputs):
            assert len(inputs) == len(self.targets)
            return self.targets[:, None]

        def member_outputs(self, inputs):
            return np.stack([self(inputs)[:, 0]] * 2)

    prepared = prepare(panel_bars())
    per_symbol = prepared.panel_normalisation
    assert per_symbol is not None
    validation, test = prepared.splits["validation"], prepared.splits["test"]
    assert isinstance(validation, features.PanelWindows) and isinstance(test, features.PanelWindows)
    scaled_test = features.normalise_panel(test, per_symbol)
    forecasts, members = panel_evaluation.forecast_panel(Perfect(scaled_test.targets), test, per_symbol)
    np.testing.assert_allclose(forecasts, test.next_close, rtol=1e-6)
    assert members.shape == (2, len(test.targets))


# --- forecasting a panel from bars ----------------------------------------------------------

def trained_panel(bars: pd.DataFrame):
    """A prepared panel, a tiny global model trained on it, and its forecaster calibration."""
    params = panel_params()
    prepared = prepare(bars, params)
    per_symbol = prepared.panel_normalisation
    assert per_symbol is not None
    train, validation = (features.normalise_panel(prepared.splits[n], per_symbol)  # type: ignore[arg-type]
                         for n in ("train", "validation"))
    data = features.TrainingData(train, validation, prepared.normalisation, np.zeros((0, 4)), np.zeros((0, 1)))
    network = training.train_model(data, params.model, params.train, params.base.seed).model
    raw_validation = prepared.splits["validation"]
    assert isinstance(raw_validation, features.PanelWindows)
    calibration = forecaster.calibrate_panel(network, raw_validation, per_symbol, params.features)
    return prepared, network, calibration


def test_the_forecaster_answers_each_symbol_as_evaluate_scored_it():
    bars = panel_bars()
    prepared, network, calibration = trained_panel(bars)
    per_symbol = prepared.panel_normalisation
    assert per_symbol is not None and calibration.symbols == per_symbol
    assert calibration.columns == ("date", "symbol", "open", "high", "low", "close", "volume")
    assert forecaster.Calibration.from_document(json.loads(json.dumps(calibration.document())), "c") == calibration
    test = prepared.splits["test"]
    assert isinstance(test, features.PanelWindows)
    scored, _ = panel_evaluation.forecast_panel(network, test, per_symbol)
    sent = bars.sample(frac=1.0, random_state=3)  # any row order: the forecaster sorts
    answer = forecaster.forecast_table(network, forecaster.read_bars(sent, calibration, "sent"), calibration, 0.9,
                                       every_day=True)
    assert list(answer.columns) == list(forecaster.PANEL_OUTPUT_COLUMNS)
    keyed = answer.set_index(["symbol", "date"])
    for index in range(len(test.targets)):
        row = keyed.loc[(test.symbols[index], str(test.target_dates[index]))]
        assert row["forecast"] == pytest.approx(scored[index], rel=1e-5)
        assert row["last_close"] == test.last_close[index]
    latest = forecaster.forecast_table(network, forecaster.read_bars(bars, calibration, "sent"), calibration, 0.9)
    assert latest["symbol"].tolist() == list(SYMBOLS)
    # each symbol's interval is the pooled quantile in its own scale: a volatile symbol's is wider
    half = np.log(latest["upper"] / latest["forecast"]).to_numpy()
    scales = np.array([per_symbol[s].target_scale for s in SYMBOLS])
    np.testing.assert_allclose(half / scales, half[0] / scales[0], rtol=1e-9)


@pytest.mark.parametrize(("change", "message"), [
    (lambda bars: bars.assign(symbol=bars["symbol"].replace("CCC", "ZZZ")),
     "sent: symbol ZZZ is not one the model was trained on"),
    (lambda bars: bars[(bars["symbol"] != "AAA") | (bars["date"] > bars["date"].iloc[-5])],
     "sent: symbol AAA: 4 bars, but the model reads windows of 10 days"),
    (lambda bars: bars.drop(columns="symbol"), "sent: no symbol column"),
    (lambda bars: bars.astype({"close": object}).assign(close=["x"] + list(bars["close"].iloc[1:])),
     r"sent: row 1 \(2018-01-02, symbol AAA\): close 'x' is not a number"),
])
def test_the_forecaster_refuses_bars_it_cannot_read_by_symbol(change, message):
    bars = panel_bars(60, gaps=False)
    calibration = forecaster.Calibration(10, True, (0.1,) * 20, {
        symbol: features.identity_normalisation(features.feature_names(True)) for symbol in SYMBOLS})
    with pytest.raises(features.DataError, match=message):
        forecaster.read_bars(change(bars), calibration, "sent")


# --- the stages -----------------------------------------------------------------------------

def write_long_and_wide(directory: Path) -> None:
    bars = panel_bars()[["date", "symbol", "close"]]
    long = bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d"))
    (directory / "long.csv").write_text(long.to_csv(index=False))
    wide = long.pivot(index="date", columns="symbol", values="close").reset_index()
    (directory / "wide.csv").write_text(wide.to_csv(index=False))


def test_a_long_and_a_wide_csv_give_identical_prepared_data(workspace):
    write_long_and_wide(workspace)
    outputs = {}
    for name in ("long", "wide"):
        write_params(workspace, tiny_params(data={"source": "panel_csv", "path": f"{name}.csv", "start": None,
                                                  "end": None}, features={"volume": False}))
        assert main(["prepare"]) == 0
        prepared = Path("data/prepared")
        summary = json.loads((prepared / "prepared.json").read_text())
        summary.pop("source")
        outputs[name] = ((prepared / "windows.npz").read_bytes(), (prepared / "bars.csv").read_bytes(), summary)
    assert outputs["long"] == outputs["wide"]
    assert outputs["long"][2]["panel"]["symbols"] == list(SYMBOLS)


def test_a_panel_with_too_few_days_for_a_symbol_exits_2_naming_it(workspace, capsys):
    bars = panel_bars()[["date", "symbol", "close"]]
    bars = bars[(bars["symbol"] != "CCC") | (bars.groupby("symbol").cumcount() < 12)]
    (workspace / "short.csv").write_text(bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(index=False))
    write_params(workspace, tiny_params(data={"source": "panel_csv", "path": "short.csv", "start": None,
                                              "end": None}, features={"volume": False}))
    assert main(["prepare"]) == 2
    error = capsys.readouterr().err
    assert "short.csv: symbol CCC: too few days: 12 rows give 2 samples, at least 5 needed" in error
    assert not Path("data/prepared").exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text + text.splitlines()[5] + "\n",
     r"bad.csv: row \d+ \(\d{4}-\d\d-\d\d, symbol AAA\): repeats row 5's date and symbol"),
    (lambda text: text.replace("date,symbol,close", "date,symbol,close,sector", 1).replace("\n", ",x\n")
     .replace("date,symbol,close,sector,x", "date,symbol,close,sector", 1),
     "bad.csv: unknown column 'sector'"),
    (lambda text: text.replace(text.splitlines()[3].split(",")[2], "n/a", 1),
     r"bad.csv: row 3 \(\d{4}-\d\d-\d\d, symbol AAA\): close 'n/a' is not a number"),
])
def test_a_malformed_panel_stops_prepare_with_exit_2_naming_file_row_and_symbol(workspace, capsys, edit, message):
    bars = panel_bars(40, gaps=False)[["date", "symbol", "close"]]
    text = bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(index=False)
    (workspace / "bad.csv").write_text(edit(text))
    write_params(workspace, tiny_params(data={"source": "panel_csv", "path": "bad.csv", "start": None,
                                              "end": None}, features={"volume": False}))
    assert main(["prepare"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not Path("data/prepared").exists() and not Path("data/raw").exists()


@pytest.mark.slow
def test_prepare_train_evaluate_on_a_panel(workspace, capsys):
    """The stages on a 3-symbol CSV: the panel block, the CSV it recomputes from, and the
    stages that do not take a panel yet say so."""
    write_long_and_wide(workspace)
    write_params(workspace, tiny_params(data={"source": "panel_csv", "path": "long.csv", "start": None,
                                              "end": None}, features={"volume": False}))
    for stage in ("prepare", "train", "evaluate"):
        assert main([stage]) == 0, stage
    out = capsys.readouterr().out
    assert "pooled over 3 symbols" in out and "verdict:" in out
    report = json.loads(Path("reports/metrics.json").read_text())
    table = pd.read_csv("reports/panel_predictions.csv")
    assert set(table["symbol"]) == set(SYMBOLS)
    assert report["panel"]["symbols"] == 3
    assert set(report["panel"]["per_symbol"]) == set(SYMBOLS)
    relative = (table["model"] - table["actual"]) / table["persistence"]
    reference = (table["persistence"] - table["actual"]) / table["persistence"]
    assert report["panel"]["rmse_ratio_persistence"] == pytest.approx(
        math.sqrt(np.mean(relative**2) / np.mean(reference**2)), rel=1e-9)
    ranking = json.loads(Path("reports/cross_section.json").read_text())
    assert json.loads(Path("reports/scores.json").read_text()) == {
        "rmse_ratio": report["rmse_ratio_persistence"], "rank_ic": ranking["rank_ic"]["mean"],
        "rank_ic_p_value": ranking["rank_ic"]["p_value"],
        "long_short_annual_return": ranking["long_short"]["annual_return"]}

    assert main(["backtest"]) == 0
    backtest = json.loads(Path("reports/backtest.json").read_text())
    walked = pd.read_csv("reports/backtest.csv")
    assert list(walked.columns[:3]) == ["date", "symbol", "fold"]
    assert backtest["panel"]["symbols"] == 3 and backtest["panel"]["days"] == walked["date"].nunique()
    relative = walked["model"] - walked["actual"]  # relative to each last close already
    reference = walked["persistence"] - walked["actual"]
    assert (walked["persistence"] == 1.0).all()
    assert backtest["pooled"]["rmse_ratio_persistence"] == pytest.approx(
        math.sqrt(np.mean(relative**2) / np.mean(reference**2)), rel=1e-9)
    # backtest.days null: as many days as the test split has, so the same symbol-days
    assert sorted(zip(walked["date"], walked["symbol"])) == sorted(zip(table["date"], table["symbol"]))

    # predict: one row per symbol; the logged pyfunc answers the same from bars with a symbol column
    capsys.readouterr()
    assert main(["predict", "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["symbol"] for a in answers] == list(SYMBOLS)
    # each symbol's rank by forecast return and the side of the evaluated portfolio (top_k null: 1 of 3)
    returns = [a["forecast"] / a["last_close"] - 1.0 for a in answers]
    assert [a["forecast_return"] for a in answers] == pytest.approx(returns)
    assert sorted(a["rank"] for a in answers) == [1, 2, 3]
    assert [a["side"] for a in sorted(answers, key=lambda a: a["rank"])] == ["long", None, "short"]
    assert main(["predict"]) == 0
    table = capsys.readouterr().out
    assert "long the top 1 and short the bottom 1 of 3, equal weights, held one day" in table and "not advice" in table
    import mlflow

    train_run = json.loads(Path(".nextclose/train_run.json").read_text())
    assert train_run["registered_model"] == "nextclose-lstm-panel"  # not comparable with one series' models
    assert main(["champion", "--panel"]) == 0
    capsys.readouterr()
    assert main(["predict", "--json"]) == 0  # now through models:/nextclose-lstm-panel@champion
    assert [a["model_uri"] for a in json.loads(capsys.readouterr().out)] == ["models:/nextclose-lstm-panel/1"] * 3
    logged = mlflow.pyfunc.load_model(train_run["model_uri"])
    sent = pd.read_csv("long.csv", dtype={"symbol": str})
    served = logged.predict(sent.astype({"close": float}))
    assert served["symbol"].tolist() == list(SYMBOLS)
    np.testing.assert_allclose(served["forecast"], [a["forecast"] for a in answers], rtol=1e-6)
    assert served["date"].tolist() == [a["date"] for a in answers]

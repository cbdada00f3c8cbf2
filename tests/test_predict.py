"""`nextclose predict` and the served bars model: tomorrow's close from raw bars, the same
answer from the CLI, from `mlflow models serve` and, day by day, from evaluate."""

import json
import os
import subprocess
import sys
import urllib.request
from typing import Optional

import mlflow
import numpy as np
import pandas as pd
import pytest

from nextclose import bars, cli, cross_section, features, forecaster, significance
from nextclose.commands import predict
from nextclose.errors import DataError
from nextclose.params import FeatureParams

from helpers import ConstantNetwork, free_port, random_walk_bars, tiny_params, wait_until_up, write_params

# --- the core: bars in, forecasts out ------------------------------------------------------------

CALIBRATION = forecaster.Calibration(window=10, volume=True, residuals=tuple(np.linspace(0.001, 0.02, 20)))


def test_the_forecast_is_the_last_close_moved_by_the_networks_log_return_within_conformal_bounds():
    table = random_walk_bars(40, start="2018-01-01")
    answer = forecaster.forecast_table(ConstantNetwork([0.01, 0.03]), table, CALIBRATION, 0.9)
    assert len(answer) == 1 and list(answer.columns) == list(forecaster.OUTPUT_COLUMNS)
    row = answer.iloc[0]
    last_close = table["close"].iloc[-1]
    assert row["last_close"] == last_close
    assert row["forecast"] == pytest.approx(last_close * np.exp(0.02), rel=1e-6)
    # ceil(21 * 0.9) = 19th smallest of 20 residuals
    half_width = np.sort(CALIBRATION.residuals)[18]
    assert row["lower"] == pytest.approx(row["forecast"] * np.exp(-half_width))
    assert row["upper"] == pytest.approx(row["forecast"] * np.exp(half_width))
    # 40 business days from Monday 2018-01-01 end on Friday 2018-02-23: the forecast is for Monday
    assert (row["last_date"], row["date"]) == ("2018-02-23", "2018-02-26")


def test_every_day_gives_one_forecast_per_whole_window_dated_by_the_next_bar():
    table = random_walk_bars(40, start="2018-01-01")
    answer = forecaster.forecast_table(ConstantNetwork([0.0]), table, CALIBRATION, 0.5, every_day=True)
    dates = table["date"].dt.strftime("%Y-%m-%d").tolist()
    assert answer["last_date"].tolist() == dates[9:]
    assert answer["date"].tolist() == dates[10:] + ["2018-02-26"]
    np.testing.assert_array_equal(answer["forecast"], table["close"].to_numpy()[9:])  # a zero log return


def test_the_windows_it_forecasts_from_are_the_windows_training_reads():
    table = random_walk_bars(60)
    params = FeatureParams(window=10, volume=True)
    every = features.window_inputs(table, params)
    windows = features.make_windows(table, params)
    assert len(every) == len(windows.inputs) + 1  # and one more: the window that ends on the last bar
    np.testing.assert_array_equal(every[:-1], windows.inputs)
    # the last window by hand: log prices relative to the last close, log volume less its mean
    last = table.tail(10)
    prices = np.log(last[["open", "high", "low", "close"]].to_numpy() / last["close"].iloc[-1])
    volume = np.log1p(last["volume"].to_numpy())
    np.testing.assert_allclose(every[-1], np.column_stack([prices, volume - volume.mean()]), atol=1e-6)


@pytest.mark.parametrize("day, following", [
    ("2017-11-10", "2017-11-13"),  # Friday -> Monday
    ("2017-11-11", "2017-11-13"),  # Saturday -> Monday
    ("2017-11-13", "2017-11-14"),
])
def test_next_weekday(day, following):
    assert str(forecaster.next_weekday(np.datetime64(day))) == following


def sent(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(date=table["date"].dt.strftime("%Y-%m-%d"))


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns=["volume"]), "the bars: no volume column (the model reads log volume"),
    (lambda t: t.drop(columns=["close", "high"]), "the bars: no high, close columns"),
    (lambda t: t.tail(9), "the bars: 9 bars, but the model reads windows of 10 days (features.window)"),
    (lambda t: t.assign(date=["someday"] + t["date"].tolist()[1:]), "the bars: row 1: unparseable date 'someday'"),
    (lambda t: t.assign(date=t["date"] + "T00:00:00-05:00"), "the bars: row 1: unparseable date"),  # prepare's formats
    (lambda t: t.assign(close=t["close"].astype(object).where(t.index != 3, "n/a")),
     "the bars: row 4 (2018-01-05): close 'n/a' is not a number"),
    (lambda t: t.assign(low=t["low"] * 2), "the bars: 2018-01-02: low"),  # prepare's rules
    (lambda t: t.iloc[::-1], "the bars: row 2 (2018-01-17): date comes after 2018-01-18"),
])
def test_bad_bars_are_refused_by_name(change, message):
    table = sent(random_walk_bars(13))
    with pytest.raises(DataError) as caught:
        forecaster.read_bars(change(table), CALIBRATION, "the bars")
    assert message in str(caught.value)


def test_a_calibration_document_round_trips_and_a_broken_one_is_named():
    assert forecaster.Calibration.from_document(CALIBRATION.document(), "c.json") == CALIBRATION
    with pytest.raises(DataError, match="models/calibration.json: not a forecaster calibration"):
        forecaster.Calibration.from_document({"window": 10}, "models/calibration.json")


@pytest.mark.parametrize("days", [1, 5, 7, 9, 55, 292])
def test_the_largest_coverage_can_be_given(days):
    calibration = forecaster.Calibration(10, True, tuple(np.linspace(0.01, 0.02, days)))
    coverage = forecaster.largest_coverage(calibration)
    assert significance.conformal_quantile(np.asarray(calibration.residuals), coverage) == max(calibration.residuals)
    assert coverage > (days - 1) / days  # above what one day fewer could give


def test_log_residuals_are_the_conformal_scores_of_the_intervals():
    actual, forecast = np.array([100.0, 110.0, 90.0]), np.array([101.0, 100.0, 100.0])
    np.testing.assert_allclose(significance.log_residuals(actual, forecast), np.abs(np.log(actual / forecast)))


# --- a panel's ranking: forecast return, rank, side ------------------------------------------------


def panel_answer(forecasts: dict, last_date: str = "2024-01-05", stale: Optional[dict] = None) -> pd.DataFrame:
    """A panel forecaster's answer (forecaster.PANEL_OUTPUT_COLUMNS), every last close 100;
    ``stale`` symbols' bars end on the given earlier day."""
    rows = [{"date": "2024-01-08", "symbol": symbol, "last_date": last_date, "last_close": 100.0,
             "forecast": forecast, "lower": forecast - 5.0, "upper": forecast + 5.0}
            for symbol, forecast in forecasts.items()]
    rows += [{"date": "2023-12-01", "symbol": symbol, "last_date": day, "last_close": 100.0, "forecast": 150.0,
              "lower": 145.0, "upper": 155.0} for symbol, day in (stale or {}).items()]
    return pd.DataFrame(rows, columns=forecaster.PANEL_OUTPUT_COLUMNS)


def test_each_symbol_gets_its_forecast_return_rank_and_the_portfolios_side():
    answer = panel_answer({"EEE": 101.0, "BBB": 99.0, "AAA": 102.0, "CCC": 100.5, "DDD": 98.0, "FFF": 99.5,
                           "GGG": 103.0, "HHH": 97.0, "III": 100.0, "JJJ": 100.2, "KKK": 96.0})
    table = predict.ranked(answer, None)  # null: a fifth of 11 symbols, 2 a side
    assert table["symbol"].tolist() == sorted(answer["symbol"])  # symbol order, as the scoring orders them
    np.testing.assert_allclose(table["forecast_return"], table["forecast"] / 100.0 - 1.0)
    by_rank = table.sort_values("rank")
    assert by_rank["symbol"].tolist() == ["GGG", "AAA", "EEE", "CCC", "JJJ", "III", "FFF", "BBB", "DDD", "HHH",
                                          "KKK"]
    assert by_rank["rank"].tolist() == list(range(1, 12))
    assert by_rank["side"].tolist() == ["long", "long"] + [""] * 7 + ["short", "short"]
    assert predict.ranked(answer, 4)["side"].value_counts().to_dict() == {"": 3, "long": 4, "short": 4}
    # the served answer is left as it was
    assert list(answer.columns) == list(forecaster.PANEL_OUTPUT_COLUMNS)


def test_the_sides_are_the_evaluated_portfolios_ties_and_all():
    answer = panel_answer({"CCC": 100.0, "AAA": 100.0, "BBB": 100.0, "DDD": 100.0})  # every return the same
    table = predict.ranked(answer, 1)
    # ties go to the earlier symbol, exactly as cross_section.sides orders the scored grid
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["side"].tolist() == ["long", "", "", "short"]
    signal = (table["forecast"] / table["last_close"] - 1.0).to_numpy()
    assert table["side"].tolist() == [predict.SIDE_NAMES[side] for side in cross_section.sides(signal, 1)]
    # fewer symbols than two sides of top_k: each side takes half
    three = predict.ranked(panel_answer({"AAA": 101.0, "BBB": 99.0, "CCC": 100.0}), 5)
    assert three["side"].tolist() == ["long", "short", ""]


def test_a_symbol_whose_bars_end_before_the_latest_day_is_not_ranked():
    table = predict.ranked(panel_answer({"AAA": 101.0, "BBB": 99.0}, stale={"OLD": "2023-11-30"}), 1)
    old = table.set_index("symbol").loc["OLD"]
    assert pd.isna(old["rank"]) and old["side"] == "" and old["forecast_return"] == pytest.approx(0.5)
    assert table.set_index("symbol").loc[["AAA", "BBB"], "side"].tolist() == ["long", "short"]


def print_panel(capsys, table: pd.DataFrame, as_json: bool) -> str:
    bars_sent = table.assign(date=pd.to_datetime(table["last_date"]))[["date", "symbol"]]
    capsys.readouterr()
    predict._print_panel(table, bars_sent, bars_sent, "models:/nextclose-lstm-panel/3", "3", 0.9, "p.csv", as_json)
    return capsys.readouterr().out


def test_the_panel_table_is_by_rank_and_says_what_the_side_is(capsys):
    table = predict.ranked(panel_answer({"AAA": 99.0, "BBB": 102.0, "CCC": 100.5, "DDD": 101.0, "EEE": 98.0},
                                        stale={"OLD": "2023-11-30"}), None)
    out = print_panel(capsys, table, as_json=False)
    assert ("ranked by forecast return (forecast / close - 1): long the top 1 and short the bottom 1 of 5, "
            "equal weights, held one day (evaluate.top_k)") in out
    assert "not advice" in out and "not ranked (last bar before 2024-01-05): OLD" in out
    lines = out.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("symbol"))
    rows = [line.split() for line in lines[header + 1:]]
    assert [row[0] for row in rows] == ["BBB", "DDD", "CCC", "AAA", "EEE", "OLD"]
    assert rows[0][5:8] == ["+2.00%", "1", "long"] and rows[4][5:8] == ["-2.00%", "5", "short"]
    assert rows[1][5:7] == ["+1.00%", "2"] and rows[5][5] == "+50.00%" and len(rows[5]) == 8  # no rank, no side


def test_the_panel_json_keeps_symbol_order_and_gains_rank_side_and_return(capsys):
    table = predict.ranked(panel_answer({"AAA": 99.0, "BBB": 102.0, "CCC": 100.5}, stale={"OLD": "2023-11-30"}), 1)
    documents = json.loads(print_panel(capsys, table, as_json=True))
    assert [d["symbol"] for d in documents] == ["AAA", "BBB", "CCC", "OLD"]
    assert [(d["rank"], d["side"]) for d in documents] == [(3, "short"), (1, "long"), (2, None), (None, None)]
    assert documents[1]["forecast_return"] == pytest.approx(0.02)
    assert list(documents[0])[:9] == ["symbol", "date", "last_close", "forecast", "lower", "upper",
                                      "forecast_return", "rank", "side"]


# --- end to end: a trained workspace -------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace trained twice (the second model better on validation than the first),
    evaluated, with its champion chosen after the first; and the monkeypatch to enter it."""
    directory = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{directory / 'mlflow.db'}")
        for name in ("DVC_ROOT", "DVC_EXP_NAME", "OPTUNA_STORAGE"):
            patch.delenv(name, raising=False)
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        write_params(directory, tiny_params(train={"steps": 20}))
        assert cli.main(["prepare"]) == 0
        assert cli.main(["train"]) == 0
        assert cli.main(["predict", "--json"]) == 0  # before any champion: the workspace's models/
        assert cli.main(["champion"]) == 0
        write_params(directory, tiny_params(train={"steps": 60, "learning_rate": 0.01}))
        patch.setenv("NEXTCLOSE_EXECUTION_ID", "second")  # one pipeline execution, as under dvc repro
        assert cli.main(["train"]) == 0
        assert cli.main(["evaluate"]) == 0
        assert cli.main(["backtest"]) == 0
        yield directory


@pytest.fixture
def inside(trained, monkeypatch):
    monkeypatch.chdir(trained)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained / 'mlflow.db'}")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    return trained


def predict_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert cli.main(["predict", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_predict_uses_the_champion_and_says_which(inside, capsys):
    capsys.readouterr()
    assert cli.main(["predict"]) == 0
    out = capsys.readouterr().out
    assert "model: models:/nextclose-lstm/1 (version 1, models:/nextclose-lstm@champion)" in out
    # the default source ends on Friday 2017-11-10 (data.end is not applied: the latest bar)
    assert "last bar 2017-11-10: close 83.8700" in out
    assert "forecast for 2017-11-13: close " in out and "90% interval " in out
    document = predict_json(capsys)
    assert list(document)[:6] == ["date", "last_close", "forecast", "lower", "upper", "model_uri"]
    assert not {"forecast_return", "rank", "side"} & set(document) and "rank" not in out  # one series: no ranking
    assert document["model_uri"] == "models:/nextclose-lstm/1" and document["model_version"] == "1"
    assert document["lower"] < document["forecast"] < document["upper"]


def test_the_workspace_model_and_its_registered_version_forecast_alike(inside, capsys):
    """models/ holds the second training; --model names its registered version."""
    registered = predict_json(capsys, "--model", "models:/nextclose-lstm/2")
    mlflow.set_tracking_uri(f"sqlite:///{inside / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    client.delete_registered_model_alias("nextclose-lstm", "champion")
    try:
        capsys.readouterr()
        assert cli.main(["predict", "--json"]) == 0
        captured = capsys.readouterr()
        assert "no models:/nextclose-lstm@champion" in captured.err and "using the workspace's models/" in captured.err
        workspace = json.loads(captured.out.strip().splitlines()[-1])
    finally:
        client.set_registered_model_alias("nextclose-lstm", "champion", "1")
    assert workspace["model_uri"] == "models/" and workspace["date"] == registered["date"]
    for key in ("last_close", "forecast", "lower", "upper"):
        assert workspace[key] == pytest.approx(registered[key], rel=1e-9), key


def test_predict_on_a_csv_ending_on_a_friday_forecasts_monday(inside, capsys):
    table = bars.load_msft().iloc[-300:]
    friday = table.loc[table["date"] == "2017-06-30"].index[0]  # a Friday
    table.loc[:friday].assign(date=lambda t: t["date"].dt.strftime("%Y-%m-%d")).to_csv("to-friday.csv", index=False)
    document = predict_json(capsys, "--csv", "to-friday.csv")
    assert document["date"] == "2017-07-03" and document["actual"] is None
    assert document["last_close"] == pytest.approx(table.loc[friday, "close"])
    # --as-of on the full history: the same forecast, and the day's actual close beside it
    as_of = predict_json(capsys, "--as-of", "2017-06-30")
    assert as_of["forecast"] == pytest.approx(document["forecast"], rel=1e-9)
    assert as_of["actual"] == pytest.approx(table.loc[friday + 1, "close"])
    # the Friday before Labor Day: the history's next bar is Tuesday's
    labor_day = predict_json(capsys, "--as-of", "2017-09-01")
    assert (labor_day["last_date"], labor_day["date"]) == ("2017-09-01", "2017-09-05")
    assert labor_day["actual"] == pytest.approx(table.loc[table["date"] == "2017-09-05", "close"].iloc[0])
    # an alias given as --model is reported with the version it points at
    assert predict_json(capsys, "--model", "models:/nextclose-lstm@champion")["model_version"] == "1"


@pytest.mark.parametrize("argv, message", [
    (["--csv", "no-volume.csv"], "no-volume.csv: no volume column, which models:/nextclose-lstm/1 reads"),
    (["--csv", "few.csv"], "few.csv: 5 bars, but the model reads windows of 10 days"),
    (["--params", "wide.yaml"], "interval 0.99: 55 calibration days cannot give a 0.99 interval"),
    (["--model", "models:/nextclose-lstm@champion", "--csv", "few.csv", "--json"], "few.csv: 5 bars"),
    (["--as-of", "1900-01-01"], "no rows between data.start null and data.end 1900-01-01"),
    (["--as-of", "yesterday"], "--as-of: 'yesterday' is not an ISO date"),
    (["--csv", "missing.csv"], "missing.csv"),
    (["--model", "models:/nextclose-lstm/99"], "--model models:/nextclose-lstm/99: cannot be read"),
    (["--output", "x.csv"], "--output: only with --all"),
])
def test_bad_inputs_are_refused_by_name(inside, capsys, argv, message):
    table = random_walk_bars(30)
    table.drop(columns=["volume"]).to_csv("no-volume.csv", index=False)
    table.head(5).to_csv("few.csv", index=False)
    write_params(inside, tiny_params(evaluate={"interval": 0.99}), "wide.yaml")
    capsys.readouterr()
    assert cli.main(["predict", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nextclose predict: error: ") and message in err


def test_a_validation_split_shorter_than_the_window_trains_and_predict_names_the_interval_it_cannot_give(
        workspace, capsys):
    """Seven validation days, a ten-day window: the model logs (its example from the bars before
    the test split) and predict says why a 90% interval is out of reach."""
    write_params(workspace, tiny_params(split={"validation_start": "2017-05-01", "test_start": "2017-05-10"},
                                        train={"steps": 20}))
    assert cli.main(["prepare"]) == 0
    assert cli.main(["train"]) == 0
    capsys.readouterr()
    assert cli.main(["predict"]) == 2
    assert ("interval 0.9: 7 calibration days cannot give a 0.9 interval: at least 10 are needed (the model's "
            "validation split had 7 days)") in capsys.readouterr().err


def test_every_day_forecasts_match_evaluates_test_forecasts(inside, capsys):
    """Batch scoring of the whole history with the model evaluate scored (models/, version 2)."""
    assert cli.main(["predict", "--all", "--model", "models:/nextclose-lstm/2", "--output", "all.csv"]) == 0
    every_day = pd.read_csv("all.csv").set_index("date")
    evaluated = pd.read_csv("reports/predictions.csv").set_index("date")
    assert len(evaluated) == 55 and set(evaluated.index) <= set(every_day.index)
    matched = every_day.loc[evaluated.index]
    for ours, theirs in (("forecast", "model"), ("lower", "lower"), ("upper", "upper")):
        np.testing.assert_allclose(matched[ours], evaluated[theirs], rtol=1e-6, err_msg=ours)
    np.testing.assert_allclose(matched["last_close"], evaluated["persistence"])


def test_champion_moves_only_for_a_better_challenger_and_says_why(inside, capsys):
    mlflow.set_tracking_uri(f"sqlite:///{inside / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    losses = {v: client.get_run(client.get_model_version("nextclose-lstm", v).run_id).data.metrics["best_val_loss"]
              for v in ("1", "2")}
    capsys.readouterr()
    assert cli.main(["champion"]) == 0
    out = capsys.readouterr().out
    challenger = client.get_model_version_by_alias("nextclose-lstm", "challenger")
    champion = client.get_model_version_by_alias("nextclose-lstm", "champion")
    assert str(challenger.version) == "2"
    assert losses["2"] < losses["1"]  # 60 steps at lr 0.01 beat 20 at 0.001 (training is deterministic)
    assert str(champion.version) == "2"
    assert "is below champion version 1's" in challenger.tags["challenge"]
    assert "version 2 is now @champion" in out
    assert client.get_model_version("nextclose-lstm", "2").tags["champion_chosen_on"] == "validation"
    # again: no newer version, nothing moves
    assert cli.main(["champion"]) == 0
    assert str(client.get_model_version_by_alias("nextclose-lstm", "champion").version) == "2"
    assert "version 2 stays @champion: no newer version can challenge it" in capsys.readouterr().out
    # the champion back to 1, version 2 challenges again and loses when its figure is worse
    client.set_registered_model_alias("nextclose-lstm", "champion", "1")
    version_1_run = client.get_model_version("nextclose-lstm", "1").run_id
    client.log_metric(version_1_run, "best_val_loss", losses["2"] / 2)  # the run's latest value counts
    try:
        assert cli.main(["champion"]) == 0
        assert "version 1 stays @champion: version 2's best_val_loss" in capsys.readouterr().out
        assert str(client.get_model_version_by_alias("nextclose-lstm", "champion").version) == "1"
    finally:
        client.log_metric(version_1_run, "best_val_loss", losses["1"])
    client.set_registered_model_alias("nextclose-lstm", "champion", "1")  # as the other tests expect


def test_champion_on_the_backtest_figure_of_the_execution_that_trained_the_version(inside, capsys):
    mlflow.set_tracking_uri(f"sqlite:///{inside / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    backtest = json.loads((inside / "reports/backtest.json").read_text())["pooled"]["rmse_ratio_persistence"]
    capsys.readouterr()
    try:
        assert cli.main(["champion", "--metric", "backtest_rmse_ratio"]) == 0
        out = capsys.readouterr().out
        # version 1's execution ran no backtest: version 2, whose execution did, takes the title
        assert (f"version 2 is now @champion: version 2's backtest_rmse_ratio {backtest:.6g}; champion version 1 "
                f"has no backtest_rmse_ratio (backtest)") in out
        assert client.get_model_version("nextclose-lstm", "2").tags["champion_chosen_on"] == "backtest"
    finally:
        client.set_registered_model_alias("nextclose-lstm", "champion", "1")  # as the other tests expect


@pytest.mark.slow
def test_mlflow_models_serve_answers_bars_like_predict_and_evaluate(inside, capsys):
    """A real `mlflow models serve` of the champion on loopback, sent real bars as dataframe_split:
    the champion made version 2, the model evaluate scored (models/)."""
    mlflow.set_tracking_uri(f"sqlite:///{inside / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("nextclose-lstm", "champion", "2")
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{inside / 'mlflow.db'}",
               PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")  # its uvicorn
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/nextclose-lstm@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=inside, env=env, stdout=subprocess.DEVNULL, stderr=open(inside / "serve.log", "w"))
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", server, 240, inside / "serve.log")

        def invoke(bars_sent: pd.DataFrame, **params) -> tuple[int, dict]:
            payload = {"dataframe_split": json.loads(sent(bars_sent).to_json(orient="split", index=False))}
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload | {"params": params}).encode(),
                headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=60) as reply:
                    return reply.status, json.loads(reply.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        history = bars.load_msft()
        status, answer = invoke(history.iloc[-40:])
        assert status == 200, answer
        [served] = answer["predictions"]
        expected = predict_json(capsys)  # the champion on the default source: the same last bars
        assert expected["model_version"] == "2"
        assert served["date"] == expected["date"] == "2017-11-13"
        for key in ("last_close", "forecast", "lower", "upper"):
            assert served[key] == pytest.approx(expected[key], rel=1e-9), key
        # every day of the prepared bars: on the test days, evaluate's forecasts and intervals
        prepared = pd.read_csv(inside / "data/prepared/bars.csv").drop(columns=["split"])
        status, answer = invoke(prepared.assign(date=pd.to_datetime(prepared["date"])), every_day=True)
        assert status == 200, answer
        every_day = pd.DataFrame(answer["predictions"]).set_index("date")
        evaluated = pd.read_csv(inside / "reports/predictions.csv").set_index("date")
        matched = every_day.loc[evaluated.index]
        for ours, theirs in (("forecast", "model"), ("lower", "lower"), ("upper", "upper")):
            np.testing.assert_allclose(matched[ours], evaluated[theirs], rtol=1e-6, err_msg=ours)
        # a request may name the coverage; bars without volume and a coverage out of reach are refused
        status, wider = invoke(history.iloc[-40:], interval=0.95)
        assert status == 200 and wider["predictions"][0]["upper"] > served["upper"]
        status, refused = invoke(history.iloc[-40:].drop(columns=["volume"]))
        assert status >= 400 and "volume" in json.dumps(refused)
        status, refused = invoke(history.iloc[-40:], interval=0.99)
        assert status >= 400 and "55 calibration days cannot give a 0.99 interval" in json.dumps(refused)
    finally:
        server.terminate()
        server.wait(timeout=30)
        client.set_registered_model_alias("nextclose-lstm", "champion", "1")  # as the other tests expect

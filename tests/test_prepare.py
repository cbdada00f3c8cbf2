"""The prepare stage: windows, split without leakage, statistics of train alone, outputs."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from nextclose import cli, features, layout, preparation
from nextclose.bars import DataError, bars_hash
from nextclose.params import FeatureParams, parse_params

from helpers import random_walk_bars, tiny_params, write_params


def prepared_from(bars: pd.DataFrame, **overrides) -> preparation.Prepared:
    params = parse_params(tiny_params(**overrides))
    return preparation.prepare(bars, "walk.csv", params.data, params.split, params.features)


def walk_params(**extra):
    return dict(data={"source": "csv", "path": "walk.csv", "start": None, "end": None}, **extra)


def test_windows_are_log_prices_relative_to_the_last_close():
    bars = random_walk_bars(40)
    windows = features.make_windows(bars, FeatureParams(window=5, volume=True))
    assert windows.inputs.shape == (35, 5, 5)
    i = 7  # sample 7 ends on row 11, its target is row 12
    close = bars["close"].to_numpy()
    np.testing.assert_allclose(windows.inputs[i, :, 3], np.log(close[7:12] / close[11]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(windows.inputs[i, :, 1], np.log(bars["high"].to_numpy()[7:12] / close[11]),
                               rtol=1e-5, atol=1e-7)
    assert windows.inputs[i, -1, 3] == 0.0
    volume = np.log1p(bars["volume"].to_numpy()[7:12])
    np.testing.assert_allclose(windows.inputs[i, :, 4], volume - volume.mean(), rtol=1e-5, atol=1e-6)
    assert windows.targets[i] == pytest.approx(np.log(close[12] / close[11]), rel=1e-5)
    assert windows.target_dates[i] == np.datetime64(bars["date"].iloc[12].date())


def test_split_by_target_date_leaks_nothing():
    prepared = prepared_from(random_walk_bars(200), **walk_params())
    train, validation, test = (prepared.splits[name] for name in features.SPLITS)
    assert train.target_dates.max() < validation.target_dates.min()
    assert validation.target_dates.max() < test.target_dates.min()
    # no validation or test day is the target of any training window
    held_out = set(validation.target_dates) | set(test.target_dates)
    assert held_out.isdisjoint(set(train.target_dates))
    # every training window's inputs end before the first validation target
    train_rows = prepared.bars[prepared.bars["split"] == "train"]
    assert train_rows["date"].max() < pd.Timestamp(validation.target_dates.min())
    assert len(train.targets) + len(validation.targets) + len(test.targets) == 200 - 10


def test_normalisation_equals_statistics_of_the_training_slice_alone():
    bars = random_walk_bars(200)
    prepared = prepared_from(bars, **walk_params())
    validation_start = pd.Timestamp(prepared.splits["validation"].target_dates.min())
    # Recompute from the training rows only: the windows whose target precedes validation.
    train_rows = bars[bars["date"] < validation_start].reset_index(drop=True)
    alone = features.make_windows(train_rows, FeatureParams(window=10, volume=True))
    flat = alone.inputs.reshape(-1, 5).astype(np.float64)
    stats = prepared.normalisation
    np.testing.assert_allclose(stats.mean, flat.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats.std, flat.std(axis=0), rtol=1e-9)
    assert stats.target_scale == pytest.approx(np.sqrt(np.mean(alone.targets.astype(np.float64) ** 2)))
    # and changing any later price leaves them untouched
    later = bars.copy()
    later.loc[later["date"] >= validation_start, ["open", "high", "low", "close"]] *= 3.0
    assert prepared_from(later, **walk_params()).normalisation == stats


def test_split_by_dates():
    bars = random_walk_bars(200)  # business days from 2018-01-02
    prepared = prepared_from(bars, **walk_params(split={
        "validation_start": "2018-06-01", "test_start": "2018-08-01"}))
    assert str(prepared.splits["validation"].target_dates.min()) == "2018-06-01"
    assert str(prepared.splits["test"].target_dates.min()) == "2018-08-01"
    assert str(prepared.splits["train"].target_dates.max()) == "2018-05-31"


def test_tutorial_inputs_are_the_tutorials_x_and_y():
    bars = random_walk_bars(30)
    x, y = features.tutorial_sequence(bars)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.shape == (29, 4) and y.shape == (29, 1)
    np.testing.assert_array_equal(x[:, 0], bars["open"].to_numpy(np.float32)[:-1])
    np.testing.assert_array_equal(x[:, 1], bars["close"].to_numpy(np.float32)[:-1])
    np.testing.assert_array_equal(x[:, 2], bars["high"].to_numpy(np.float32)[:-1])
    np.testing.assert_array_equal(x[:, 3], bars["low"].to_numpy(np.float32)[:-1])
    np.testing.assert_array_equal(y[:, 0], bars["close"].to_numpy(np.float32)[1:])


def test_too_few_rows_for_window_and_splits():
    with pytest.raises(DataError, match=r"walk.csv: too few rows: 20 rows .* features.window=10"):
        prepared_from(random_walk_bars(20), **walk_params())


def test_too_few_rows_in_one_split():
    with pytest.raises(DataError, match="^walk.csv: too few rows: the test split gets 0 samples"):
        prepared_from(random_walk_bars(200), **walk_params(split={
            "validation_start": "2018-06-01", "test_start": "2019-06-01"}))


def test_volume_feature_needs_a_volume_column():
    with pytest.raises(DataError, match="no volume column, but features.volume is true"):
        prepared_from(random_walk_bars(200).drop(columns="volume"), **walk_params())
    without = prepared_from(random_walk_bars(200).drop(columns="volume"),
                            **walk_params(features={"volume": False, "window": 10}))
    assert without.splits["train"].inputs.shape[-1] == 4


def run_prepare(workspace, **overrides):
    write_params(workspace, tiny_params(**overrides))
    return cli.main(["prepare"])


def test_stage_writes_outputs_and_mlflow_run(workspace):
    random_walk_bars(200).to_csv(workspace / "walk.csv", index=False)
    assert run_prepare(workspace, **walk_params()) == 0
    directory = workspace / "data" / "prepared"
    assert sorted(p.name for p in directory.iterdir()) == ["bars.csv", "prepared.json", "tutorial.npz", "windows.npz"]
    summary = json.loads((directory / "prepared.json").read_text())
    assert summary["rows"] == 200
    assert sum(s["samples"] for s in summary["splits"].values()) == 190
    assert len(summary["source_sha256"]) == 64
    windows = layout.read_windows(directory)
    assert len(windows["test"].targets) == summary["splits"]["test"]["samples"]

    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("nextclose-prepare").experiment_id])
    assert run.data.params["data.source"] == "csv"
    assert run.data.params["features.window"] == "10"
    assert run.data.metrics["train_samples"] == summary["splits"]["train"]["samples"]
    assert run.data.tags["test_first_target"] == summary["splits"]["test"]["first_target"]
    assert run.data.tags["stage"] == "prepare"
    assert run.inputs.dataset_inputs[0].dataset.digest == summary["source_sha256"][:16]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "normalisation.json" in artifacts


def test_bad_input_leaves_previous_outputs_untouched(workspace, capsys):
    random_walk_bars(200).to_csv(workspace / "walk.csv", index=False)
    assert run_prepare(workspace, **walk_params()) == 0
    directory = workspace / "data" / "prepared"
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    broken = random_walk_bars(200)
    broken.loc[150, "high"] = broken.loc[150, "low"] / 2
    broken.to_csv(workspace / "walk.csv", index=False)
    assert run_prepare(workspace, **walk_params()) == 2
    message = capsys.readouterr().err
    day = broken.loc[150, "date"].strftime("%Y-%m-%d")
    assert f"walk.csv: {day}: high" in message
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert sorted(p.name for p in workspace.joinpath("data").iterdir()) == ["prepared", "raw"]  # no temp left


def test_bad_input_on_first_run_creates_nothing(workspace, capsys):
    (workspace / "walk.csv").write_text("date,open,high,low,close,volume\n2018-01-02,1,2,0.5,1.5,10\n")
    assert run_prepare(workspace, **walk_params()) == 2
    assert "too few rows" in capsys.readouterr().err
    assert not (workspace / "data").exists() or not any((workspace / "data").iterdir())


def test_msft_default_range(workspace):
    assert run_prepare(workspace) == 0  # tiny params: MSFT 2016-01-01 to 2017-06-30
    summary = json.loads((workspace / "data/prepared/prepared.json").read_text())
    assert summary["source"] == "pmdarima.datasets.load_msft"
    assert summary["first_date"] == "2016-01-04"
    assert summary["last_date"] == "2017-06-30"


def test_local_sources_keep_their_raw_bars(workspace):
    assert run_prepare(workspace) == 0
    raw = json.loads((workspace / "data/raw/raw.json").read_text())
    assert raw["source"] == "msft" and raw["first_date"] == "1986-03-13"
    from nextclose.bars import bars_hash, read_csv_bars

    assert bars_hash(read_csv_bars(workspace / "data/raw/bars.csv")) == raw["bars_sha256"]


def network_bars(n=260):
    """An akshare-shaped answer (stock_zh_index_daily: date objects, int volume) of a walk."""
    walk = random_walk_bars(n, start="2017-06-01")
    frame = walk.assign(date=walk["date"].dt.date, volume=walk["volume"].astype("int64"))
    return frame[["date", "open", "high", "low", "close", "volume"]]


def test_network_source_is_fetched_once_then_reused_from_data_raw(workspace, monkeypatch, capsys):
    from nextclose import sources

    calls = []

    def fake_akshare(code, start, end):
        calls.append((code, start, end))
        return network_bars()

    monkeypatch.setitem(sources.CALLS, "akshare", fake_akshare)
    params = {"data": {"source": "akshare", "symbol": "000300", "start": "2018-01-01", "end": "2018-06-29"}}
    assert run_prepare(workspace, **params) == 0
    assert calls == [("sh000300", pd.Timestamp("2018-01-01").date(), pd.Timestamp("2018-06-29").date())]
    raw = json.loads((workspace / "data/raw/raw.json").read_text())
    assert (raw["source"], raw["library_symbol"], raw["start"]) == ("akshare", "sh000300", "2018-01-01")
    assert raw["fetched_at"] and raw["first_date"] == "2018-01-01"
    assert "fetched akshare 000300 bars" in capsys.readouterr().out

    assert run_prepare(workspace, **params) == 0  # same params: no second fetch
    assert len(calls) == 1
    assert "reused akshare 000300 bars" in capsys.readouterr().out
    summary = json.loads((workspace / "data/prepared/prepared.json").read_text())
    assert summary["source_sha256"] == raw["bars_sha256"]

    params["data"]["end"] = "2018-07-31"  # a new range: fetched again
    assert run_prepare(workspace, **params) == 0
    assert len(calls) == 2


def test_failed_fetch_leaves_previous_raw_data_intact(workspace, monkeypatch, capsys):
    from nextclose import sources

    monkeypatch.setitem(sources.CALLS, "baostock", lambda code, start, end: network_bars())
    params = {"data": {"source": "baostock", "symbol": "sh.000300", "start": "2018-01-01", "end": "2018-06-29"}}
    assert run_prepare(workspace, **params) == 0
    before = {p.name: p.read_bytes() for p in (workspace / "data/raw").iterdir()}

    monkeypatch.setitem(sources.CALLS, "baostock", lambda code, start, end: network_bars().iloc[:0])
    params["data"]["start"] = "2019-01-01"
    params["data"]["end"] = "2019-06-28"
    assert run_prepare(workspace, **params) == 2
    message = capsys.readouterr().err
    assert "baostock" in message and "2019-01-01" in message
    assert {p.name: p.read_bytes() for p in (workspace / "data/raw").iterdir()} == before


def test_symbol_is_checked_with_the_params(tmp_path):
    from nextclose.params import ParamsError, load_params

    path = write_params(tmp_path, tiny_params(data={"source": "akshare", "symbol": "600519"}))
    with pytest.raises(ParamsError, match="data.symbol"):
        load_params(path)
    path.write_text(path.read_text().replace("symbol: '600519'", "symbol: 000300"))  # octal 192
    with pytest.raises(ParamsError, match="quote it"):
        load_params(path)
    path.write_text(path.read_text().replace("symbol: 000300", "symbol: 399001"))
    assert load_params(path).data.symbol == "399001"


def test_a_stage_whose_inputs_are_missing_names_the_stage_to_run(workspace, capsys):
    assert cli.main(["train"]) == 2
    assert "data/prepared/windows.npz: not found; run `nextclose prepare`" in capsys.readouterr().err
    assert cli.main(["tune"]) == 2
    assert "run `nextclose prepare`" in capsys.readouterr().err
    assert cli.main(["evaluate"]) == 2
    assert "models/train.json: not found; run `nextclose train`" in capsys.readouterr().err


def test_data_path_naming_a_directory_is_a_clear_error(workspace, capsys):
    (workspace / "exports").mkdir()
    assert run_prepare(workspace, data={"source": "csv", "path": "exports", "start": None, "end": None}) == 2
    assert "exports: is a directory, not a CSV file" in capsys.readouterr().err


def test_the_summary_states_rows_dates_splits_and_statistics():
    bars = random_walk_bars(200)  # business days from 2018-01-02
    prepared = prepared_from(bars, **walk_params())
    summary = prepared.summary()
    assert list(summary) == ["source", "source_sha256", "rows", "first_date", "last_date", "splits",
                             "normalisation", "tutorial"]
    assert summary["source"] == "walk.csv" and summary["source_sha256"] == bars_hash(bars)
    assert (summary["rows"], summary["first_date"], summary["last_date"]) == (200, "2018-01-02", "2018-10-08")
    # 190 samples: round(190 * 0.15) = 28 (round half to even) each for validation and test
    dates = bars["date"].dt.strftime("%Y-%m-%d").tolist()
    assert summary["splits"] == {
        "train": {"samples": 134, "first_target": dates[10], "last_target": dates[143]},
        "validation": {"samples": 28, "first_target": dates[144], "last_target": dates[171]},
        "test": {"samples": 28, "first_target": dates[172], "last_target": dates[199]},
    }
    assert summary["normalisation"] == {
        "feature_names": features.feature_names(True), "mean": prepared.normalisation.mean,
        "std": prepared.normalisation.std, "target_scale": prepared.normalisation.target_scale}
    assert summary["tutorial"] == {"steps": 199}
    np.testing.assert_array_equal(prepared.tutorial_target_dates,
                                  bars["date"].to_numpy().astype("datetime64[D]")[1:])


def test_the_date_range_cuts_the_bars_before_anything_else():
    bars = random_walk_bars(200)
    prepared = prepared_from(bars, data={"source": "csv", "path": "walk.csv", "start": "2018-02-01",
                                         "end": "2018-08-31"})
    kept = bars[(bars["date"] >= "2018-02-01") & (bars["date"] <= "2018-08-31")].reset_index(drop=True)
    assert prepared.bars["date"].tolist() == kept["date"].tolist()
    assert prepared.source_hash == bars_hash(kept)
    tutorial_x, tutorial_y = features.tutorial_sequence(kept)
    np.testing.assert_array_equal(prepared.tutorial_x, tutorial_x)
    np.testing.assert_array_equal(prepared.tutorial_y, tutorial_y)


def test_without_the_volume_feature_the_volume_column_is_dropped_before_hashing():
    bars = random_walk_bars(200)
    prepared = prepared_from(bars, **walk_params(features={"volume": False, "window": 10}))
    assert "volume" not in prepared.bars
    assert prepared.source_hash == bars_hash(bars.drop(columns="volume"))
    assert prepared.normalisation.feature_names == features.feature_names(False)


def test_fifteen_samples_are_enough_and_fourteen_are_not():
    # window 10: 25 rows give 15 samples, five for each split when the dates cut them so
    bars = random_walk_bars(25)
    dates = bars["date"].dt.strftime("%Y-%m-%d")
    split = {"validation_start": dates[15], "test_start": dates[20]}
    prepared = prepared_from(bars, **walk_params(split=split))
    assert [len(prepared.splits[name].targets) for name in features.SPLITS] == [5, 5, 5]
    with pytest.raises(DataError, match=(
            r"^walk.csv: too few rows: 24 rows between data.start and data.end, but features.window=10 "
            r"plus 15 samples for the three splits need 25$")):
        prepared_from(bars.iloc[:24], **walk_params(split=split))


def test_every_refusal_names_the_source():
    broken = random_walk_bars(200)
    broken.loc[5, "high"] = broken.loc[5, "low"] * 0.5
    with pytest.raises(DataError, match="^walk.csv: 2018-01-09: high .* is below max"):
        prepared_from(broken, **walk_params())
    with pytest.raises(DataError, match="^walk.csv: no rows between data.start 2030-01-01 and data.end null"):
        prepared_from(random_walk_bars(200), data={"source": "csv", "path": "walk.csv", "start": "2030-01-01",
                                                   "end": None})

"""tune.objective: the validation loss (minimised, as always) or, on a panel, the validation Rank
IC (maximised): each objective its own study, the default's name unchanged, rank_ic refused where
there is nothing to rank, and its value the mean daily Rank IC of the served ensemble's forecasts."""

from __future__ import annotations

import json
import typing

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from scipy import stats

from nextclose import cli, features, layout, panel_evaluation, training
from nextclose import study as studies
from nextclose.params import ParamsError, TuneParams, parse_params
from nextclose.stages import tune as tune_stage

from helpers import REPO, random_walk_bars, tiny_params, write_params

SUMMARY = {"source_sha256": "ab" * 32, "splits": {"train": {"samples": 10}},
           "normalisation": {"mean": [0.0], "std": [1.0]}}


def tiny(**overrides):
    return parse_params(tiny_params(**overrides))


def ranked(**overrides):
    tune = {"objective": "rank_ic"} | overrides.pop("tune", {})
    return tiny(tune=tune, **overrides)


# --- the study's identity and direction --------------------------------------------------------------

def test_every_objective_params_allow_has_a_direction_and_names():
    assert set(studies.OBJECTIVES) == set(typing.get_args(typing.get_type_hints(TuneParams)["objective"]))
    assert tiny().tune.objective == studies.DEFAULT_OBJECTIVE == "val_loss"  # params.yaml's


def test_the_default_objective_leaves_the_fingerprint_as_it_was():
    """Studies tuned before tune.objective existed keep their names, and their trials."""
    params = tiny()
    assert "tune.objective" not in studies.fixed_settings(params)
    fingerprint = studies.study_fingerprint(studies.data_identity(SUMMARY), studies.search_space(params.tune),
                                            studies.fixed_settings(params))
    assert fingerprint == "3a23a8169d"  # what the code before tune.objective gave for these inputs


def test_the_committed_study_is_still_the_default_objectives_study():
    """reports/tune_study.json (and dvc.lock's tune stage) name a study the default params still open."""
    prepared = REPO / "data" / "prepared" / "prepared.json"
    if not prepared.is_file():
        pytest.skip("data/prepared is not checked out (dvc pull)")
    params = parse_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert params.tune.objective == "val_loss"
    fingerprint = studies.study_fingerprint(studies.data_identity(json.loads(prepared.read_text())),
                                            studies.search_space(params.tune), studies.fixed_settings(params))
    committed = json.loads((REPO / "reports" / "tune_study.json").read_text())["study_name"]
    assert committed == f"{params.tune.study_name}-{fingerprint}"


def test_each_objective_opens_its_own_study_in_its_own_direction(tmp_path):
    location = str(tmp_path / "journal.log")
    loss, is_new, _ = studies.open_study(tiny(), SUMMARY, location)
    assert is_new and loss.direction == optuna.study.StudyDirection.MINIMIZE
    rank, is_new, others = studies.open_study(ranked(), SUMMARY, location)
    assert is_new and rank.direction == optuna.study.StudyDirection.MAXIMIZE
    assert rank.study_name != loss.study_name and others == [loss.study_name]
    assert rank.user_attrs["fixed_settings"] == studies.fixed_settings(tiny()) | {"tune.objective": "rank_ic"}
    # back to each: the same study again, never a mix of the two objectives' values
    assert studies.open_study(tiny(), SUMMARY, location)[0].study_name == loss.study_name
    again, is_new, _ = studies.open_study(ranked(), SUMMARY, location)
    assert again.study_name == rank.study_name and not is_new
    assert again.direction == optuna.study.StudyDirection.MAXIMIZE


def test_an_unknown_objective_is_refused_naming_the_key():
    with pytest.raises(ParamsError, match=r"tune.objective: 'ic' is not one of 'val_loss', 'rank_ic'"):
        tiny(tune={"objective": "ic"})


# --- the validation Rank IC ----------------------------------------------------------------------------

class OutputNetwork:
    """A served ensemble stand-in answering the given outputs (in each symbol's scaled units)."""

    def __init__(self, outputs):
        self.outputs = np.asarray(outputs, np.float32)

    def __call__(self, inputs):
        assert len(inputs) == len(self.outputs)  # one slice: fewer windows than FORWARD_CHUNK
        return self.outputs[:, None]


def windows_of(dates, symbols, last_close, next_close) -> features.PanelWindows:
    n = len(dates)
    return features.PanelWindows(np.zeros((n, 3, 1), np.float32), np.zeros(n, np.float32),
                                 np.asarray(last_close, np.float64), np.asarray(next_close, np.float64),
                                 np.asarray(dates, "datetime64[D]"), np.asarray(symbols))


def test_the_rank_ic_ranks_outputs_scaled_back_per_symbol():
    """AAA's output is the larger, but BBB's scale is four times AAA's: BBB forecasts the larger
    return (2% against 1%), and the realised returns agree: +1 each day, not -1."""
    dates = ["2020-01-02", "2020-01-02", "2020-01-03", "2020-01-03"]
    symbols = ["AAA", "BBB", "AAA", "BBB"]
    validation = windows_of(dates, symbols, [100.0, 10.0, 100.0, 10.0], [100.5, 10.3, 100.2, 10.1])
    scales = np.array([0.01, 0.04, 0.01, 0.04])
    network = OutputNetwork([1.0, 0.5, 1.0, 0.5])
    assert tune_stage.validation_rank_ic(network, validation, scales) == (1.0, 2)
    assert tune_stage.validation_rank_ic(network, validation, np.ones(4)) == (-1.0, 2)  # unscaled: wrong way


def test_a_forecast_that_ranks_nothing_scores_no_skill():
    validation = windows_of(["2020-01-02"] * 2 + ["2020-01-03"] * 2, ["AAA", "BBB"] * 2,
                            [100.0, 10.0] * 2, [101.0, 9.0, 99.0, 11.0])
    assert tune_stage.validation_rank_ic(OutputNetwork(np.zeros(4)), validation, np.ones(4)) == (0.0, 0)


# --- the stage ----------------------------------------------------------------------------------------

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def momentum_panel(n: int = 200) -> pd.DataFrame:
    """Each symbol's next move follows its own last move (different draws, price levels and
    volatilities): the members learn something, so the ensemble's forecasts differ across symbols."""
    parts = []
    for number, symbol in enumerate(SYMBOLS):
        rng = np.random.default_rng(20 + number)
        returns = np.zeros(n)
        for t in range(1, n):
            returns[t] = 0.6 * returns[t - 1] + rng.normal(0, 0.01 * (1 + number))
        bars = random_walk_bars(n, seed=20 + number)
        close = 10.0 ** (number + 1) * np.exp(np.cumsum(returns))
        bars["open"] = np.r_[close[0], close[:-1]]
        bars["close"] = close
        bars["high"] = np.maximum(bars["open"], close) * 1.001
        bars["low"] = np.minimum(bars["open"], close) * 0.999
        parts.append(bars.assign(symbol=symbol))
    table = pd.concat(parts)[["date", "symbol", "open", "high", "low", "close", "volume"]]
    return table.assign(date=table["date"].dt.strftime("%Y-%m-%d"))


def panel_params(symbols=SYMBOLS, **overrides) -> dict:
    return tiny_params(data={"source": "panel_csv", "path": "panel.csv", "start": None, "end": None},
                       **overrides)


def independent_rank_ic_mean(network) -> float:
    """The mean over validation days of scipy's Spearman correlation across symbols of the forecast
    return with the realised one, the forecasts as evaluate makes them (prepared windows, scaled
    per symbol, answers scaled back)."""
    validation = layout.read_windows()["validation"]
    assert isinstance(validation, features.PanelWindows)
    forecast, _ = panel_evaluation.forecast_panel(network, validation, layout.read_panel_normalisation())
    frame = pd.DataFrame({"date": validation.target_dates, "signal": forecast / validation.last_close - 1,
                          "realised": validation.next_close / validation.last_close - 1})
    daily = [stats.spearmanr(day["signal"], day["realised"]).statistic
             for _, day in frame.groupby("date") if len(day) >= 2]
    return float(np.nanmean(daily))


def test_rank_ic_tunes_a_panel_maximising_the_ensembles_validation_rank_ic(workspace, monkeypatch, capsys):
    momentum_panel().to_csv(workspace / "panel.csv", index=False)
    write_params(workspace, panel_params(tune={"objective": "rank_ic", "n_trials": 1, "steps_min": 40,
                                               "steps_max": 40}, train={"eval_every": 10}))
    assert cli.main(["prepare"]) == 0
    trained: list[training.TrainResult] = []
    train_model = training.train_model

    def keeping(*args, **kwargs):
        trained.append(train_model(*args, **kwargs))
        return trained[-1]

    monkeypatch.setattr(training, "train_model", keeping)
    capsys.readouterr()
    assert cli.main(["tune"]) == 0
    out = capsys.readouterr().out
    assert "objective rank_ic on one fold: trials report no intermediate values" in out and " val_rank_ic " in out

    (summary,) = optuna.get_all_study_summaries(studies.open_storage("optuna-journal.log"), False)
    study = optuna.load_study(study_name=summary.study_name, storage=studies.open_storage("optuna-journal.log"))
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.metric_names == ["val_rank_ic"]
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.intermediate_values == {}  # val_losses would mix directions: nothing for the pruner
    (days,) = trial.user_attrs["fold_val_rank_ic_days"]
    assert days > 10  # the forecasts rank: the value is a real mean
    assert trial.user_attrs["fold_val_rank_ic"] == [trial.value]
    # the value is the Rank IC of the served ensemble (the first training: the trial's; the second
    # retrains the best values for MLflow), recomputed the way evaluate forecasts a panel
    assert len(trained) == 2 and len(trained[0].member_seeds) == 2
    assert trial.value == pytest.approx(independent_rank_ic_mean(trained[0].model), rel=1e-6, abs=1e-9)
    assert trial.value != 0.0

    report = json.loads((workspace / "reports/tune.json").read_text())
    assert report["objective"] == {"val_loss": 0, "rank_ic": 1}
    assert report["best_value"] == trial.value and report["best_trial"] == 0
    assert report["persistence_val_rank_ic"] is None  # no change ranks nothing
    assert list(report) == ["objective", "best_value", "best_trial", "persistence_val_loss",
                            "persistence_val_rank_ic", "trials", "trials_total"]
    assert not any(isinstance(v, str) for v in report.values())  # DVC metrics: no text
    assert study.user_attrs["persistence_val_rank_ic"] is None

    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("nextclose-tune").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (child,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert child.data.metrics["val_rank_ic"] == pytest.approx(trial.value)
    assert child.data.metrics["best_val_loss"] == pytest.approx(trained[0].best_loss)
    assert parent.data.metrics["val_rank_ic"] == pytest.approx(trial.value)
    assert parent.data.params["tune.objective"] == "rank_ic"


def test_rank_ic_on_a_single_series_is_refused_naming_the_key(workspace, capsys):
    assert cli.main(["prepare"]) == 0  # the tiny params' series: MSFT
    write_params(workspace, tiny_params(tune={"objective": "rank_ic"}))
    assert cli.main(["tune"]) == 2
    err = capsys.readouterr().err
    assert ("nextclose tune: error: tune.objective: rank_ic ranks symbols against each other on each validation "
            "day, but data/prepared holds one series: nothing to rank; use tune.objective: val_loss") in err
    assert not (workspace / "optuna-journal.log").exists()  # refused before a study was opened


def test_rank_ic_on_a_panel_of_one_symbol_is_refused(workspace, capsys):
    table = momentum_panel()
    table[table["symbol"] == "BBB"].to_csv(workspace / "panel.csv", index=False)
    write_params(workspace, panel_params(tune={"objective": "rank_ic"}))
    assert cli.main(["prepare"]) == 0
    assert cli.main(["tune"]) == 2
    assert "tune.objective: rank_ic ranks symbols" in (err := capsys.readouterr().err)
    assert "holds a panel of one symbol (BBB)" in err
    assert not (workspace / "optuna-journal.log").exists()


def test_make_objective_refuses_rank_ic_without_a_panel(workspace):
    assert cli.main(["prepare"]) == 0
    study = optuna.create_study(direction="maximize")
    with pytest.raises(tune_stage.ObjectiveError, match="tune.objective: rank_ic"):
        tune_stage.make_objective(ranked(), study, tune_stage.read_folds(ranked()))

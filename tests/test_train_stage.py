"""The train stage end to end: files, the MLflow run and its loadable model."""

import csv
import json
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from nextclose import cli, forecaster
from nextclose.layout import read_prepared_bars, read_windows

from helpers import tiny_params, write_params


def train_run(client):
    (run,) = client.search_runs([client.get_experiment_by_name("nextclose-train").experiment_id])
    return run


def test_lstm_train_stage(workspace, capsys):
    assert cli.main(["prepare"]) == 0
    assert cli.main(["train"]) == 0
    out = capsys.readouterr().out
    assert "step 0/60: loss 1.0000" in out  # plain lines when not on a terminal

    summary = json.loads((workspace / "models/train.json").read_text())
    assert summary["kind"] == "lstm" and summary["steps_run"] == 60
    assert "run_id" not in summary  # models/ holds what the model is, not which run made it
    trained_by = json.loads((workspace / ".nextclose/train_run.json").read_text())
    with open(workspace / "reports/train_history.csv") as stream:
        rows = list(csv.DictReader(stream))
    # two members (tiny params): the ensemble's columns, then each member's
    assert list(rows[0]) == ["step", "loss", "val_loss", "served_val_loss", "member1_loss", "member1_val_loss",
                             "member2_loss", "member2_val_loss"]
    assert [int(r["step"]) for r in rows] == [0, 20, 40, 60]
    assert [m["seed"] for m in summary["members"]] == [42, 43]
    assert float(rows[-1]["loss"]) == pytest.approx((float(rows[-1]["member1_loss"])
                                                     + float(rows[-1]["member2_loss"])) / 2)

    client = mlflow.MlflowClient()
    run = train_run(client)
    assert run.info.run_id == trained_by["run_id"]
    params = run.data.params
    assert params["model.hidden_units"] == "4" and params["train.steps"] == "60"
    assert params["base.seed"] == "42" and params["model.kind"] == "lstm"
    curve = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in curve] == [0, 20, 40, 60]
    assert [m.value for m in curve] == pytest.approx([float(r["val_loss"]) for r in rows])
    assert run.data.metrics["best_val_loss"] == pytest.approx(summary["best_val_loss"])
    member_curve = client.get_metric_history(run.info.run_id, "member2_val_loss")
    assert [m.value for m in member_curve] == pytest.approx([float(r["member2_val_loss"]) for r in rows])
    best_losses = [m["best_loss"] for m in summary["members"]]
    assert run.data.metrics["member_best_loss_mean"] == pytest.approx(np.mean(best_losses))
    assert run.data.metrics["member_best_loss_std"] == pytest.approx(np.std(best_losses, ddof=1))
    assert "trained 2 lstm members (seeds 42..43)" in out
    assert run.data.tags["stage"] == "train" and run.data.tags["pipeline_execution"]

    # The logged model is a Keras-flavour LoggedModel that pyfunc loads and predicts with.
    # where params.yaml may say null, the values used, for DVC to show (a top-level params file)
    assert yaml.safe_load((workspace / "reports/resolved_params.yaml").read_text()) == {
        "resolved": {"hidden_units": 4, "learning_rate": 0.001, "steps": 60}}
    logged = mlflow.get_logged_model(trained_by["model_id"])
    assert logged.source_run_id == run.info.run_id
    assert logged.name == "lstm-h4-lr0_001-s60-x2"
    # the Models tab shows the model's own figures: the curve at its best step, not the untrained start
    linked = {metric.key: metric for metric in logged.metrics}
    assert linked["best_val_loss"].value == pytest.approx(summary["best_val_loss"])
    assert linked["val_loss"].step == summary["best_step"] > 0
    # It takes bars: named columns, an input example of real bars, the interval's inference params
    pyfunc_model = mlflow.pyfunc.load_model(trained_by["model_uri"])
    assert pyfunc_model.metadata.get_input_schema().input_names() == ["date", "open", "high", "low", "close", "volume"]
    assert pyfunc_model.metadata.get_output_schema().input_names() == list(forecaster.OUTPUT_COLUMNS)
    assert {p.name: p.default for p in pyfunc_model.metadata.get_params_schema().params} == {
        "interval": 0.9, "every_day": False}
    info = mlflow.models.get_model_info(trained_by["model_uri"])
    example = mlflow.models.Model.load(trained_by["model_uri"]).load_input_example(
        mlflow.artifacts.download_artifacts(trained_by["model_uri"]))
    prepared = read_prepared_bars(workspace / "data/prepared")
    validation = prepared.loc[prepared["split"] == "validation"].tail(10)
    assert example["date"].tolist() == validation["date"].tolist()  # ISO dates, as bars.csv has them
    np.testing.assert_array_equal(example["close"], validation["close"])
    assert "python_function" in info.flavors and "keras" not in info.flavors
    # its forecasts over the test windows are the network's (models/), in prices
    windows = read_windows(workspace / "data/prepared")["test"]
    local = keras.saving.load_model(workspace / "models/model.keras")
    answer = pyfunc_model.predict(prepared.drop(columns=["split"]), params={"every_day": True})
    matched = answer.set_index("date").loc[pd.to_datetime(windows.target_dates).strftime("%Y-%m-%d")]
    np.testing.assert_allclose(matched["forecast"], windows.last_close * np.exp(np.asarray(local(windows.inputs))
                                                                              .ravel().astype(np.float64)), rtol=1e-6)
    # the calibration beside the model: one residual per validation day
    calibration = json.loads((workspace / "models/calibration.json").read_text())
    assert (calibration["window"], calibration["volume"]) == (10, True)
    assert len(calibration["residuals"]) == len(read_windows(workspace / "data/prepared")["validation"].targets)
    # what it needs to load is pinned to what trained it
    requirements = Path(mlflow.pyfunc.get_model_dependencies(trained_by["model_uri"]))
    pinned = dict(line.split("==") for line in requirements.read_text().split())
    from importlib import metadata
    assert {name: pinned.get(name) for name in ("mlflow", "keras", "numpy")} == {
        name: metadata.version(name) for name in ("mlflow", "keras", "numpy")}
    assert any(name.startswith("tensorflow") for name in pinned)


def test_tutorial_train_stage(workspace, capsys):
    write_params(workspace, tiny_params(model={"kind": "tutorial", "hidden_units": 4},
                                        data={"start": "2017-01-01", "end": "2017-11-10"},
                                        train={"steps": 30, "eval_every": 10, "log_every": 10}))
    assert cli.main(["prepare"]) == 0
    assert cli.main(["train"]) == 0
    out = capsys.readouterr().out
    assert "step 0: cost" in out and "last prediction" in out
    with open(workspace / "reports/train_history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["step", "loss", "member1_loss", "member2_loss"]
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 29]
    state = np.load(workspace / "models/tutorial_state.npz")
    sequence = np.load(workspace / "data/prepared/tutorial.npz")
    assert state["x"].shape == (2, *sequence["x"].shape)  # each member trains its own copy
    run = train_run(mlflow.MlflowClient())
    assert run.data.params["model.kind"] == "tutorial"
    assert run.data.metrics["final_cost"] == pytest.approx(float(rows[-1]["loss"]))
    predictions = mlflow.pyfunc.load_model(json.loads(
        (workspace / ".nextclose/train_run.json").read_text())["model_uri"]).predict(sequence["x"][None])
    assert np.asarray(predictions).shape == (1, len(sequence["y"]))

    # The logged model loads in a process that never imports nextclose.
    import os
    import subprocess
    import sys

    model_uri = json.loads((workspace / ".nextclose/train_run.json").read_text())["model_uri"]
    np.save(workspace / "x.npy", sequence["x"][None])
    script = (
        "import sys, mlflow, numpy as np; "
        f"out = mlflow.pyfunc.load_model({model_uri!r}).predict(np.load('x.npy')); "
        "assert not any(m.startswith('nextclose') for m in sys.modules), 'nextclose imported'; "
        "print(np.asarray(out).shape)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=workspace, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith(f"(1, {len(sequence['y'])})")

    # It has no held-out forecast to serve: predict refuses it, from models/ or from the registry
    capsys.readouterr()
    assert cli.main(["predict"]) == 2
    assert "models: a model of the tutorial kind, which has no held-out forecast" in capsys.readouterr().err
    assert cli.main(["predict", "--model", model_uri]) == 2
    refused = capsys.readouterr().err
    assert f"{model_uri} does not take bars (it takes a tensor): a model of the tutorial kind" in refused


def test_train_failure_keeps_previous_model(workspace, monkeypatch):
    assert cli.main(["prepare"]) == 0
    assert cli.main(["train"]) == 0
    before = (workspace / "models/model.keras").read_bytes()
    from nextclose import served

    def broken(*args, **kwargs):
        raise RuntimeError("tracking store went away")

    monkeypatch.setattr(served, "log_bars_model", broken)
    write_params(workspace, tiny_params(train={"steps": 40}))
    with pytest.raises(RuntimeError):
        cli.main(["train"])
    assert (workspace / "models/model.keras").read_bytes() == before


@pytest.mark.slow  # two trainings end to end (the pipeline's tests check dvc.lock's hash too)
def test_the_same_inputs_give_byte_identical_outputs(workspace):
    """models/ and data/prepared are DVC outputs: a rerun must reproduce their bytes, or
    dvc status could never tell that a reproduced model is the committed one."""
    from pathlib import Path

    def files(folder):
        return {p.relative_to(workspace): p.read_bytes() for p in sorted(Path(workspace, folder).rglob("*"))
                if p.is_file()}

    assert cli.main(["prepare"]) == 0
    assert cli.main(["train"]) == 0
    first = files("models") | files("data/prepared")
    first_run = json.loads((workspace / ".nextclose/train_run.json").read_text())["run_id"]
    assert cli.main(["prepare"]) == 0
    assert cli.main(["train"]) == 0
    assert files("models") | files("data/prepared") == first
    assert json.loads((workspace / ".nextclose/train_run.json").read_text())["run_id"] != first_run
    assert keras.saving.load_model(workspace / "models/model.keras") is not None  # still a valid archive


@pytest.mark.slow
def test_champion_skips_a_version_whose_training_run_was_killed(workspace, capsys):
    assert cli.main(["prepare"]) == 0
    versions = []
    for steps in (20, 40):
        write_params(workspace, tiny_params(train={"steps": steps, "learning_rate": 0.01}))
        assert cli.main(["train"]) == 0
        versions.append(json.loads((workspace / ".nextclose/train_run.json").read_text()))
    client = mlflow.MlflowClient()
    client.set_terminated(versions[1]["run_id"], status="KILLED")
    capsys.readouterr()
    assert cli.main(["champion"]) == 0
    assert "note: passed over version 2 (no best_val_loss)" in capsys.readouterr().out
    chosen = client.get_model_version_by_alias("nextclose-lstm", "champion").version
    assert str(chosen) == str(versions[0]["registered_version"])

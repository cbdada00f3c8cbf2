"""End to end with the real tools: dvc repro / status / exp run, a real MLflow server,
and reproducing a result from a commit. Each test works in a temporary copy of the repo."""

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import REPO, free_port, tiny_params, wait_until_up
from helpers.tools import BIN, commit, copy_repo, run, tool_env

pytestmark = pytest.mark.slow


def pipeline_params(**overrides) -> dict:
    """Tiny, but every stage for real: ARIMA on, two tuning trials."""
    defaults = {"evaluate": {"arima": True}, "tune": {"n_trials": 2}}
    for section, values in overrides.items():
        defaults[section] = {**defaults.get(section, {}), **values}
    return tiny_params(**defaults)


def set_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def mlflow_runs(repo: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, max_results=1000)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One real `dvc repro` of the whole pipeline in a copy of the repo."""
    repo = copy_repo(tmp_path_factory.mktemp("repo"), pipeline_params())
    output = run(["dvc", "repro"], repo)
    return repo, output


def test_repro_runs_every_stage_then_nothing_then_only_what_a_param_touches(pipeline):
    repo, output = pipeline
    assert stages_run(output) == {"prepare", "train", "evaluate", "backtest", "tune"}
    for path in ("reports/metrics.json", "reports/predictions.csv", "reports/train_history.csv",
                 "reports/backtest.json", "reports/backtest.csv",
                 "reports/best_params.yaml", "reports/tune.json", "models/model.keras", "dvc.lock"):
        assert (repo / path).exists(), path
    assert (repo / "mlflow.db").exists() and (repo / "optuna-journal.log").exists()
    assert "up to date" in run(["dvc", "status"], repo)

    # DVC's metrics are the headline numbers; the full reports are read by path
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo))
    scores = {path: figures for rev in metrics.values() for path, figures in rev["data"].items()}
    assert set(scores) == {"reports/scores.json", "reports/backtest_scores.json", "reports/tune.json"}
    assert list(scores["reports/scores.json"]["data"]) == ["rmse_ratio"]
    assert list(scores["reports/backtest_scores.json"]["data"]) == ["backtest_rmse_ratio"]
    full = run(["dvc", "metrics", "show", "--json", "reports/metrics.json", "reports/backtest.json"], repo)
    assert "rmse_ratio_persistence" in full and "persistence" in full
    assert "dm_p_value" in full and "interval_coverage" in full  # backtest.json's pooled figures
    plots = run(["dvc", "plots", "show", "--json"], repo)
    titles = [next(iter(plot)) for plot in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]]
    assert all(json.dumps(title) in plots for title in titles) and '"errors"' not in plots, plots[-3000:]

    # train.learning_rate is read by train and the backtest's training: prepare and tune don't rerun.
    set_params(repo, pipeline_params(train={"learning_rate": 0.005}))
    output = run(["dvc", "repro"], repo)
    assert stages_run(output) == {"train", "evaluate", "backtest"}
    assert "Stage 'prepare' didn't change, skipping" in output
    # backtest.folds is read by the backtest only.
    set_params(repo, pipeline_params(train={"learning_rate": 0.005}, backtest={"folds": 3}))
    assert stages_run(run(["dvc", "repro"], repo)) == {"backtest"}
    # evaluate.arima is read by evaluate and the backtest (its baselines) only.
    set_params(repo, pipeline_params(train={"learning_rate": 0.005}, backtest={"folds": 3},
                                     evaluate={"arima": False}))
    assert stages_run(run(["dvc", "repro"], repo)) == {"evaluate", "backtest"}
    set_params(repo, pipeline_params())
    run(["dvc", "repro"], repo)


def test_a_panel_runs_the_whole_pipeline_offline(tmp_path):
    """data.source sp500 (the 20 stocks skfolio ships): every stage, the panel's files and
    figures, the DVC plots, and nothing left to rerun."""
    repo = copy_repo(tmp_path, pipeline_params(data={"source": "sp500", "start": "2021-06-01", "end": None},
                                               features={"volume": False}))
    output = run(["dvc", "repro"], repo)
    assert stages_run(output) == {"prepare", "train", "evaluate", "backtest", "tune"}
    assert "up to date" in run(["dvc", "status"], repo)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    backtest = json.loads((repo / "reports/backtest.json").read_text())
    table = pd.read_csv(repo / "reports/panel_predictions.csv")
    assert metrics["panel"]["symbols"] == backtest["panel"]["symbols"] == 20 == table["symbol"].nunique()
    relative = (table["model"] - table["actual"]) / table["persistence"]
    reference = (table["persistence"] - table["actual"]) / table["persistence"]
    pooled = float(np.sqrt(np.mean(relative**2) / np.mean(reference**2)))
    assert metrics["panel"]["rmse_ratio_persistence"] == pytest.approx(pooled, rel=1e-9)
    ranking = json.loads((repo / "reports/cross_section.json").read_text())
    assert json.loads((repo / "reports/scores.json").read_text()) == {
        "rmse_ratio": metrics["rmse_ratio_persistence"], "rank_ic": ranking["rank_ic"]["mean"],
        "rank_ic_p_value": ranking["rank_ic"]["p_value"],
        "long_short_annual_return": ranking["long_short"]["annual_return"]}
    # every daily Rank IC recomputes from the scored symbol-days
    table = table.assign(signal=table["model"] / table["persistence"] - 1,
                         realised=table["actual"] / table["persistence"] - 1)
    spearman = table.groupby("date").apply(lambda day: day["signal"].corr(day["realised"], method="spearman"))
    daily = pd.read_csv(repo / "reports/cross_section.csv").set_index("date")
    np.testing.assert_allclose(daily["rank_ic"], spearman.loc[daily.index], atol=1e-12)
    assert ranking["days"] == len(daily) and ranking["symbols"] == 20 and ranking["long_short"]["top_k"] == 4
    walk = backtest["cross_section"]
    backtest_scores = json.loads((repo / "reports/backtest_scores.json").read_text())
    assert backtest_scores["backtest_rank_ic"] == walk["rank_ic"]["mean"]
    assert len(pd.read_csv(repo / "reports/backtest_cross_section.csv")) == walk["days"] > 0
    plots = run(["dvc", "plots", "show", "--json"], repo)
    assert '"errors"' not in plots, plots[-3000:]
    printed = run(["nextclose", "predict", "--json"], repo)  # stdout, then a note on stderr
    answers = json.loads(next(line for line in printed.splitlines() if line.startswith("[")))
    assert len(answers) == 20 and {a["symbol"] for a in answers} == set(table["symbol"])
    assert sorted(a["rank"] for a in answers) == list(range(1, 21))
    assert [a["side"] for a in answers].count("long") == [a["side"] for a in answers].count("short") == 4


def test_runs_of_one_execution_share_an_id_and_carry_git_tags(pipeline):
    repo, _ = pipeline
    head = run(["git", "rev-parse", "HEAD"], repo).strip()
    runs = [r for r in mlflow_runs(repo) if r.data.tags.get("git_commit") == head]
    first = {}
    for stage in ("prepare", "train", "evaluate", "backtest", "tune"):
        stage_runs = sorted((r for r in runs if r.data.tags.get("stage") == stage
                             and "mlflow.parentRunId" not in r.data.tags),
                            key=lambda r: r.info.start_time)
        first[stage] = stage_runs[0]
    executions = {r.data.tags["pipeline_execution"] for r in first.values()}
    assert len(executions) == 1
    # copy_repo committed every tracked file and DVC's outputs are untracked: a clean tree
    assert {r.data.tags["git_dirty"] for r in first.values()} == {"false"}


def api(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_real_mlflow_server_serves_one_executions_runs(pipeline):
    repo, _ = pipeline
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{repo / 'mlflow.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=repo, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/health", server, 120)
        experiments = api(base, "experiments/search", {"max_results": 100})["experiments"]
        ids = [e["experiment_id"] for e in experiments if e["name"].startswith("nextclose-")]
        train = json.loads((repo / ".nextclose/train_run.json").read_text())
        execution = next(r for r in mlflow_runs(repo) if r.info.run_id == train["run_id"]).data.tags[
            "pipeline_execution"]
        found = api(base, "runs/search", {
            "experiment_ids": ids, "max_results": 100,
            "filter": f"tags.pipeline_execution = '{execution}'",
        })["runs"]
        by_stage = {}
        for found_run in found:
            tags = {t["key"]: t["value"] for t in found_run["data"].get("tags", [])}
            if "mlflow.parentRunId" not in tags:
                by_stage[tags["stage"]] = found_run
        assert {"train", "evaluate"} <= set(by_stage)
        train_run = by_stage["train"]
        params = {p["key"]: p["value"] for p in train_run["data"]["params"]}
        assert params["model.hidden_units"] == "4"
        assert {m["key"] for m in train_run["data"]["metrics"]} >= {"loss", "val_loss", "best_val_loss"}
        evaluate_metrics = {m["key"] for m in by_stage["evaluate"]["data"]["metrics"]}
        assert {"rmse", "rmse_ratio_persistence", "baseline/persistence_rmse", "baseline/arima_rmse"
                } <= evaluate_metrics
        models = api(base, "logged-models/search", {"experiment_ids": ids, "max_results": 50})["models"]
        model_ids = {m["info"]["model_id"] for m in models}
        assert train["model_id"] in model_ids
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_exp_run_temp_and_queue_land_in_the_workspace_stores(pipeline):
    repo, _ = pipeline
    commit(repo, "dvc repro's results")  # as a user would: the experiments' baseline has its figures
    run(["dvc", "exp", "run", "--temp", "-S", "model.hidden_units=3", "-n", "temp-h3"], repo)
    run(["dvc", "exp", "run", "--queue", "-S", "model.hidden_units=5", "-S", "train.learning_rate=0.002",
         "-n", "queued-h5"], repo)
    run(["dvc", "queue", "start", "--jobs", "1"], repo)
    deadline = time.time() + 900
    while time.time() < deadline:
        status = run(["dvc", "queue", "status"], repo)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert "Failed" not in status, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    text = json.dumps(shown)
    assert "temp-h3" in text and "queued-h5" in text
    runs = mlflow_runs(repo)
    by_experiment = {r.data.tags.get("dvc_experiment") for r in runs}
    assert {"temp-h3", "queued-h5"} <= by_experiment
    trained = {r.data.params.get("model.hidden_units") for r in runs if r.data.tags.get("stage") == "train"}
    assert {"3", "5"} <= trained
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))  # nothing left in the copies

    # One table answers "what changed, and what did it do": each execution's run in the `nextclose`
    # experiment is named after its change and holds that change's params and its test figures.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nextclose")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # opens on the runs
    executions = {r.data.tags.get("dvc_experiment"): r for r in client.search_runs([experiment.experiment_id])}
    temp, queued = executions["temp-h3"], executions["queued-h5"]
    assert temp.info.run_name == "hidden_units=3 [temp-h3]"
    assert queued.info.run_name == "hidden_units=5 learning_rate=0.002 [queued-h5]"
    for execution, units in ((temp, "3"), (queued, "5")):
        assert execution.data.params["model.hidden_units"] == units
        evaluated = next(r for r in runs if r.data.tags.get("stage") == "evaluate"
                         and r.data.tags.get("dvc_experiment") == execution.data.tags["dvc_experiment"])
        assert execution.data.metrics["test_rmse_ratio"] == evaluated.data.metrics["rmse_ratio_persistence"]
        assert {"test_rmse_ratio_members_mean", "test_rmse_ratio_members_std", "backtest_rmse_ratio",
                "val_loss"} <= set(execution.data.metrics)
    assert queued.data.params["train.learning_rate"] == "0.002"
    # DVC shows the values the nulls resolved to
    resolved = run(["dvc", "params", "diff", "--all", "--targets", "reports/resolved_params.yaml"], repo)
    assert "resolved.hidden_units" in resolved and "4" in resolved, resolved

    run(["dvc", "queue", "remove", "--success"], repo)  # else DVC adds the queue's State and Executor columns
    # ... and `dvc exp show --only-changed` fits a 120-column terminal for the two-param change,
    # once the changed data dependencies' hashes (models/, the learning curve) and the resolved
    # params (which repeat the changed ones) are dropped
    shown = run(["dvc", "exp", "show", "--only-changed", "--drop", "models|reports/.*|resolved.*",
                 "--no-pager"], repo, columns=120)
    assert max(len(line) for line in shown.splitlines()) <= 120 and "…" not in shown, shown
    header = next(line for line in shown.splitlines() if "Experiment" in line).split()
    assert header == ["Experiment", "Created", "rmse_ratio", "backtest_rmse_ratio", "model.hidden_units",
                      "train.learning_rate"], shown


def test_a_commit_reproduces_its_metrics_bit_for_bit(tmp_path):
    repo = copy_repo(tmp_path, pipeline_params())
    set_params(repo, pipeline_params(tune={"n_trials": 1}))
    run(["dvc", "repro"], repo)
    commit(repo, "result A")
    committed = (repo / "reports/metrics.json").read_bytes()
    committed_history = (repo / "reports/train_history.csv").read_bytes()

    set_params(repo, pipeline_params(tune={"n_trials": 1}, model={"hidden_units": 6}))
    run(["dvc", "repro"], repo)
    assert (repo / "reports/metrics.json").read_bytes() != committed
    commit(repo, "result B")

    run(["git", "checkout", "-q", "HEAD~1"], repo)
    run(["dvc", "repro", "--force", "train", "evaluate"], repo)
    assert (repo / "reports/metrics.json").read_bytes() == committed
    assert (repo / "reports/train_history.csv").read_bytes() == committed_history
    assert "up to date" in run(["dvc", "status"], repo)


@pytest.mark.slow
def test_the_committed_headline_figures_reproduce(tmp_path):
    """What the README promises of `make run`: the committed params give the committed
    reports, bit for bit (prepare, train, evaluate, backtest), and so the generated figures of
    README.md and docs/results/ (tests/test_results_pages.py holds those to the committed reports)."""
    workspace = tmp_path / "work"
    workspace.mkdir()
    shutil.copy2(REPO / "params.yaml", workspace / "params.yaml")
    env = tool_env() | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    for stage in ("prepare", "train", "evaluate", "backtest"):
        done = subprocess.run([str(BIN / "nextclose"), stage], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
    for report in ("metrics.json", "predictions.csv", "train_history.csv", "backtest.json", "backtest.csv"):
        assert (workspace / "reports" / report).read_bytes() == (REPO / "reports" / report).read_bytes(), report


@pytest.mark.slow
def test_one_member_gives_the_single_models_figures_bit_for_bit(tmp_path):
    """``train.seeds: 1`` is the single network of before the ensembles, exactly: the committed
    params with one member give commit 9f1de14's reports (tests/data/one_member/, copied from
    that commit; its metrics.json had no ``seeds`` block)."""
    workspace = tmp_path / "work"
    workspace.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["seeds"] = 1
    set_params(workspace, params)
    env = tool_env() | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    for stage in ("prepare", "train", "evaluate"):
        done = subprocess.run([str(BIN / "nextclose"), stage], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
    golden = REPO / "tests/data/one_member"
    metrics = json.loads((workspace / "reports/metrics.json").read_text())
    assert metrics.pop("seeds")["count"] == 1
    # Since then MASE is on log prices and new figures were added; every other figure is the same.
    before = json.loads((golden / "metrics.json").read_text())
    for scores, old_scores in [(metrics, before), *((metrics["baselines"][name], figures)
                                                    for name, figures in before["baselines"].items())]:
        assert {key: value for key, value in scores.items() if key in old_scores and key not in ("mase", "baselines")} \
            == {key: value for key, value in old_scores.items() if key not in ("mase", "baselines")}
    predictions = pd.read_csv(workspace / "reports/predictions.csv")
    old_predictions = pd.read_csv(golden / "predictions.csv")
    pd.testing.assert_frame_equal(predictions[old_predictions.columns], old_predictions, check_exact=True)
    assert (workspace / "reports/train_history.csv").read_bytes() == (golden / "train_history.csv").read_bytes()


def test_a_retrained_model_has_the_committed_hash(pipeline):
    """Same inputs, same bytes: dvc.lock's hash of models/ does not move when train reruns."""
    repo, _ = pipeline

    def models_hash():
        lock = yaml.safe_load((repo / "dvc.lock").read_text())
        (models,) = [out for out in lock["stages"]["train"]["outs"] if out["path"] == "models"]
        return models["md5"]

    before = models_hash()
    run(["dvc", "repro", "--force", "train"], repo)
    assert models_hash() == before
    assert "up to date" in run(["dvc", "status"], repo)

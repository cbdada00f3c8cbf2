"""Run tags: the commit, whether the tree was dirty, the DVC experiment, one execution id."""

import json
import os
import socket
import subprocess
import time

from nextclose import tracking


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_run_tags_name_the_commit_and_whether_the_tree_is_dirty(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@nextclose.invalid")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    git(tmp_path, "add", "params.yaml")
    git(tmp_path, "commit", "-q", "-m", "one")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("NEXTCLOSE_EXECUTION_ID", "exec-1")
    tags = tracking.run_tags("train")
    assert tags == {"stage": "train", "pipeline_execution": "exec-1",
                    "git_commit": git(tmp_path, "rev-parse", "HEAD"), "git_dirty": "false",
                    "worker_host": socket.gethostname(), "worker_pid": str(os.getpid()),
                    "worker_started": tags["worker_started"]}
    assert float(tags["worker_started"]) <= time.time()
    (tmp_path / "untracked.txt").write_text("outputs DVC writes are not tracked by git\n")
    assert tracking.run_tags("train")["git_dirty"] == "false"
    (tmp_path / "params.yaml").write_text("a: 2\n")
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-lark")
    tags = tracking.run_tags("evaluate")
    assert tags["git_dirty"] == "true" and tags["dvc_experiment"] == "brisk-lark"


def test_a_stage_run_by_hand_gets_its_own_execution_id(monkeypatch):
    monkeypatch.delenv("NEXTCLOSE_EXECUTION_ID", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    first, second = tracking.pipeline_execution_id(), tracking.pipeline_execution_id()
    assert len(first) == 16 and first != second


def test_the_workspace_root_of_a_dvc_temporary_copy_is_the_workspace(tmp_path, monkeypatch):
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "run" / "abc123"
    copy.mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(copy))
    assert tracking.workspace_root() == (tmp_path / "repo").resolve()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{(tmp_path / 'repo').resolve() / 'mlflow.db'}"


# --- the execution's run: named after what changed, one per execution --------------------------

def committed_repo(path, params_text):
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@nextclose.invalid")
    git(path, "config", "user.name", "t")
    (path / "params.yaml").write_text(params_text)
    git(path, "add", "params.yaml")
    git(path, "commit", "-q", "-m", "params")
    return git(path, "rev-parse", "--short", "HEAD")


PARAMS = ("base: {seed: 42}\nfeatures: {volume: true}\nmodel: {hidden_units: null, layers: 1}\n"
          "train: {learning_rate: null, seed: 42}\ntune: {seed: 42, storage: null}\n")


def test_an_execution_is_named_after_the_params_it_changed(tmp_path, monkeypatch):
    commit = committed_repo(tmp_path, PARAMS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert tracking.changed_params() == {}
    assert tracking.execution_name() == f"main@{commit}"
    monkeypatch.setenv("DVC_EXP_NAME", "woozy-dado")
    assert tracking.execution_name() == "woozy-dado"
    (tmp_path / "params.yaml").write_text(PARAMS.replace("hidden_units: null", "hidden_units: 16")
                                          .replace("learning_rate: null", "learning_rate: 0.003"))
    assert tracking.changed_params() == {"model.hidden_units": 16, "train.learning_rate": 0.003}
    assert tracking.execution_name() == "hidden_units=16 learning_rate=0.003 [woozy-dado]"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert tracking.execution_name() == "hidden_units=16 learning_rate=0.003"
    # a key whose last part another param shares is named whole; null and booleans as YAML says them;
    # only what the experiment is names it: no base, tune or other section, no connection setting
    changed = PARAMS.replace("seed: 42", "seed: 7").replace("layers: 1", "layers: null")
    (tmp_path / "params.yaml").write_text(
        changed.replace("volume: true", "volume: false")
        .replace("storage: null", "storage: 'postgresql://tuner@db/optuna'") + "extra: {quick: true}\n")
    assert tracking.execution_name() == "volume=false layers=null train.seed=7"


def test_outside_git_an_execution_is_the_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    (tmp_path / "params.yaml").write_text(PARAMS)
    assert tracking.changed_params() == {} and tracking.execution_name() == "workspace"


def test_stages_of_one_execution_fill_one_run_of_the_pipeline_experiment(workspace, monkeypatch, capsys):
    import mlflow

    from nextclose.params import load_params

    monkeypatch.setenv("NEXTCLOSE_EXECUTION_ID", "exec-7")
    params = load_params()
    with tracking.stage_run("train") as train:
        train.record(tracking.execution_params(params), {"val_loss": 1.3})
    with tracking.stage_run("evaluate") as evaluate:
        evaluate.record(tracking.execution_params(params), {"test_rmse_ratio": 0.99})
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("nextclose")
    (execution,) = client.search_runs([experiment.experiment_id])
    assert execution.info.run_name == train.name == evaluate.name
    assert execution.info.status == "FINISHED"
    assert execution.data.metrics == {"val_loss": 1.3, "test_rmse_ratio": 0.99}
    assert execution.data.params["model.hidden_units"] == "4"  # resolved, as trained
    assert execution.data.params["tune.storage"] == "None" and execution.data.params["tune.n_trials"] == "3"
    assert execution.data.tags["pipeline_execution"] == "exec-7" and "stage" not in execution.data.tags
    assert execution.data.tags["stage_run.train"] == f"{train.info.experiment_id}/{train.info.run_id}"
    assert f"/runs/{evaluate.info.run_id})" in execution.data.tags["mlflow.note.content"]
    # the experiments open on the runs, say what they hold, and carry the saved view
    for name in ("nextclose", "nextclose-train", "nextclose-evaluate"):
        tags = client.get_experiment_by_name(name).tags
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        assert tags["mlflow.note.content"] == tracking.DESCRIPTIONS[name]
        view = json.loads(tags[f"mlflow.sharedViewState.{tracking.VIEW_KEY}"])
        state = json.loads(view["state"])
        metrics, view_params = tracking.VIEWS[name]
        assert state["orderByKey"] == f"metrics.`{metrics[0]}`"
        assert state["selectedColumns"][: len(metrics)] == [f"metrics.`{m}`" for m in metrics]
        assert f"params.`{view_params[0]}`" in state["selectedColumns"]

    # Another execution gets a run of its own; a param changed within one keeps its first value.
    monkeypatch.setenv("NEXTCLOSE_EXECUTION_ID", "exec-8")
    with tracking.stage_run("evaluate") as other:
        other.record({"model.hidden_units": 4}, {"test_rmse_ratio": 1.01})
        other.record({"model.hidden_units": 8}, {"test_rmse_ratio": 1.02})
    assert "already ran with other values of model.hidden_units" in capsys.readouterr().out
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.pipeline_execution = 'exec-8'")
    assert len(runs) == 1 and runs[0].data.params["model.hidden_units"] == "4"
    assert runs[0].data.metrics["test_rmse_ratio"] == 1.02


def test_a_logged_model_is_named_after_what_it_is(workspace):
    from nextclose.params import load_params, parse_params

    from helpers import tiny_params

    assert tracking.model_name(load_params()) == "lstm-h4-lr0_001-s60-x2"
    tutorial = parse_params(tiny_params(model={"kind": "tutorial", "hidden_units": None},
                                        train={"learning_rate": None, "steps": None, "seeds": 1}))
    assert tracking.model_name(tutorial) == "tutorial-h128-lr0_1-s30000-x1"


# --- a tracking server (team mode) ---------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_with_a_tracking_server_experiments_keep_the_servers_artifact_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.artifact_root() == (tmp_path.resolve() / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    assert tracking.artifact_root() == (tmp_path.resolve() / "mlartifacts").as_uri()
    for uri in ("http://127.0.0.1:5000", "https://mlflow.example.com/prefix"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        assert tracking.artifact_root() is None  # the server's default, mlflow-artifacts:/, applies


def test_a_tracking_server_that_does_not_answer_is_named_without_its_password(monkeypatch):
    import pytest

    uri = f"http://alice:s3cr%2Ft@127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(tracking.TrackingServerDown) as raised:
        tracking.open_client()
    message = str(raised.value)
    assert time.monotonic() - started < 10  # not MLflow's minutes of retries
    assert message.startswith(f"MLFLOW_TRACKING_URI=http://alice:***@127.0.0.1:{uri.rsplit(':', 1)[1]}: ")
    assert "s3cr" not in message and "unset MLFLOW_TRACKING_URI" in message


def test_a_tracking_server_that_answers_with_an_error_is_left_to_mlflow():
    """A server behind a login answers 401 to the probe: it is up, and MLflow's calls say the rest."""
    import http.server
    import threading

    seen = []

    class LoginRequired(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), LoginRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tracking.check_server(f"http://bob:pw@127.0.0.1:{server.server_port}/mlflow/")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/mlflow/health"]

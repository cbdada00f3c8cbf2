"""Team mode end to end, as two machines would run it (docs/how-to/team.md).

Real servers on loopback, started by ``scripts/services.py`` as a user starts them: PostgreSQL
(the one ``NEXTCLOSE_TEST_POSTGRES`` names, as ``.ci/postgres`` prints it), moto's S3-compatible
server and ``mlflow server`` on PostgreSQL with its artifacts proxied to the bucket. Two clones in
two folders stand for the two machines; they share only the servers, a bare git repository and
the DVC remote in the bucket.
"""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers import REPO, free_port, tiny_params
from helpers.tools import BUCKET, bucket_keys, commit, copy_repo, run, tool_env


def metrics(repo: Path) -> dict:
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo))
    return {path: figures for rev in shown.values() for path, figures in rev["data"].items()}


def test_services_name_a_postgresql_server_that_does_not_answer_without_its_password(tmp_path):
    port = free_port()
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "services.py"), "start", "--state", str(tmp_path), "--free-ports",
         "--postgres", f"postgresql+psycopg2://team:s3cret@127.0.0.1:{port}/optuna"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and done.stdout == ""
    shown = f"postgresql+psycopg2://team:***@127.0.0.1:{port}/optuna"
    assert done.stderr.startswith(f"PostgreSQL at {shown}: cannot make the database 'mlflow' ("), done.stderr
    assert "s3cret" not in done.stderr and "--postgres" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "pids.json").exists()  # nothing was started, nothing is left running


@pytest.mark.slow
def test_a_second_machine_pulls_a_result_and_both_track_into_one_server(services, tmp_path):
    # A client of the servers sets two variables; the S3 credentials are for DVC alone.
    stores = {"MLFLOW_TRACKING_URI": services["MLFLOW_TRACKING_URI"], "OPTUNA_STORAGE": services["OPTUNA_STORAGE"]}
    credentials = {"AWS_ACCESS_KEY_ID": services["AWS_ACCESS_KEY_ID"],
                   "AWS_SECRET_ACCESS_KEY": services["AWS_SECRET_ACCESS_KEY"]}
    study_prefix = f"team-{uuid.uuid4().hex[:8]}"  # the database outlives the test: a study of its own

    # Machine A: the project, a DVC remote in the bucket (no credentials in .dvc/config), one experiment.
    a = copy_repo(tmp_path / "a", tiny_params(tune={"study_name": study_prefix, "n_trials": 1}))
    run(["dvc", "remote", "add", "-d", "team", f"s3://{BUCKET}/dvc"], a)
    run(["dvc", "remote", "modify", "team", "endpointurl", services["NEXTCLOSE_S3_ENDPOINT"]], a)
    assert services["AWS_SECRET_ACCESS_KEY"] not in (a / ".dvc" / "config").read_text()
    run(["dvc", "exp", "run", "-n", "on-a"], a, env=stores)
    commit(a, "results of on-a")
    run(["dvc", "push"], a, env=credentials)
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    run(["git", "push", "-q", str(origin), "main"], a)

    # Machine B: another folder, no mlflow.db, nothing but the clone and the remote.
    b = tmp_path / "b"
    run(["git", "clone", "-q", str(origin), str(b)], tmp_path)
    run(["git", "config", "user.email", "b@nextclose.invalid"], b)
    run(["git", "config", "user.name", "machine b"], b)
    run(["dvc", "pull"], b, env=credentials)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], b)
    assert metrics(b) == metrics(a) and "reports/scores.json" in metrics(a)
    assert (b / "models" / "model.keras").read_bytes() == (a / "models" / "model.keras").read_bytes()
    run(["dvc", "exp", "run", "-n", "on-b", "-S", "model.hidden_units=3"], b, env=stores)

    # Both executions are on the one server, and their artifacts in the bucket, none in the clones.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=services["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    by_stage = {(r.data.tags.get("dvc_experiment"), r.data.tags.get("stage")): r for r in runs
                if "mlflow.parentRunId" not in r.data.tags}
    keys = bucket_keys(services, "mlflow/")
    for clone, name, units in ((a, "on-a", "4"), (b, "on-b", "3")):
        assert {(name, stage) for stage in ("train", "evaluate", "backtest")} <= set(by_stage), name
        assert by_stage[name, "train"].data.params["model.hidden_units"] == units
        trained = json.loads((clone / ".nextclose" / "train_run.json").read_text())
        assert trained["run_id"] == by_stage[name, "train"].info.run_id
        model = client.get_logged_model(trained["model_id"])
        assert model.artifact_location.startswith("mlflow-artifacts:/"), model.artifact_location
        assert any(trained["model_id"] in key and key.endswith("MLmodel") for key in keys), name
        evaluated = by_stage[name, "evaluate"].info.run_id
        figures = [f.path for f in client.list_artifacts(evaluated)]  # read back through the server
        assert figures and all(any(f"{evaluated}/artifacts/{path}" in key for key in keys) for path in figures)
        assert not (clone / "mlartifacts").exists() and not (clone / "mlflow.db").exists()
    assert any(key.startswith("dvc/") for key in bucket_keys(services, "dvc/"))

    # Two tune workers, one per clone, add to one study in PostgreSQL and track into one server.
    workers = [subprocess.Popen([sys.executable, "-m", "nextclose", "tune", "--n-trials", "1"], cwd=clone,
                                env=tool_env() | stores, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for clone in (a, b)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    import optuna

    storage = optuna.storages.RDBStorage(services["OPTUNA_STORAGE"])
    (study_name,) = [s.study_name for s in optuna.get_all_study_summaries(storage, False)
                     if s.study_name.startswith(study_prefix)]
    trials = optuna.load_study(study_name=study_name, storage=storage).trials
    assert len(trials) == 3 and all(t.state.is_finished() for t in trials)  # on-a's tune stage, then the two
    pids = {str(worker.pid) for worker in workers}
    assert {str(t.system_attrs["nextclose:worker"]["pid"]) for t in trials[1:]} == pids
    for clone in (a, b):
        assert json.loads((clone / "reports" / "tune_study.json").read_text())["study_name"] == study_name
    tune_runs = client.search_runs([client.get_experiment_by_name("nextclose-tune").experiment_id],
                                   filter_string="attributes.status = 'FINISHED'", max_results=100)
    assert pids <= {r.data.tags.get("worker_pid") for r in tune_runs if "mlflow.parentRunId" not in r.data.tags}

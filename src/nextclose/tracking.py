"""Where runs and files go: the workspace root, the MLflow store, run tags.

The only module besides the stage programs that calls MLflow's fluent API.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

from nextclose.errors import UserError

EXPERIMENT_PREFIX = "nextclose"
# `dvc exp run --temp` and `--queue` run stages in a copy under this folder of the workspace.
DVC_TEMP_EXPERIMENTS = (".dvc", "tmp", "exps")


def workspace_root() -> Path:
    """The repository the user works in, even when DVC runs us in a temporary copy."""
    root = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    parts = root.parts
    for i in range(len(parts) - len(DVC_TEMP_EXPERIMENTS) + 1):
        if parts[i : i + len(DVC_TEMP_EXPERIMENTS)] == DVC_TEMP_EXPERIMENTS:
            return Path(*parts[:i])
    return root


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the SQLite file ``mlflow.db`` at the workspace root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace_root() / 'mlflow.db'}"


def artifact_root() -> str:
    """Where a new experiment stores artifacts: next to the default database, never in a temp copy."""
    return (workspace_root() / "mlartifacts").as_uri()


@contextlib.contextmanager
def store_lock() -> Iterator[None]:
    """Hold a file lock beside a SQLite tracking store while it may be created or upgraded.

    MLflow creates (and migrates) its tables when a process first opens the store; two
    processes doing that at once on a new file fail ("duplicate column name", "table
    _alembic_tmp_experiments already exists"). A server store does this once, on its side.
    """
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        yield
        return
    from nextclose import atomic

    database = Path(uri[len("sqlite:///"):])
    database.parent.mkdir(parents=True, exist_ok=True)
    with atomic.file_lock(database.with_name(database.name + ".lock")):
        yield


def open_client() -> Any:
    """An MLflow client of the tracking store, its tables made (call it under :func:`store_lock`)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    client.search_experiments(max_results=1)  # opens the store: creates or upgrades its tables
    return client


class ForeignStore(UserError):
    """The workspace's own store keeps its artifacts in another workspace (a copied checkout)."""


def check_artifact_location(location: str) -> None:
    """Refuse to log into another workspace's artifact folder.

    The embedded store records an absolute ``file://`` artifact folder per experiment when
    it is first made, so a copied or moved checkout would keep writing into the original.
    """
    from urllib.parse import unquote, urlparse

    root = workspace_root()
    # (MLflow itself exports MLFLOW_TRACKING_URI once a URI is set: compare, don't test for it)
    if tracking_uri() != f"sqlite:///{root / 'mlflow.db'}" or not location.startswith("file:"):
        return  # a store the user chose keeps its artifacts where it was set up to
    folder = Path(unquote(urlparse(location).path)).resolve()
    if folder.is_relative_to(root):
        return
    raise ForeignStore(
        f"{root / 'mlflow.db'} was made in another workspace: its experiments store artifacts in "
        f"{folder}, not under {root}. This checkout was copied or moved: keep its runs apart with a "
        f"store of its own (mv mlflow.db mlflow.db.copied; the next run makes a new one), or point "
        f"MLFLOW_TRACKING_URI at the store you mean to share"
    )


def mark_dead_runs(client: Any) -> list[str]:
    """Mark KILLED every nextclose run still RUNNING whose process on this host is gone.

    A killed stage cannot end its own run. The run gets the tag ``killed_reason``, and a
    model version it registered the tag ``run_killed`` (``nextclose champion`` skips it).
    Runs of other hosts are left alone: whether their process lives cannot be seen here.
    """
    import socket

    from nextclose import processes

    experiments = [e.experiment_id for e in client.search_experiments(
        filter_string=f"name LIKE '{EXPERIMENT_PREFIX}-%'")]
    if not experiments:
        return []
    running = client.search_runs(
        experiments, filter_string=f"attributes.status = 'RUNNING' and tags.worker_host = '{socket.gethostname()}'",
        max_results=1000,
    )
    notes = []
    for run in running:
        tags = run.data.tags
        worker = {"host": tags.get("worker_host"), "pid": tags.get("worker_pid"), "started": tags.get("worker_started")}
        if processes.is_alive(worker) is not False:
            continue
        client.set_tag(run.info.run_id, "killed_reason",
                       f"its process {worker['pid']} on {worker['host']} ended without finishing the run")
        client.set_terminated(run.info.run_id, status="KILLED")
        for version in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
            client.set_model_version_tag(version.name, version.version, "run_killed", "true")
        notes.append(f"marked run {run.info.run_id} ({tags.get('stage', '?')}) KILLED: its process is gone")
    return notes


def _git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _dvc_process_id() -> Optional[str]:
    """Identify the ``dvc`` process that runs this stage: every stage it runs shares it."""
    if not os.environ.get("DVC_ROOT"):
        return None
    import psutil

    process = psutil.Process().parent()
    while process is not None:
        try:
            command = process.cmdline()
            # `dvc ...`, `python /path/to/dvc ...` or `python -m dvc ...`
            if any(Path(arg).name == "dvc" for arg in command[:2]) or command[1:3] == ["-m", "dvc"]:
                return f"{process.pid}-{process.create_time()}"
            process = process.parent()
        except psutil.Error:
            return None
    return None


def pipeline_execution_id() -> str:
    """One id shared by all stage runs of one pipeline execution (one ``dvc repro``/``exp run``).

    ``NEXTCLOSE_EXECUTION_ID`` sets it; under DVC it is derived from the DVC process;
    a stage run by hand gets its own.
    """
    explicit = os.environ.get("NEXTCLOSE_EXECUTION_ID")
    if explicit:
        return explicit
    dvc_process = _dvc_process_id()
    if dvc_process is not None:
        return hashlib.sha1(dvc_process.encode()).hexdigest()[:16]
    return uuid.uuid4().hex[:16]


def run_tags(stage: str) -> dict[str, str]:
    """Tags every stage run carries, so the UI can group and filter runs (and a later run can
    tell that this one's process died: ``worker_host``, ``worker_pid``, ``worker_started``)."""
    from nextclose import processes

    tags = {"stage": stage, "pipeline_execution": pipeline_execution_id()}
    tags.update({f"worker_{key}": str(value) for key, value in processes.this_process().items()})
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["git_commit"] = commit
        status = _git("status", "--porcelain", "--untracked-files=no")
        tags["git_dirty"] = "true" if status else "false"
    experiment = os.environ.get("DVC_EXP_NAME")
    if experiment:
        tags["dvc_experiment"] = experiment
    return tags


@contextlib.contextmanager
def stage_run(stage: str, run_name: Optional[str] = None) -> Iterator[Any]:
    """Open the MLflow run of one stage in the experiment ``nextclose-<stage>``.

    One experiment per stage kind keeps the UI's compare view meaningful: every
    run in it has the same params and metrics as columns.
    """
    import mlflow

    name = f"{EXPERIMENT_PREFIX}-{stage}"
    with store_lock():
        client = open_client()
        for note in mark_dead_runs(client):
            print(f"note: {note}")
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                client.create_experiment(name, artifact_location=artifact_root())
            except mlflow.exceptions.MlflowException:
                pass  # created meanwhile by a stage on another machine
        else:
            check_artifact_location(experiment.artifact_location)
    mlflow.set_experiment(name)
    with mlflow.start_run(run_name=run_name, tags=run_tags(stage)) as run:
        yield run


class _KerasFlavour:
    """``mlflow.keras`` with one fix: the model folder exists before the input example
    is written into it (MLflow 3.17's Keras ``save_model`` writes the example first
    and fails with FileNotFoundError when called from ``log_model``)."""

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path, **kwargs):
        import mlflow.keras

        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)


# What a logged model needs to load; the rest of nextclose is not needed (the graphs are exported).
MODEL_DISTRIBUTIONS = (("keras",), ("numpy",), ("tensorflow", "tensorflow-cpu"))


def model_requirements() -> list[str]:
    """The installed versions of :data:`MODEL_DISTRIBUTIONS`, pinned.

    Given, not inferred: MLflow infers them by loading the model in a subprocess, which costs
    seconds per logged model and finds these same packages.
    """
    from importlib import metadata

    pins = []
    for alternatives in MODEL_DISTRIBUTIONS:
        for distribution in alternatives:
            try:
                pins.append(f"{distribution}=={metadata.version(distribution)}")
                break
            except metadata.PackageNotFoundError:
                continue
    return pins


def log_keras_model(
    model, input_example, name: str = "model", registered_model_name: Optional[str] = None,
    exported: bool = False,
):
    """Log a Keras model as an MLflow LoggedModel (Keras flavour, signature, input example).

    ``exported`` stores the model as a compiled TensorFlow graph instead of a ``.keras``
    file, for networks with custom classes: it then loads where nextclose is not installed.
    """
    import keras
    import numpy as np
    from mlflow.models import Model, infer_signature

    keras.utils.disable_interactive_logging()  # MLflow's check of the example would draw a progress bar

    output = np.asarray(model(input_example))
    return Model.log(
        artifact_path=None,  # MLflow 3 names LoggedModels; the path argument is deprecated
        name=name,
        flavor=_KerasFlavour,
        model=model,
        signature=infer_signature(input_example, output),
        input_example=input_example,
        pip_requirements=model_requirements(),
        registered_model_name=registered_model_name,
        save_exported_model=exported,
    )

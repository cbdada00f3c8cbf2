"""Where runs and files go: the workspace root, the MLflow store, run tags.

It is also the one way to MLflow: :func:`mlflow_api` (the fluent API) and :func:`client` hand out
MLflow with every argument of every call redacted (:mod:`nextclose.redaction`). No other module
imports MLflow's sending API (``tests/test_redaction.py`` scans the code for it).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import subprocess
import time
import types
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

from nextclose import redaction
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


def is_server(uri: str) -> bool:
    """Whether ``uri`` names a tracking server (``http://``, ``https://``): a shared store that
    keeps the artifacts where it was set up to (``--artifacts-destination``), not the workspace."""
    return uri.startswith(("http://", "https://"))


def artifact_root() -> Optional[str]:
    """Where a new experiment stores artifacts: next to the default database, never in a temp copy.

    None for a tracking server: its own default applies (``mlflow-artifacts:/``, which the server
    proxies to its store, so clients need no credentials of that store and write nothing here).
    """
    if is_server(tracking_uri()):
        return None
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


# MLflow's entities that carry a key and a text value (log_batch's params and tags, the registry's
# and logged models' tags): rebuilt with the value redacted.
_KEYED_ENTITIES = ("Param", "RunTag", "ExperimentTag", "ModelVersionTag", "RegisteredModelTag",
                   "LoggedModelTag", "LoggedModelParameter", "InputTag")


def redact_arguments(value: Any) -> Any:
    """``value`` with every string in it redacted: strings, paths, the keys and values of
    mappings, the items of lists, tuples and sets, MLflow's key-value entities, and a dataclass
    (MLflow would log its text). Anything else (numbers, arrays, frames, figures, models) is
    passed as it is."""
    if isinstance(value, str):
        return redaction.redact(value)
    if isinstance(value, Path):
        return type(value)(redaction.redact(str(value)))
    if isinstance(value, dict):
        return {redact_arguments(key): redact_arguments(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)) and not hasattr(value, "_fields"):
        return type(value)(redact_arguments(item) for item in value)
    if type(value).__name__ in _KEYED_ENTITIES and type(value).__module__.startswith("mlflow.entities"):
        return type(value)(redact_arguments(value.key), redact_arguments(value.value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return redaction.redact(str(value))
    return value


# What nextclose reaches through :class:`Redacted`: MLflow's modules, classes and functions it
# uses, by name. Anything else is refused (``log_artifacts`` would upload a folder unread,
# ``autolog`` log on its own): a new use is added here, where its arguments are known to be
# redacted, not reached by accident.
REACHABLE = frozenset({
    # modules and classes
    "data", "pandas_dataset", "models", "Model", "pyfunc", "exceptions", "MlflowException", "tracking",
    "MlflowClient",
    # the fluent API
    "set_experiment", "start_run", "end_run", "active_run", "log_param", "log_params", "log_metric",
    "log_metrics", "set_tag", "set_tags", "log_dict", "log_text", "log_artifact", "log_figure", "log_input",
    "from_pandas", "log", "log_model", "load_model", "get_model_info", "initialize_logged_model",
    # a client's
    "search_experiments", "get_experiment_by_name", "create_experiment", "set_experiment_tag", "search_runs",
    "get_run", "create_run", "log_batch", "set_terminated", "search_model_versions", "set_model_version_tag",
    "get_model_version_by_alias", "set_registered_model_alias", "get_logged_model", "set_logged_model_tags",
    "create_registered_model", "set_registered_model_tag", "update_registered_model",
})


class Redacted:
    """MLflow (the package, a module of it, a class or a client) whose every call gets its
    arguments through :func:`redact_arguments`: run names, tags, params, descriptions, notes,
    logged models' names, params and tags, registry tags, and the text and JSON artifacts.

    Only the names in :data:`REACHABLE` can be reached. Modules and classes reached from it are
    wrapped too (``mlflow.pyfunc.log_model``, ``Model.log``), and so is a client it makes;
    exception classes are not (``except`` needs the class). A text file logged with
    ``log_artifact`` is logged as its redacted text.
    """

    def __init__(self, target: Any):
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name not in REACHABLE:
            raise AttributeError(f"{name}: not reachable through nextclose's redaction boundary "
                                 f"(tracking.REACHABLE lists what is)")
        try:
            attribute = getattr(self._target, name)
        except AttributeError:
            if not isinstance(self._target, types.ModuleType):
                raise
            import importlib  # a module not imported yet (mlflow.data.pandas_dataset)

            attribute = importlib.import_module(f"{self._target.__name__}.{name}")
        if name == "log_artifact":
            return self._log_artifact
        if isinstance(attribute, types.ModuleType):
            return Redacted(attribute)
        if inspect.isclass(attribute):
            return attribute if issubclass(attribute, BaseException) else Redacted(attribute)
        if callable(attribute):
            def call(*args: Any, **kwargs: Any) -> Any:
                return _wrap_client(attribute(*redact_arguments(args), **redact_arguments(kwargs)))
            return call
        return attribute

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _wrap_client(self._target(*redact_arguments(args), **redact_arguments(kwargs)))

    def _log_artifact(self, *args: Any, **kwargs: Any) -> Any:
        """A text file's redacted text, under the file's name (``log_text``); a file that is not
        text as it is. A client's takes the run id first, the fluent API's does not."""
        run = () if isinstance(self._target, types.ModuleType) else args[:1]
        local_path, artifact_path = (list(args[len(run):]) + [None, None])[:2]
        local_path = kwargs.pop("local_path", local_path)
        artifact_path = kwargs.pop("artifact_path", artifact_path)
        path = Path(local_path)
        if path.is_dir():
            raise ValueError(f"{path}: log each file of a folder, so that each is read and redacted")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            return self._target.log_artifact(*run, local_path, redact_arguments(artifact_path), **kwargs)
        name = path.name if artifact_path is None else f"{artifact_path.rstrip('/')}/{path.name}"
        return self.log_text(*run, text, name, **kwargs)


def _wrap_client(value: Any) -> Any:
    """A client that a call made comes back wrapped: its own calls are redacted too."""
    return Redacted(value) if type(value).__name__ == "MlflowClient" else value


def mlflow_api() -> Any:
    """MLflow's fluent API (``mlflow``), every call's arguments redacted: how stages log."""
    import mlflow

    return Redacted(mlflow)


def client() -> Any:
    """An MLflow client of the current tracking URI, every call's arguments redacted."""
    import mlflow

    return Redacted(mlflow.MlflowClient())


class TrackingServerDown(UserError):
    """``MLFLOW_TRACKING_URI`` names a server that does not answer; the message shows no password."""


def check_server(uri: str, timeout: float = 10.0) -> None:
    """Fail at once, naming the variable, when the tracking server does not answer: MLflow's own
    client would retry for minutes and then print a traceback that may hold the URI."""
    import http.client
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    password = redaction.password_in_url(uri)
    if password is not None and parts.password != password:
        # "/", "?", "#" or "@" end a URL's user part: MLflow's client would call another host
        raise TrackingServerDown(
            f"MLFLOW_TRACKING_URI={redaction.redact(uri)}: its password holds a character that a URL's "
            f"user part must percent-encode (/ as %2F, @ as %40, ? as %3F, # as %23)")
    probe = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1], path=parts.path.rstrip("/") + "/health")
    try:
        with urllib.request.urlopen(probe.geturl(), timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answers (behind a login, say): MLflow's own calls say the rest
    except (OSError, ValueError, http.client.HTTPException) as error:
        reason = redaction.redact(str(getattr(error, "reason", None) or error))
        raise TrackingServerDown(
            f"MLFLOW_TRACKING_URI={redaction.redact(uri)}: no MLflow server answers there ({reason}); start it "
            f"(docs/how-to/team.md) or unset MLFLOW_TRACKING_URI to track into the workspace's mlflow.db"
        ) from None


def open_client() -> Any:
    """An MLflow client of the tracking store, its tables made (call it under :func:`store_lock`)."""
    import mlflow

    uri = tracking_uri()
    if is_server(uri):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    opened = client()
    opened.search_experiments(max_results=1)  # opens the store: creates or upgrades its tables
    return opened


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
    a stage run by hand gets its own (:func:`stage_run` reads it once; its nested runs copy it).
    """
    explicit = os.environ.get("NEXTCLOSE_EXECUTION_ID")
    if explicit:
        return explicit
    dvc_process = _dvc_process_id()
    if dvc_process is not None:
        return hashlib.sha1(dvc_process.encode()).hexdigest()[:16]
    return uuid.uuid4().hex[:16]


def _flat(document: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(document, dict):
        return {prefix: document} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in document.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def changed_params(params_file: str | Path = "params.yaml") -> dict[str, Any]:
    """``{"section.key": value}`` of the params that differ from the committed file (git HEAD):
    what this execution varies. Empty outside git or when the file is not committed."""
    import yaml

    path = Path(params_file)
    committed_text = _git("show", f"HEAD:./{path.as_posix()}") if not path.is_absolute() else None
    if committed_text is None or not path.exists():
        return {}
    try:
        committed = _flat(yaml.safe_load(committed_text) or {})
        current = _flat(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError:
        return {}
    return {key: current.get(key) for key in sorted(set(committed) | set(current))
            if current.get(key) != committed.get(key)}


def describe_changes(changes: dict[str, Any], all_keys: Any = ()) -> str:
    """``hidden_units=16 learning_rate=0.003``: each key by its last part unless another param
    shares it (``base.seed`` and ``tune.seed`` stay whole)."""
    leaves = collections.Counter(key.rsplit(".", 1)[-1] for key in {*all_keys, *changes})
    words = []
    for key, value in changes.items():
        leaf = key.rsplit(".", 1)[-1]
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        words.append(f"{leaf if leaves[leaf] == 1 else key}={shown}")
    return " ".join(words)


# The sections whose changes name a run: what the experiment is. Others (tune.storage, the
# evaluation's settings) say how it ran, and a connection setting has no place in a name.
NAMED_SECTIONS = ("model", "train", "data", "features", "backtest")


def execution_name(params_file: str | Path = "params.yaml") -> str:
    """The name of this execution's runs: which :data:`NAMED_SECTIONS` keys changed, then the DVC
    experiment's name (``hidden_units=16 [woozy-dado]``), or the commit (``main@c04d04b``) when
    none changed."""
    import yaml

    changes = {key: value for key, value in changed_params(params_file).items()
               if key.split(".")[0] in NAMED_SECTIONS}
    try:
        all_keys = _flat(yaml.safe_load(Path(params_file).read_text()) or {})
    except (OSError, yaml.YAMLError):
        all_keys = {}
    described = describe_changes(changes, all_keys)
    experiment = os.environ.get("DVC_EXP_NAME")
    if described and experiment:
        return f"{described} [{experiment}]"
    if described or experiment:
        return described or str(experiment)
    commit = _git("rev-parse", "--short", "HEAD")
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if commit:
        return f"{branch}@{commit}" if branch and branch != "HEAD" else commit
    return "workspace"


def run_tags(stage: str, execution: Optional[str] = None) -> dict[str, str]:
    """Tags every stage run carries, so the UI can group and filter runs (and a later run can
    tell that this one's process died: ``worker_host``, ``worker_pid``, ``worker_started``)."""
    from nextclose import processes

    tags = {"stage": stage, "pipeline_execution": execution or pipeline_execution_id()}
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


# The experiment of the whole pipeline: one run per execution, with every param and each
# stage's headline figures, so one runs table answers "what changed, and what did it do?".
PIPELINE_EXPERIMENT = EXPERIMENT_PREFIX
# MLflow 3's UI opens an experiment on the view this tag names (GenAI traces when it is unset).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
DESCRIPTIONS = {
    PIPELINE_EXPERIMENT: (
        "One run per pipeline execution (`dvc repro`, `dvc exp run`), named after what it changed: "
        "every param, and the headline figures of the stages that ran. `test_rmse_ratio` is the "
        "ensemble's test RMSE over persistence's (below 1: better than tomorrow = today); "
        "`backtest_rmse_ratio` the same, walked forward. Each stage's own run is in `nextclose-<stage>`."
    ),
    f"{EXPERIMENT_PREFIX}-prepare": "The prepare stage: the bars read, checked and split; the windows built.",
    f"{EXPERIMENT_PREFIX}-train": (
        "The train stage: the ensemble's learning curve (`loss`, `val_loss`, per member), its best "
        "validation loss, and the registered model."
    ),
    f"{EXPERIMENT_PREFIX}-evaluate": (
        "The evaluate stage, on the test split: `rmse_ratio_persistence` is the model's RMSE over "
        "persistence's; `dm_p_value` the one-sided Diebold-Mariano p-value; `baseline/...` the naive "
        "forecasts' figures; `members/...` the members' spread."
    ),
    f"{EXPERIMENT_PREFIX}-backtest": (
        "The walk-forward backtest: the ensemble retrained before each fold; pooled figures, "
        "per-fold steps, baselines under `baseline/...`."
    ),
    f"{EXPERIMENT_PREFIX}-tune": (
        "The Optuna search: a parent run per `nextclose tune`, a child run per trial; parent and "
        "children share the param and metric names (`best_val_loss`: lower is better; "
        "`persistence_val_loss`: the loss of forecasting no change)."
    ),
}


# A saved view of an experiment's runs table (MLflow 3 reads it from the experiment tag
# `mlflow.sharedViewState.<key>`): the columns that answer "what changed, what did it do",
# sorted by the first metric. Open it from the page's view menu, or by URL (docs/how-to/experiments.md).
VIEW_KEY = "nextclose"
VIEW_NAME = "nextclose: what changed, and what it did"
_TUNED = ("model.hidden_units", "train.learning_rate", "train.steps")
VIEWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # experiment: (metrics, params), shown in order
    PIPELINE_EXPERIMENT: (
        ("test_rmse_ratio", "test_rmse_ratio_members_mean", "test_rmse_ratio_members_std", "backtest_rmse_ratio",
         "test_dm_p_value", "backtest_dm_p_value", "val_loss"),
        (*_TUNED, "train.seeds", "model.kind"),
    ),
    f"{EXPERIMENT_PREFIX}-train": (("best_val_loss", "member_best_loss_mean", "member_best_loss_std"),
                                   (*_TUNED, "train.seeds", "model.kind")),
    f"{EXPERIMENT_PREFIX}-evaluate": (("rmse_ratio_persistence", "members/rmse_ratio_persistence_mean",
                                       "members/rmse_ratio_persistence_std", "dm_p_value", "interval_coverage"),
                                      (*_TUNED, "train.seeds")),
    f"{EXPERIMENT_PREFIX}-backtest": (("rmse_ratio_persistence", "members/rmse_ratio_persistence_mean",
                                       "dm_p_value", "interval_coverage"), (*_TUNED, "backtest.folds")),
    f"{EXPERIMENT_PREFIX}-tune": (("best_val_loss", "persistence_val_loss"), _TUNED),
}


def view_tag(metrics: tuple[str, ...], params: tuple[str, ...]) -> str:
    """The JSON of a saved view: these metric and param columns, sorted by the first metric."""
    named = {f"metrics.`{name}`": name for name in metrics} | {f"params.`{name}`": name for name in params}
    columns = list(named)
    state = {
        "searchFilter": "", "orderByKey": columns[0], "orderByAsc": True,
        "selectedColumns": columns,
        "columnOrder": columns,  # the UI would sort each group by name
        "columnWidths": {column: 36 + 7 * len(name) for column, name in named.items()},  # whole names shown
    }
    return json.dumps({"name": VIEW_NAME, "createdAt": 0, "updatedAt": 0, "state": json.dumps(state)})


def ensure_experiment(client: Any, name: str) -> str:
    """The id of experiment ``name``, made (artifacts beside the default store, or where a tracking
    server keeps them) and labelled with the view it opens on and its description. Call under
    :func:`store_lock`."""
    import mlflow

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            client.create_experiment(name, artifact_location=artifact_root())
        except mlflow.exceptions.MlflowException:
            pass  # created meanwhile by a stage on another machine
        experiment = client.get_experiment_by_name(name)
    else:
        check_artifact_location(experiment.artifact_location)
    wanted = {EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]}
    if name in DESCRIPTIONS:
        wanted["mlflow.note.content"] = DESCRIPTIONS[name]
    if name in VIEWS:
        wanted[f"mlflow.sharedViewState.{VIEW_KEY}"] = view_tag(*VIEWS[name])
    for key, value in wanted.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def execution_params(params: Any) -> dict[str, object]:
    """Every param, resolved (``model.hidden_units`` 32 where params.yaml says null), for the
    execution's run."""
    return params.as_flat_dict()


def model_name(params: Any) -> str:
    """A logged model's name that says what it is: ``lstm-h32-lr0_001-s3000-x5`` (kind, hidden
    units, learning rate, steps, members; MLflow refuses a "." in the name)."""
    model, train = params.model, params.train
    rate = f"{train.learning_rate:g}".replace(".", "_")
    return f"{model.kind}-h{model.hidden_units}-lr{rate}-s{train.steps}-x{train.seeds}"


class StageRun:
    """What a stage needs of its MLflow run: the run, and where its execution's figures go."""

    def __init__(self, run: Any, stage: str, name: str):
        self.run = run
        self.stage = stage
        self.name = name
        self.info = run.info
        self.data = run.data

    @property
    def execution(self) -> str:
        return self.run.data.tags["pipeline_execution"]

    def record(self, params: dict[str, object], metrics: dict[str, float]) -> str:
        """Add params and headline figures to this execution's run in :data:`PIPELINE_EXPERIMENT`
        (the first stage of the execution makes it); returns its id.

        A param the execution's run already has with another value (a stage run again by hand
        with ``NEXTCLOSE_EXECUTION_ID`` after editing params) keeps its first value, with a note.
        """
        from mlflow.entities import Metric, Param, RunTag

        mlflow_client = client()
        with store_lock():
            experiment_id = ensure_experiment(mlflow_client, PIPELINE_EXPERIMENT)
            run = execution_run(mlflow_client, self.execution, experiment_id)
            if run is None:
                tags = {k: v for k, v in self.run.data.tags.items() if not k.startswith(("mlflow.", "worker_"))}
                tags.pop("stage", None)
                run = mlflow_client.create_run(experiment_id, run_name=self.name, tags=tags)
        run_id = run.info.run_id
        logged = run.data.params
        clashes = sorted(k for k, v in params.items() if k in logged and logged[k] != str(v))
        if clashes:
            print(f"note: execution {self.execution} already ran with other values of {', '.join(clashes)}; "
                  f"its run {run_id} keeps the first")
        now = int(time.time() * 1000)
        stage_runs = {k: v for k, v in run.data.tags.items() if k.startswith("stage_run.")}
        stage_runs[f"stage_run.{self.stage}"] = f"{self.info.experiment_id}/{self.info.run_id}"
        note = "Stage runs of this execution: " + ", ".join(
            f"[{key.split('.', 1)[1]}](#/experiments/{value.replace('/', '/runs/')})"
            for key, value in sorted(stage_runs.items()))
        mlflow_client.log_batch(
            run_id,
            metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
            params=[Param(key, str(value)) for key, value in params.items() if key not in logged],
            tags=[RunTag(key, value) for key, value in stage_runs.items()]
            + [RunTag("mlflow.note.content", note)],
        )
        mlflow_client.set_terminated(run_id, "FINISHED")
        return run_id


def execution_run(client: Any, execution: str, experiment_id: Optional[str] = None) -> Any:
    """The run of pipeline execution ``execution`` in :data:`PIPELINE_EXPERIMENT`, or None."""
    if experiment_id is None:
        experiment = client.get_experiment_by_name(PIPELINE_EXPERIMENT)
        if experiment is None:
            return None
        experiment_id = experiment.experiment_id
    found = client.search_runs([experiment_id], filter_string=f"tags.pipeline_execution = '{execution}'",
                               max_results=1)
    return found[0] if found else None


@contextlib.contextmanager
def stage_run(stage: str, run_name: Optional[str] = None,
              params_file: str | Path = "params.yaml") -> Iterator[StageRun]:
    """Open the MLflow run of one stage in the experiment ``nextclose-<stage>``, named after
    what this execution changed (:func:`execution_name`) unless ``run_name`` is given.

    One experiment per stage kind keeps the UI's compare view meaningful: every
    run in it has the same params and metrics as columns.
    """
    fluent = mlflow_api()
    name = f"{EXPERIMENT_PREFIX}-{stage}"
    with store_lock():
        opened = open_client()
        for note in mark_dead_runs(opened):
            print(f"note: {note}")
        ensure_experiment(opened, name)
    fluent.set_experiment(name)
    execution = execution_name(params_file)
    with fluent.start_run(run_name=run_name or execution, tags=run_tags(stage)) as run:
        yield StageRun(run, stage, execution)


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
# The bars forecaster (nextclose.served) runs nextclose's own code too, which reads these.
FORECASTER_DISTRIBUTIONS = MODEL_DISTRIBUTIONS + (("pandas",), ("PyYAML",))


def model_requirements(distributions: tuple[tuple[str, ...], ...] = MODEL_DISTRIBUTIONS) -> list[str]:
    """The installed versions of ``distributions`` (of each tuple, the first installed), pinned.

    Given, not inferred: MLflow infers them by loading the model in a subprocess, which costs
    seconds per logged model and finds these same packages.
    """
    from importlib import metadata

    pins = []
    for alternatives in distributions:
        for distribution in alternatives:
            try:
                pins.append(f"{distribution}=={metadata.version(distribution)}")
                break
            except metadata.PackageNotFoundError:
                continue
    return pins


def log_keras_model(
    model, input_example, name: str = "model", registered_model_name: Optional[str] = None,
    exported: bool = False, step: int = 0,
):
    """Log a Keras model as an MLflow LoggedModel (Keras flavour, signature, input example).

    ``exported`` stores the model as a compiled TensorFlow graph instead of a ``.keras``
    file, for networks with custom classes: it then loads where nextclose is not installed.
    MLflow links the run's metrics at ``step`` to the model: give the step the model is from
    (by default, step 0 would show the untrained network's losses beside it).
    """
    import keras
    import numpy as np
    from mlflow.models import infer_signature

    keras.utils.disable_interactive_logging()  # MLflow's check of the example would draw a progress bar

    output = np.asarray(model(input_example))
    return mlflow_api().models.Model.log(
        artifact_path=None,  # MLflow 3 names LoggedModels; the path argument is deprecated
        name=name,
        flavor=_KerasFlavour,
        model=model,
        signature=infer_signature(input_example, output),
        input_example=input_example,
        pip_requirements=model_requirements(),
        registered_model_name=registered_model_name,
        save_exported_model=exported,
        step=step,
    )

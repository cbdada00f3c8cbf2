"""The Optuna side of tuning: storage, study identity, search space, dead workers.

No MLflow and no printing here; the tune stage does that.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Optional

import optuna

from nextclose.params import TuneParams

DEFAULT_JOURNAL = "optuna-journal.log"
# A trial whose worker has not written a heartbeat for this long is taken for dead,
# wherever the worker ran. Dead workers on this host are recognised at once.
HEARTBEAT_SECONDS = 20.0
STALE_AFTER_SECONDS = 120.0


def storage_location(tune: TuneParams, root: Path) -> str:
    """``OPTUNA_STORAGE``, else ``tune.storage``, else the journal file at the repository root.

    A relative file path is taken relative to ``root``, so ``dvc exp run --temp`` and
    ``--queue`` (which run in a copy of the repository) share the workspace's study.
    """
    location = os.environ.get("OPTUNA_STORAGE") or tune.storage or DEFAULT_JOURNAL
    if "://" in location:
        return location
    return str((root / location).resolve())


def open_storage(location: str) -> optuna.storages.BaseStorage:
    """A storage URL (``postgresql://``, ``mysql://``, ``sqlite://``, ``redis://``) or a journal file.

    A journal file is Optuna's recommendation for several processes on one machine
    (or a shared NFS folder); a server database for workers on several machines.
    """
    if location.startswith("redis://") or location.startswith("rediss://"):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalRedisBackend(location))
    if "://" in location:
        return _open_rdb(location)
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(location))


def _open_rdb(url: str, attempts: int = 3) -> optuna.storages.RDBStorage:
    """An RDB storage; workers that start together on an empty database race to create
    its tables, and the loser sees "already exists": it only has to try again."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def display_location(location: str) -> str:
    """The storage without its password, for logs and reports."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", location)


def search_space(tune: TuneParams) -> dict[str, dict[str, object]]:
    """The ranges searched, as recorded in the study and in the fingerprint."""
    return {
        "model.hidden_units": {"low": tune.hidden_units_min, "high": tune.hidden_units_max, "log": True},
        "train.learning_rate": {"low": tune.learning_rate_min, "high": tune.learning_rate_max, "log": True},
        "train.steps": {"low": tune.steps_min, "high": tune.steps_max, "step": tune.steps_step},
    }


def suggest_params(trial: optuna.Trial, tune: TuneParams) -> dict[str, object]:
    """Every ``trial.suggest_*`` of the search, in one place."""
    return {
        "model.hidden_units": trial.suggest_int(
            "model.hidden_units", tune.hidden_units_min, tune.hidden_units_max, log=True),
        "train.learning_rate": trial.suggest_float(
            "train.learning_rate", tune.learning_rate_min, tune.learning_rate_max, log=True),
        "train.steps": trial.suggest_int(
            "train.steps", tune.steps_min, tune.steps_max, step=tune.steps_step),
    }


def study_fingerprint(data_sha256: str, space: dict, fixed: dict) -> str:
    """Changes whenever the data, the search space or a setting the objective reads changes."""
    blob = json.dumps({"data": data_sha256, "space": space, "fixed": fixed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def make_sampler(seed: int, trials_so_far: int) -> optuna.samplers.TPESampler:
    """TPE seeded from ``tune.seed`` and the study's size when this worker starts.

    The same seed alone would make every rerun (and every worker) draw the very
    same first values again; offsetting it by the trials already in the study
    keeps a fresh study's first run reproducible and a rerun new. Five random
    trials before TPE models the results, as the default budget is small.
    """
    return optuna.samplers.TPESampler(seed=seed + trials_so_far, n_startup_trials=5)


def make_pruner(kind: str, eval_every: int, max_steps: int) -> optuna.pruners.BasePruner:
    if kind == "median":
        # Let a few trials finish and each run a few evaluations before judging it.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3 * eval_every)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=max_steps)
    return optuna.pruners.NopPruner()


def _this_process() -> dict[str, object]:
    import psutil

    process = psutil.Process()
    return {"host": socket.gethostname(), "pid": process.pid, "started": process.create_time()}


def _worker_is_alive(worker: dict) -> Optional[bool]:
    """True or False for a worker on this host; None when it ran elsewhere."""
    import psutil

    if worker.get("host") != socket.gethostname():
        return None
    try:
        return abs(psutil.Process(int(worker["pid"])).create_time() - float(worker["started"])) < 1.0
    except (psutil.Error, KeyError, ValueError, TypeError):
        return False


def fail_stale_trials(study: optuna.Study, now: Optional[float] = None) -> list[int]:
    """Mark FAIL every RUNNING trial whose worker is gone; return their numbers.

    A worker stamps its trials with its host, pid and start time and beats a
    heartbeat; a trial is stale when its worker process no longer exists on this
    host, or its heartbeat is older than ``STALE_AFTER_SECONDS``. Works on any
    storage, the journal file included (Optuna's own heartbeat is RDB-only).
    """
    now = time.time() if now is None else now
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.system_attrs.get("nextclose:worker")
        beat = trial.system_attrs.get("nextclose:heartbeat")
        alive = _worker_is_alive(worker) if worker else None
        stale_beat = beat is not None and now - float(beat) > STALE_AFTER_SECONDS
        if alive is False or (alive is None and stale_beat):
            try:
                study._storage.set_trial_system_attr(trial._trial_id, "nextclose:failed", "worker died")
                study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                continue  # another worker got there first
            failed.append(trial.number)
    return failed


class Heartbeat:
    """Stamp a trial with this worker and refresh its heartbeat until the trial ends."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, interval: float = HEARTBEAT_SECONDS):
        self.storage = study._storage
        self.trial_id = trial._trial_id
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _beat(self) -> None:
        self.storage.set_trial_system_attr(self.trial_id, "nextclose:heartbeat", time.time())

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self._beat()
            except Exception:  # the trial finished meanwhile; nothing left to keep alive
                return

    def __enter__(self) -> "Heartbeat":
        self.storage.set_trial_system_attr(self.trial_id, "nextclose:worker", _this_process())
        self._beat()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

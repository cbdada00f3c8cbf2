"""The Optuna side of tuning: storage, study identity, search space, dead workers.

No MLflow and no printing here; the tune stage does that.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal, Optional

import optuna
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

from nextclose import processes, redaction
from nextclose.errors import UserError
from nextclose.params import KIND_DEFAULTS, Params, TuneParams
from nextclose.search_space import SEARCHED

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


class StorageError(UserError):
    """The study's storage cannot be opened; the message names it (without its password)."""


def open_storage(location: str) -> optuna.storages.BaseStorage:
    """A storage URL (``postgresql://``, ``mysql://``, ``sqlite://``, ``redis://``) or a journal file.

    A journal file is Optuna's recommendation for several processes on one machine
    (or a shared NFS folder); a server database for workers on several machines.
    """
    if location.startswith("redis://") or location.startswith("rediss://"):
        return optuna.storages.JournalStorage(JournalRedisBackend(location))
    if "://" in location:
        return _open_rdb(location)
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(location))


def _open_rdb(url: str, attempts: int = 3) -> optuna.storages.RDBStorage:
    """An RDB storage; workers that start together on an empty database race to create
    its tables, and the loser sees "already exists": it only has to try again."""
    import sqlalchemy.exc

    shown = redaction.redact(url)
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError as error:  # the URL's database driver is not installed
            missing = getattr(error.__cause__, "name", None) or error.name
            raise StorageError(
                f"storage {shown}: needs the Python driver {missing!r}, which is not installed: name "
                f"an installed one in the URL, e.g. postgresql+psycopg2://... with the postgres extra "
                f"(pip install 'nextclose[postgres]')"
            ) from None
        except sqlalchemy.exc.ArgumentError as error:
            raise StorageError(f"storage {shown}: not a database URL SQLAlchemy knows ({error})") from None
        except sqlalchemy.exc.SQLAlchemyError as error:
            if attempt == attempts - 1:
                reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
                reason = redaction.redact(reason, also=redaction.url_passwords(url))
                raise StorageError(
                    f"storage {shown}: cannot be opened after {attempts} attempts "
                    f"({type(error).__name__}: {reason}); check that the server "
                    f"runs and the URL (tune.storage or OPTUNA_STORAGE)"
                ) from None
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def display_location(location: str, root: Optional[Path] = None) -> str:
    """The storage as logs, MLflow and reports name it: a journal file relative to the workspace
    ``root`` when it lies inside (no machine paths in committed files); a URL as it is (what is
    written, logged or printed is redacted on its way out: :mod:`nextclose.redaction`)."""
    if "://" not in location and root is not None:
        try:
            return Path(location).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return location
    return location


def search_space(tune: TuneParams) -> dict[str, dict[str, Any]]:
    """The ranges searched, as recorded in the study and in the fingerprint."""
    return {searched.name: searched.bounds(tune) for searched in SEARCHED}


def suggest_params(trial: optuna.Trial, tune: TuneParams) -> dict[str, Any]:
    """Every ``trial.suggest_*`` of the search, in one place."""
    return {searched.name: searched.suggest(trial, tune) for searched in SEARCHED}


# Why a study holds the defaults as a trial: its best is then never worse on the folds than
# what params.yaml gives with null values, so the tuner moves off the defaults only when a
# searched trial beats them on the same folds (Optuna: "Specify Hyperparameters Manually").
BASELINE = "the lstm kind's defaults"


def baseline_values() -> dict[str, Any]:
    """The searched settings' values that ``null`` gives the lstm kind (KIND_DEFAULTS)."""
    return {searched.name: KIND_DEFAULTS["lstm"][searched.key] for searched in SEARCHED}


def enqueue_baseline(study: optuna.Study, tune: TuneParams) -> str:
    """Queue a trial of :func:`baseline_values` unless the study holds one completed, running or
    waiting, or the search space cannot draw them; what happened, in words. (A baseline that
    failed, or was pruned by a version that pruned it, is queued again.)"""
    values = baseline_values()
    outside = [f"{searched.name} {values[searched.name]}" for searched in SEARCHED
               if not searched.holds(values[searched.name], tune)]
    if outside:
        return f"{BASELINE} are outside the search space ({', '.join(outside)}): not queued"
    for trial in study.get_trials(deepcopy=False):
        held = trial.system_attrs.get("fixed_params", trial.params)  # a waiting trial's params are to come
        if trial.state not in (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED) and held == values:
            return f"{BASELINE} are trial {trial.number} ({trial.state.name.lower()})"
    study.enqueue_trial(values, user_attrs={"baseline": BASELINE})
    return f"{BASELINE} queued first: {values}"


def baseline_value(study: optuna.Study) -> Optional[float]:
    """The objective value of the study's completed trial of :func:`baseline_values`, if any."""
    values = baseline_values()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.params == values:
            return trial.value
    return None


def with_trial_values(params: Params, values: dict[str, Any]) -> Params:
    """``params`` with the searched ``{"section.key": value}`` replaced (the kind is always lstm)."""
    sections: dict[str, dict[str, Any]] = {"model": {"kind": "lstm"}}
    for searched in SEARCHED:
        sections.setdefault(searched.section, {})[searched.key] = searched.coerce(values[searched.name])
    return dataclasses.replace(params, **{
        section: dataclasses.replace(getattr(params, section), **changes)
        for section, changes in sections.items()
    })


# The sections the objective reads; all their keys but the searched ones and these are fixed
# settings: a change to any starts a new study. The kind is always lstm; log_every paces printing.
FIXED_SECTIONS = ("base", "model", "train")
NEVER_FIXED = frozenset({"model.kind", "train.log_every"})


@dataclasses.dataclass(frozen=True)
class Objective:
    """One ``tune.objective``: which way is better, and what its values are called where shown."""

    direction: Literal["minimize", "maximize"]  # the study's, in Optuna's words
    metric_name: str  # the study's metric name (the dashboard's axis) and the printed lines
    logged: str  # MLflow: a trial's value in its child run, the study's best in the parent run (one column)
    reference: str  # tune.json and the study's user attribute: what forecasting no change scores


OBJECTIVES = {
    "val_loss": Objective("minimize", "val_loss", "best_val_loss", "persistence_val_loss"),
    "rank_ic": Objective("maximize", "val_rank_ic", "val_rank_ic", "persistence_val_rank_ic"),
}
# The objective every study had before ``tune.objective`` existed: it stays out of the fixed
# settings, so the studies tuned on it keep their names (and their trials).
DEFAULT_OBJECTIVE = "val_loss"


def fixed_settings(params: Params) -> dict[str, object]:
    """What the objective reads besides the searched values, which objective it is unless the
    default, and on which folds: a change starts a new study (values of two objectives, or of
    two sets of folds, never share one)."""
    searched = {row.name for row in SEARCHED}
    fixed = {
        k: v for k, v in params.section_dict(*FIXED_SECTIONS).items() if k not in searched | NEVER_FIXED
    }
    if params.tune.objective != DEFAULT_OBJECTIVE:
        fixed["tune.objective"] = params.tune.objective
    # The folds a trial is scored on (nextclose.tuning_folds): one fold is the validation split
    # that every study before tune.cv_folds was scored on, so it keeps their names.
    if params.tune.cv_folds != 1:
        fixed["tune.cv_folds"] = params.tune.cv_folds
    if params.backtest.days is not None:  # the tuning period ends before the first walk-forward day
        fixed["backtest.days"] = params.backtest.days
    return fixed


def study_fingerprint(data_sha256: str, space: dict, fixed: dict) -> str:
    """Changes whenever the data, the search space or a setting the objective reads changes."""
    blob = json.dumps({"data": data_sha256, "space": space, "fixed": fixed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def data_identity(prepared_summary: dict[str, Any]) -> str:
    """What identifies the prepared data for the fingerprint: the source's hash, the split
    and the normalisation (the content of ``prepared.json`` that training reads)."""
    return (prepared_summary["source_sha256"] + json.dumps(prepared_summary["splits"], sort_keys=True)
            + json.dumps(prepared_summary["normalisation"]))


def open_study(params: Params, prepared_summary: dict[str, Any], location: str) -> tuple[optuna.Study, bool, list[str]]:
    """Load or create the study for this data, search space, fixed settings and objective
    (minimised or maximised, as ``tune.objective`` says).

    Returns the study, whether it is new, and the names of the other studies
    of ``tune.study_name`` in the storage (earlier data or search spaces).
    """
    space = search_space(params.tune)
    fixed = fixed_settings(params)
    fingerprint = study_fingerprint(data_identity(prepared_summary), space, fixed)
    name = f"{params.tune.study_name}-{fingerprint}"
    storage = open_storage(location)
    existing = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    others = [s for s in existing if s.startswith(f"{params.tune.study_name}-") and s != name]
    pruner = make_pruner(params.tune.pruner, params.train.eval_every, params.tune.steps_max, params.tune.cv_folds)
    study = optuna.create_study(
        study_name=name, storage=storage, pruner=pruner, direction=OBJECTIVES[params.tune.objective].direction,
        load_if_exists=True,
    )
    study.sampler = make_sampler(params.tune.seed)
    if name not in existing:
        study.set_user_attr("search_space", space)
        study.set_user_attr("data_sha256", prepared_summary["source_sha256"])
        study.set_user_attr("fixed_settings", fixed)
    return study, name not in existing, others


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state, every state named (lower case), zero included."""
    counts = collections.Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return {state.name.lower(): counts.get(state.name, 0) for state in optuna.trial.TrialState}


def best_values(study: optuna.Study) -> Optional[dict[str, Any]]:
    """The best trial's number, value and params, or None before any trial completed."""
    try:
        best = study.best_trial
    except ValueError:
        return None
    return {"trial": best.number, "value": best.value, "params": dict(best.params)}


class TrialSeededTPESampler(optuna.samplers.TPESampler):
    """TPE whose random state is drawn afresh for each trial from ``tune.seed`` and the
    trial's number.

    The storage gives every trial of a study its own number, so workers that start
    together on a fresh study still draw different values (a sampler seeded once per
    worker hands each of them the same first values), a rerun draws new ones, and a
    study grown by one worker is the same study every time.
    """

    def __init__(self, seed: int, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)
        self.base_seed = seed

    def trial_seed(self, number: int) -> int:
        digest = hashlib.sha256(f"{self.base_seed}:{number}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seed = self.trial_seed(trial.number)
        self._rng.rng.seed(seed)
        self._random_sampler._rng.rng.seed(seed)
        super().before_trial(study, trial)


def make_sampler(seed: int) -> TrialSeededTPESampler:
    """TPE seeded per trial from ``tune.seed``; five random trials before TPE models the
    results, as the default budget is small."""
    return TrialSeededTPESampler(seed=seed, n_startup_trials=5)


def make_pruner(kind: str, eval_every: int, max_steps: int, cv_folds: int = 1) -> optuna.pruners.BasePruner:
    """The pruner of ``tune.pruner``. With several folds a trial reports once per fold (step =
    the fold's number): judged from its first fold on; with one, every ``eval_every`` steps."""
    if cv_folds > 1:
        if kind == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
        if kind == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cv_folds)
        return optuna.pruners.NopPruner()
    if kind == "median":
        # Let a few trials finish and each run a few evaluations before judging it.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3 * eval_every)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=max_steps)
    return optuna.pruners.NopPruner()


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
        alive = processes.is_alive(worker) if worker else None
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
        self.storage.set_trial_system_attr(self.trial_id, "nextclose:worker", processes.this_process())
        self._beat()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

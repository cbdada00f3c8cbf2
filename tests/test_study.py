"""The Optuna side of tuning, unit by unit: storages, identity, sampler, pruners, dead workers."""

from __future__ import annotations

import hashlib
import json
import sys
import time

import optuna
import pytest

from nextclose import processes, redaction
from nextclose import study as studies
from nextclose.params import parse_params

from helpers import tiny_params

SUMMARY = {"source_sha256": "ab" * 32, "splits": {"train": {"samples": 10}},
           "normalisation": {"mean": [0.0], "std": [1.0]}}


def tiny(**overrides):
    return parse_params(tiny_params(**overrides))


# --- storages -------------------------------------------------------------------------------------

def test_a_journal_file_storage_creates_its_folder(tmp_path):
    location = tmp_path / "studies" / "deeper" / "journal.log"
    storage = studies.open_storage(str(location))
    assert isinstance(storage, optuna.storages.JournalStorage)
    optuna.create_study(study_name="s", storage=storage)
    assert location.is_file()


def test_a_database_url_opens_a_database_storage(tmp_path):
    storage = studies.open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    assert isinstance(storage, optuna.storages.RDBStorage)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("url", ["redis://cache:6379/0", "rediss://cache:6380/0"])
def test_a_redis_url_is_a_journal_in_redis(url):
    # redis-py is not installed here: Optuna's redis journal asks for it, which shows the branch taken
    with pytest.raises(ImportError, match="redis"):
        studies.open_storage(url)


def test_a_url_no_database_driver_knows_is_a_clear_error():
    with pytest.raises(studies.StorageError, match=(
            r"^storage nosuchdb://tuner:\*\*\*@host/x: not a database URL SQLAlchemy knows \(")):
        studies.open_storage("nosuchdb://tuner:pw@host/x")


def test_a_missing_driver_is_named_with_what_to_install(monkeypatch):
    # SQLAlchemy's default driver for a bare postgresql:// is psycopg (3): make sure it is missing
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(studies.StorageError, match=(
            r"^storage postgresql://tuner:\*\*\*@127.0.0.1:1/optuna: needs the Python driver 'psycopg', which "
            r"is not installed: name an installed one in the URL, e.g. postgresql\+psycopg2://\.\.\. with the "
            r"postgres extra \(pip install 'nextclose\[postgres\]'\)$")):
        studies.open_storage("postgresql://tuner:pw@127.0.0.1:1/optuna")


def test_a_database_that_cannot_be_opened_is_tried_three_times(tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(studies.time, "sleep", waits.append)
    url = f"sqlite:///{tmp_path / 'no such folder' / 'studies.db'}"
    with pytest.raises(studies.StorageError) as raised:
        studies.open_storage(url)
    assert str(raised.value) == (
        f"storage {url}: cannot be opened after 3 attempts (OperationalError: unable to open "
        f"database file); check that the server runs and the URL (tune.storage or OPTUNA_STORAGE)")
    assert waits == [1.0, 2.0]  # between the attempts, longer each time
    with pytest.raises(studies.StorageError, match="after 1 attempts"):
        studies._open_rdb(url, attempts=1)
    assert waits == [1.0, 2.0]


def test_storage_location_prefers_the_environment_then_params_then_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert studies.storage_location(tiny().tune, tmp_path) == str((tmp_path / "optuna-journal.log").resolve())
    assert studies.storage_location(tiny(tune={"storage": "sqlite:///x.db"}).tune, tmp_path) == "sqlite:///x.db"
    monkeypatch.setenv("OPTUNA_STORAGE", "elsewhere/journal.log")
    assert studies.storage_location(tiny(tune={"storage": "mine.log"}).tune, tmp_path) == str(
        tmp_path / "elsewhere" / "journal.log")
    monkeypatch.setenv("OPTUNA_STORAGE", "")  # set but empty: as if unset
    assert studies.storage_location(tiny(tune={"storage": "mine.log"}).tune, tmp_path) == str(tmp_path / "mine.log")


# --- passwords and paths ------------------------------------------------------------------------------

def test_url_password_is_none_without_one():
    assert redaction.password_in_url("postgresql://tuner:@db/optuna") is None
    assert redaction.password_in_url("postgresql://tuner@db/optuna") is None
    assert redaction.password_in_url("/a/journal.log") is None
    assert redaction.password_in_url("postgresql://tuner:pw@db/optuna") == "pw"


def test_a_storage_password_is_blanked_raw_and_decoded():
    url = "mysql://tuner:a%40bcd@db/optuna"
    assert redaction.redact("a%40bcd and a@bcd and abcd", also=redaction.url_passwords(url)) == "*** and *** and abcd"
    assert redaction.redact("nothing to hide", also=redaction.url_passwords("/a/journal.log")) == "nothing to hide"


def test_display_location_leaves_urls_and_outside_paths_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a URL read as a path would lie inside the workspace
    assert studies.display_location("sqlite:///studies.db", tmp_path) == "sqlite:///studies.db"
    assert studies.display_location(str(tmp_path / "a" / "j.log"), tmp_path) == "a/j.log"
    assert studies.display_location(str(tmp_path / "a" / "j.log")) == str(tmp_path / "a" / "j.log")


# --- the study's identity ------------------------------------------------------------------------------

def test_fixed_settings_are_what_the_objective_reads_but_is_not_searched():
    assert studies.fixed_settings(tiny()) == {
        # train.seeds too: the objective is the ensemble's, so another member count is another study
        "base.seed": 42, "model.layers": 1, "model.dropout": 0.0, "train.seeds": 2, "train.batch_size": 16,
        "train.eval_every": 20, "train.patience": None, "train.steps_per_call": 10}


def test_the_fingerprint_is_stable_across_versions():
    """Studies live on in their storage: a fingerprint that changed for the same inputs would
    silently start every study afresh."""
    assert studies.study_fingerprint("d", {"x": {"low": 1}}, {"train.batch_size": 16}) == "b07301f2af"
    blob = json.dumps({"data": "d", "fixed": {"train.batch_size": 16}, "space": {"x": {"low": 1}}})
    assert hashlib.sha256(blob.encode()).hexdigest()[:10] == "b07301f2af"


def test_data_identity_joins_hash_split_and_normalisation():
    summary = SUMMARY | {"splits": {"b": 1, "a": 2}, "normalisation": {"mean": [0.0], "std": [1.0]}}
    assert studies.data_identity(summary) == "ab" * 32 + '{"a": 2, "b": 1}' + '{"mean": [0.0], "std": [1.0]}'


def test_with_trial_values_sets_the_searched_values_and_the_kind(tmp_path):
    params = tiny(model={"kind": "tutorial"})
    changed = studies.with_trial_values(
        params, {"model.hidden_units": 12.0, "train.learning_rate": 1, "train.steps": 40})
    assert changed.model.kind == "lstm" and changed.model.hidden_units == 12
    assert type(changed.model.hidden_units) is int and type(changed.train.learning_rate) is float
    assert changed.train.steps == 40 and changed.train.batch_size == params.train.batch_size


def test_a_new_study_records_what_identifies_it(tmp_path):
    params = tiny()
    (tmp_path / "j.log").touch()
    optuna.create_study(study_name="unrelated", storage=studies.open_storage(str(tmp_path / "j.log")))
    study, is_new, others = studies.open_study(params, SUMMARY, str(tmp_path / "j.log"))
    space, fixed = studies.search_space(params.tune), studies.fixed_settings(params)
    assert study.study_name == "nextclose-" + studies.study_fingerprint(studies.data_identity(SUMMARY), space, fixed)
    assert is_new and others == []  # "unrelated" is not a study of tune.study_name
    assert study.user_attrs == {"search_space": space, "data_sha256": "ab" * 32, "fixed_settings": fixed}
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert isinstance(study.sampler, studies.TrialSeededTPESampler) and study.sampler.base_seed == 42
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    again, is_new, _ = studies.open_study(params, SUMMARY, str(tmp_path / "j.log"))
    assert again.study_name == study.study_name and not is_new


def test_trial_counts_and_best_values():
    study = optuna.create_study()
    assert studies.best_values(study) is None
    assert studies.trial_counts(study) == {"running": 0, "complete": 0, "pruned": 0, "fail": 0, "waiting": 0}
    study.add_trial(optuna.trial.create_trial(params={"x": 1.0}, distributions={
        "x": optuna.distributions.FloatDistribution(0, 2)}, value=0.25))
    study.ask()
    assert studies.trial_counts(study) == {"running": 1, "complete": 1, "pruned": 0, "fail": 0, "waiting": 0}
    assert studies.best_values(study) == {"trial": 0, "value": 0.25, "params": {"x": 1.0}}


# --- sampler and pruners ----------------------------------------------------------------------------

def test_the_sampler_seeds_each_trial_from_the_seed_and_its_number():
    sampler = studies.make_sampler(42)
    assert sampler._n_startup_trials == 5
    assert [sampler.trial_seed(0), sampler.trial_seed(1)] == [3393549140, 1375264003]
    assert studies.make_sampler(43).trial_seed(0) != sampler.trial_seed(0)


@pytest.mark.parametrize("kind, pruner", [("hyperband", optuna.pruners.HyperbandPruner),
                                          ("none", optuna.pruners.NopPruner)])
def test_a_study_prunes_as_tune_pruner_says(tmp_path, kind, pruner):
    params = tiny(tune={"pruner": kind})
    study, _, _ = studies.open_study(params, SUMMARY, str(tmp_path / "j.log"))
    assert type(study.pruner) is pruner
    if kind == "hyperband":
        assert (study.pruner._min_resource, study.pruner._max_resource) == (20, 60)


def test_the_median_pruner_waits_for_five_trials_and_three_evaluations():
    median = studies.make_pruner("median", 20, 300)
    assert (median._n_startup_trials, median._n_warmup_steps) == (5, 60)
    assert type(studies.make_pruner("none", 20, 300)) is optuna.pruners.NopPruner


# --- dead workers ----------------------------------------------------------------------------------

def running_trial(study, **system_attrs):
    trial = study.ask()
    for key, value in system_attrs.items():
        study._storage.set_trial_system_attr(trial._trial_id, key, value)
    return trial


def test_a_trial_whose_worker_died_on_this_host_is_failed_at_once():
    study = optuna.create_study()
    gone = processes.this_process() | {"started": 1.0}  # this pid, but started long ago: another process
    running_trial(study, **{"nextclose:worker": gone, "nextclose:heartbeat": time.time()})
    running_trial(study, **{"nextclose:worker": processes.this_process(), "nextclose:heartbeat": 0.0})
    running_trial(study)  # no stamp at all: nothing says it is dead
    assert studies.fail_stale_trials(study) == [0]
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL] + [optuna.trial.TrialState.RUNNING] * 2
    assert study.trials[0].system_attrs["nextclose:failed"] == "worker died"


def test_a_heartbeat_is_stale_only_after_the_limit():
    study = optuna.create_study()
    elsewhere = {"host": "elsewhere", "pid": 1, "started": 0.0}
    running_trial(study, **{"nextclose:worker": elsewhere, "nextclose:heartbeat": 1000.0})
    assert studies.fail_stale_trials(study, now=1000.0 + studies.STALE_AFTER_SECONDS) == []
    assert studies.fail_stale_trials(study, now=1000.0 + studies.STALE_AFTER_SECONDS + 0.5) == [0]


def test_the_heartbeat_stamps_the_worker_and_beats_until_the_block_ends():
    study = optuna.create_study()
    trial = study.ask()
    with studies.Heartbeat(study, trial, interval=0.01):
        first = study.trials[0].system_attrs["nextclose:heartbeat"]
        assert study.trials[0].system_attrs["nextclose:worker"]["pid"] == processes.this_process()["pid"]
        deadline = time.time() + 5
        while study.trials[0].system_attrs["nextclose:heartbeat"] == first and time.time() < deadline:
            time.sleep(0.01)
        assert study.trials[0].system_attrs["nextclose:heartbeat"] > first
    last = study.trials[0].system_attrs["nextclose:heartbeat"]
    time.sleep(0.05)
    assert study.trials[0].system_attrs["nextclose:heartbeat"] == last
    assert studies.HEARTBEAT_SECONDS == 20.0 and studies.Heartbeat(study, trial).interval == 20.0


def test_a_trial_another_worker_fails_first_is_skipped_and_the_rest_still_checked(monkeypatch):
    study = optuna.create_study()
    dead = {"host": processes.this_process()["host"], "pid": 1, "started": 0.0}
    for _ in range(2):
        running_trial(study, **{"nextclose:worker": dead})

    def another_worker_fails_trial_0_first(worker):
        if study.trials[0].state == optuna.trial.TrialState.RUNNING:
            study.tell(0, state=optuna.trial.TrialState.FAIL)
        return False

    monkeypatch.setattr(processes, "is_alive", another_worker_fails_trial_0_first)
    assert studies.fail_stale_trials(study) == [1]
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2


def test_the_heartbeat_never_keeps_a_dying_worker_alive():
    study = optuna.create_study()
    assert studies.Heartbeat(study, study.ask()).thread.daemon

"""Stage 4: search hidden units, learning rate and steps with Optuna.

Every trial trains the default model through the train stage's own
``run_training`` and is scored by its best validation loss (the test split is
never read). The study lives in a persistent storage shared by every worker;
one MLflow parent run per invocation holds a nested child run per trial.

Writes ``reports/best_params.yaml`` (the best values, for ``nextclose
apply-best``) and ``reports/tune.json`` (best value, trials by state, study).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import warnings
from pathlib import Path
from typing import Optional

import optuna
import yaml

from nextclose import atomic, study as studies, tracking, training
from nextclose.params import Params
from nextclose.stages.prepare import PREPARED_DIR
from nextclose.stages.train import lstm_input_example, run_training

BEST_PARAMS_FILE = Path("reports/best_params.yaml")
TUNE_REPORT_FILE = Path("reports/tune.json")

log = logging.getLogger("nextclose.tune")


def with_trial_values(params: Params, values: dict[str, object]) -> Params:
    """``params`` with ``{"section.key": value}`` replaced (the kind is always lstm)."""
    model = dataclasses.replace(params.model, kind="lstm", hidden_units=int(values["model.hidden_units"]))
    train = dataclasses.replace(
        params.train,
        learning_rate=float(values["train.learning_rate"]),
        steps=int(values["train.steps"]),
    )
    return dataclasses.replace(params, model=model, train=train)


def fixed_settings(params: Params) -> dict[str, object]:
    """What the objective reads besides the searched values: a change starts a new study."""
    searched = {"model.hidden_units", "train.learning_rate", "train.steps", "model.kind"}
    fixed = params.section_dict("base", "model", "train")
    return {k: v for k, v in fixed.items() if k not in searched and k not in ("train.log_every",)}


def open_study(params: Params, location: str) -> tuple[optuna.Study, bool, list[str]]:
    """Load or create the study for this data and search space.

    Returns the study, whether it is new, and the names of the other studies
    of ``tune.study_name`` in the storage (earlier data or search spaces).
    """
    summary = json.loads((PREPARED_DIR / "prepared.json").read_text())
    space = studies.search_space(params.tune)
    fingerprint = studies.study_fingerprint(summary["source_sha256"] + json.dumps(
        summary["splits"], sort_keys=True) + json.dumps(summary["normalisation"]), space,
        fixed_settings(params))
    name = f"{params.tune.study_name}-{fingerprint}"
    storage = studies.open_storage(location)
    existing = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    others = [s for s in existing if s.startswith(f"{params.tune.study_name}-") and s != name]
    pruner = studies.make_pruner(params.tune.pruner, params.train.eval_every, params.tune.steps_max)
    study = optuna.create_study(
        study_name=name, storage=storage, pruner=pruner, direction="minimize", load_if_exists=True,
    )
    study.sampler = studies.make_sampler(params.tune.seed, len(study.get_trials(deepcopy=False)))
    if name not in existing:
        study.set_user_attr("search_space", space)
        study.set_user_attr("data_sha256", summary["source_sha256"])
        study.set_user_attr("fixed_settings", fixed_settings(params))
    return study, name not in existing, others


def make_objective(params: Params, study: optuna.Study):
    """The objective: train the trial's lstm, report val_loss for pruning, return the best."""
    import mlflow

    def objective(trial: optuna.Trial) -> float:
        values = studies.suggest_params(trial, params.tune)
        trial_params = with_trial_values(params, values)
        with studies.Heartbeat(study, trial):
            child = mlflow.start_run(
                run_name=f"trial-{trial.number}", nested=True,
                tags={**tracking.run_tags("tune"), "optuna_trial": str(trial.number),
                      "optuna_study": study.study_name},
            )
            trial.set_user_attr("mlflow_run_id", child.info.run_id)
            mlflow.log_params(values)
            best_so_far = float("inf")

            def on_evaluation(evaluation: training.Evaluation) -> None:
                nonlocal best_so_far
                mlflow.log_metrics({"loss": evaluation.loss, "val_loss": evaluation.val_loss},
                                   step=evaluation.step)
                # Report the best so far: it is what the objective returns at the end.
                best_so_far = min(best_so_far, evaluation.val_loss)
                trial.report(best_so_far, evaluation.step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"val_loss {best_so_far:.4f} at step {evaluation.step}")

            try:
                result = run_training(trial_params, on_evaluation)
            except optuna.TrialPruned:
                mlflow.log_metric("best_val_loss", best_so_far)
                mlflow.set_tag("state", "PRUNED")
                mlflow.end_run("KILLED")  # MLflow's word for a run stopped on purpose
                raise
            except BaseException:
                mlflow.set_tag("state", "FAIL")
                mlflow.end_run("FAILED")
                raise
            mlflow.log_metrics({"best_val_loss": result.best_loss, "best_step": result.best_step,
                                "steps_run": result.steps_run})
            mlflow.set_tag("state", "COMPLETE")
            mlflow.end_run("FINISHED")
            return result.best_loss

    return objective


def trial_counts(study: optuna.Study) -> dict[str, int]:
    counts = collections.Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return {state.name.lower(): counts.get(state.name, 0) for state in optuna.trial.TrialState}


def best_values(study: optuna.Study) -> Optional[dict[str, object]]:
    try:
        best = study.best_trial
    except ValueError:
        return None
    return {"trial": best.number, "value": best.value, "params": dict(best.params)}


def log_study_figures(study: optuna.Study) -> None:
    """Optuna's own plots of the study, as figures of the parent run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from optuna.visualization import matplotlib as optuna_plots

    plots = {
        "optimization_history.png": optuna_plots.plot_optimization_history,
        "param_importances.png": optuna_plots.plot_param_importances,
        "slice.png": optuna_plots.plot_slice,
        "intermediate_values.png": optuna_plots.plot_intermediate_values,
    }
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "plot_* is experimental", on every call
                axes = plot(study)
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
                figure.set_size_inches(9, 5)
                figure.tight_layout()
        except (ValueError, RuntimeError) as error:  # e.g. importances need two finished trials
            log.info("no %s: %s", name, error)
            continue
        mlflow.log_figure(figure, f"optuna/{name}")
        plt.close(figure)


def run(params: Params, n_trials: Optional[int] = None) -> dict[str, object]:
    """One tune invocation: stale trials failed, trials added, best model logged, reports written."""
    import mlflow

    location = studies.storage_location(params.tune, tracking.workspace_root())
    shown = studies.display_location(location)
    if location.startswith("sqlite"):
        print(f"note: {shown} is SQLite; parallel workers may hit 'database is locked' "
              f"(use the default journal file or a server database)")
    study, is_new, others = open_study(params, location)
    if is_new and others:
        print(f"data or search space changed: new study {study.study_name} "
              f"(earlier: {', '.join(others)})")
    elif is_new:
        print(f"new study {study.study_name} in {shown}")
    else:
        print(f"adding trials to study {study.study_name} in {shown} "
              f"({len(study.get_trials(deepcopy=False))} so far)")
    stale = studies.fail_stale_trials(study)
    if stale:
        print(f"marked trials {stale} FAIL: their worker died mid-trial")

    trials = n_trials if n_trials is not None else params.tune.n_trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)  # each trial traces its own functions; no news
    with tracking.stage_run("tune", run_name=f"tune-{study.study_name}") as parent:
        mlflow.log_params(params.section_dict("tune"))
        mlflow.log_params({"tune.n_trials_run": trials, "study": study.study_name})
        mlflow.set_tags({"optuna_study": study.study_name, "optuna_storage": shown})

        def report(finished_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            value = "" if trial.value is None else f" val_loss {trial.value:.4f}"
            print(f"trial {trial.number} {trial.state.name.lower()}{value} {trial.params}", flush=True)

        study.optimize(
            make_objective(params, study), n_trials=trials, timeout=params.tune.timeout,
            callbacks=[report], gc_after_trial=True,
            catch=(training.TrainingDiverged,),  # a diverged trial is FAIL; the search goes on
        )
        counts = trial_counts(study)
        best = best_values(study)
        mlflow.log_metrics({f"trials_{state}": n for state, n in counts.items()})
        if best is not None:
            mlflow.log_metric("best_value", best["value"])
            mlflow.log_params({f"best.{k}": v for k, v in best["params"].items()})
            mlflow.set_tag("best_trial", str(best["trial"]))
            # Training is deterministic, so retraining the best values gives the best trial's model.
            best_model = run_training(with_trial_values(params, best["params"])).model
            tracking.log_keras_model(best_model, lstm_input_example(), name="best_model")
        log_study_figures(study)

        report_json = {
            "study_name": study.study_name,
            "storage": shown,
            "best_value": None if best is None else best["value"],
            "best_trial": None if best is None else best["trial"],
            "trials": counts,
            "trials_total": sum(counts.values()),
            "mlflow_run_id": parent.info.run_id,
        }
        best_yaml = {"study_name": study.study_name, "best_value": None}
        if best is not None:
            best_yaml = {
                "study_name": study.study_name,
                "best_value": best["value"],
                "model": {"hidden_units": int(best["params"]["model.hidden_units"])},
                "train": {"learning_rate": float(best["params"]["train.learning_rate"]),
                          "steps": int(best["params"]["train.steps"])},
            }
        atomic.write_text(BEST_PARAMS_FILE, yaml.safe_dump(best_yaml, sort_keys=False))
        atomic.write_json(TUNE_REPORT_FILE, report_json)
        mlflow.log_artifact(str(BEST_PARAMS_FILE))
    return report_json


def main(params: Params, n_trials: Optional[int] = None) -> None:
    report = run(params, n_trials)
    print(f"study {report['study_name']}: best val_loss {report['best_value']} "
          f"(trial {report['best_trial']}), trials {report['trials']}")

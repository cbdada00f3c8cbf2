"""Stage 5: search hidden units, learning rate and steps with Optuna.

Every trial trains the default model through the train stage's own entry point
(:func:`nextclose.training.train_model`), ``train.seeds`` members at once, and is scored by the
validation loss of the ensemble it would serve (each member at its best weights), so the search
does not chase one lucky seed; the test split is never read. The study lives in a persistent
storage shared by every worker; one MLflow parent run per invocation holds a nested child run per
trial.

Writes ``reports/best_params.yaml`` (the best values, for ``nextclose
apply-best``), ``reports/tune.json`` (DVC metrics: the best value, persistence's, trials by state)
and ``reports/tune_study.json`` (which study, in which storage, and the MLflow parent run).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Optional

import numpy as np
import optuna

from nextclose import atomic, layout, tracking, training
from nextclose import study as studies
from nextclose.features import TrainingData
from nextclose.params import Params

log = logging.getLogger("nextclose.tune")


OBJECTIVE_NAME = "val_loss"


def persistence_val_loss(data: TrainingData) -> float:
    """The validation loss of forecasting no change: the trained ensembles' loss (squared
    log-return error over the training target scale) of a forecast of zero."""
    scaled = data.validation.targets.astype(np.float64) / data.normalisation.target_scale
    return float(np.mean(np.square(scaled)))


def make_objective(
    params: Params, study: optuna.Study, data: TrainingData
) -> Callable[[optuna.Trial], float]:
    """The objective: train the trial's lstm, report val_loss for pruning, return the best."""
    mlflow = tracking.mlflow_api()

    def objective(trial: optuna.Trial) -> float:
        values = studies.suggest_params(trial, params.tune)
        trial_params = studies.with_trial_values(params, values)
        with studies.Heartbeat(study, trial):
            parent = mlflow.active_run()
            execution = parent.data.tags.get("pipeline_execution") if parent is not None else None
            child = mlflow.start_run(
                run_name=f"trial-{trial.number}", nested=True,
                tags={**tracking.run_tags("tune", execution), "optuna_trial": str(trial.number),
                      "optuna_study": study.study_name},
            )
            trial.set_user_attr("mlflow_run_id", child.info.run_id)
            mlflow.log_params(values)
            served_so_far = float("inf")

            def on_point(point: training.CurvePoint) -> None:
                nonlocal served_so_far
                assert point.val_loss is not None and point.served_val_loss is not None  # the lstm has both
                mlflow.log_metrics({"loss": point.loss, "val_loss": point.val_loss,
                                    "served_val_loss": point.served_val_loss}, step=point.step)
                # The ensemble with each member's best weights so far: what would be served if
                # training ended here, and what the objective returns at the end.
                served_so_far = point.served_val_loss
                trial.report(served_so_far, point.step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"val_loss {served_so_far:.4f} at step {point.step}")

            try:
                result = training.train_model(
                    data, trial_params.model, trial_params.train, trial_params.base.seed, on_point
                )
            except optuna.TrialPruned:
                mlflow.log_metric("best_val_loss", served_so_far)
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


def log_study_figures(study: optuna.Study) -> None:
    """Optuna's own plots of the study, as figures of the parent run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    mlflow = tracking.mlflow_api()

    plots: dict[str, Callable[[optuna.Study], Any]] = {
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


def run(params: Params, n_trials: Optional[int] = None) -> dict[str, Any]:
    """One tune invocation: stale trials failed, trials added, best model logged, reports written."""
    mlflow = tracking.mlflow_api()

    root = tracking.workspace_root()
    location = studies.storage_location(params.tune, root)
    shown = studies.display_location(location, root)
    if location.startswith("sqlite"):
        print(f"note: {shown} is SQLite; parallel workers may hit 'database is locked' "
              f"(use the default journal file or a server database)")
    data = layout.read_training_data()
    study, is_new, others = studies.open_study(params, layout.read_summary(), location)
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
    # The loss of forecasting "no change" on validation (every trial's step 0): the figure a
    # trial must beat, which the dashboard and the runs show beside the trials' values.
    persistence = persistence_val_loss(data)
    with warnings.catch_warnings():  # experimental in Optuna 4; the dashboard labels its axis with it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([OBJECTIVE_NAME])
    study.set_user_attr("persistence_val_loss", persistence)
    with tracking.stage_run("tune") as parent:
        tune_params = params.section_dict("tune")
        mlflow.log_params(tune_params)
        mlflow.log_params({"tune.n_trials_run": trials, "study": study.study_name})
        mlflow.set_tags({"optuna_study": study.study_name, "optuna_storage": shown})
        mlflow.log_metric("persistence_val_loss", persistence)

        def report(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            value = "" if trial.value is None else f" val_loss {trial.value:.4f}"
            print(f"trial {trial.number} {trial.state.name.lower()}{value} {trial.params}", flush=True)

        study.optimize(
            make_objective(params, study, data), n_trials=trials, timeout=params.tune.timeout,
            callbacks=[report], gc_after_trial=True,
            catch=(training.TrainingDiverged,),  # a diverged trial is FAIL; the search goes on
        )
        counts = studies.trial_counts(study)
        best = studies.best_values(study)
        mlflow.log_metrics({f"trials_{state}": n for state, n in counts.items()})
        if best is not None:
            # the children's names: one column holds a trial's values and the study's best
            mlflow.log_metric("best_val_loss", best["value"])
            mlflow.log_params(best["params"])
            mlflow.set_tag("best_trial", str(best["trial"]))
            # Training is deterministic, so retraining the best values gives the best trial's model.
            best_params = studies.with_trial_values(params, best["params"])
            best_model = training.train_model(
                data, best_params.model, best_params.train, best_params.base.seed).model
            logged = tracking.log_keras_model(best_model, data.validation.inputs[:5],
                                              name=f"tune-best-{tracking.model_name(best_params)}", exported=True)
            mlflow.log_metric("best_val_loss", best["value"], model_id=logged.model_id)
        log_study_figures(study)

        report_json: dict[str, Any] = {  # DVC metrics: numbers only
            "best_value": None if best is None else best["value"],
            "best_trial": None if best is None else best["trial"],
            "persistence_val_loss": persistence,
            "trials": counts,
            "trials_total": sum(counts.values()),
        }
        study_json = {"study_name": study.study_name, "storage": shown, "mlflow_run_id": parent.info.run_id}
        with atomic.Commit() as commit:
            layout.write_tune_reports(commit, layout.best_params_document(study.study_name, best), report_json,
                                      study_json)
        mlflow.log_artifact(str(layout.BEST_PARAMS_FILE))
        figures = {"tune_persistence_val_loss": persistence, "tune_trials": report_json["trials_total"]}
        if best is not None:
            figures["tune_best_val_loss"] = best["value"]
        parent.record(tracking.execution_params(params), figures)
    return report_json | study_json


def main(params: Params, n_trials: Optional[int] = None) -> None:
    report = run(params, n_trials)
    print(f"study {report['study_name']}: best val_loss {report['best_value']} "
          f"(trial {report['best_trial']}), trials {report['trials']}")

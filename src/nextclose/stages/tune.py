"""Stage 5: search hidden units, learning rate and steps with Optuna.

Every trial trains the default model through the train stage's own entry point
(:func:`nextclose.training.train_model`), ``train.seeds`` members at once, and is scored on the
ensemble it would serve (each member at its best weights), so the search does not chase one lucky
seed; the test split is never read. ``tune.objective`` says by what: ``val_loss``, its validation
loss (minimised), or ``rank_ic``, on a panel, the mean daily Rank IC of its validation forecasts
across symbols (maximised). The study lives in a persistent storage shared by every worker; one
MLflow parent run per invocation holds a nested child run per trial.

Writes ``reports/best_params.yaml`` (the best values, for ``nextclose
apply-best``), ``reports/tune.json`` (DVC metrics: the objective, the best value, persistence's,
trials by state) and ``reports/tune_study.json`` (which study, in which storage, and the MLflow
parent run).
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any, Callable, Optional

import numpy as np
import optuna

from nextclose import atomic, cross_section, features, layout, tracking, training
from nextclose import study as studies
from nextclose.errors import UserError
from nextclose.features import Normalisation, PanelWindows, TrainingData, Windows
from nextclose.params import Params

log = logging.getLogger("nextclose.tune")


class ObjectiveError(UserError, ValueError):
    """``tune.objective`` cannot score the prepared data; the message says what to change."""


def check_objective(objective: str, validation: Windows, per_symbol: Optional[dict[str, Normalisation]]) -> None:
    """Refuse ``rank_ic`` unless the validation split holds two or more symbols to rank."""
    if objective != "rank_ic":
        return
    symbols = sorted(set(validation.symbols)) if isinstance(validation, PanelWindows) and per_symbol else []
    if len(symbols) < 2:
        holds = "one series" if per_symbol is None else f"a panel of one symbol ({', '.join(symbols) or 'none'})"
        raise ObjectiveError(
            f"tune.objective: rank_ic ranks symbols against each other on each validation day, but "
            f"{layout.PREPARED_DIR} holds {holds}: nothing to rank; use tune.objective: val_loss, or a "
            f"panel of 2 or more symbols"
        )


def ensemble_answers(network: Any, inputs: np.ndarray) -> np.ndarray:
    """The served ensemble's outputs ``[n]``, :data:`nextclose.training.FORWARD_CHUNK` windows at a
    time (as :func:`nextclose.forecaster.network_answers`, whose module would tie the tune stage to
    the bars readers and the interval maths)."""
    return np.concatenate([np.zeros(0)] + [
        np.asarray(network(inputs[start:start + training.FORWARD_CHUNK]), dtype=np.float64).reshape(-1)
        for start in range(0, len(inputs), training.FORWARD_CHUNK)])


def validation_rank_ic(network: Any, validation: PanelWindows, target_scales: np.ndarray) -> tuple[float, int]:
    """The mean daily Rank IC of the ensemble's validation forecasts, and the days it ranked.

    ``validation`` holds windows scaled per symbol (what the network reads); its outputs times
    each sample's symbol's target scale are log returns, so the forecast return is
    ``exp(output * scale) - 1`` (forecast / last close - 1), and the realised one next close /
    last close - 1. A forecast the same for every symbol (every member still at its step-0
    weights: no change) ranks nothing: with fewer than two days ranked the mean is undefined, and
    the value is 0, no skill (Optuna takes no NaN).
    """
    forecast_return = np.expm1(ensemble_answers(network, validation.inputs) * target_scales)
    realised = validation.next_close / validation.last_close - 1.0
    panel = cross_section.grid(validation.target_dates, validation.symbols, forecast_return, realised)
    _, rank_ic = cross_section.daily_ic(panel)
    mean = cross_section.mean_figures(rank_ic, lags=0)["mean"]  # lags: the t-statistic is not used
    return (0.0 if mean is None else float(mean)), int(np.isfinite(rank_ic).sum())


def persistence_val_loss(data: TrainingData) -> float:
    """The validation loss of forecasting no change: the trained ensembles' loss (squared
    log-return error over the training target scale) of a forecast of zero."""
    scaled = data.validation.targets.astype(np.float64) / data.normalisation.target_scale
    return float(np.mean(np.square(scaled)))


def make_objective(
    params: Params, study: optuna.Study, data: TrainingData,
    per_symbol: Optional[dict[str, Normalisation]] = None,
) -> Callable[[optuna.Trial], float]:
    """The objective: train the trial's lstm and return its served ensemble's value of
    ``tune.objective``. For val_loss each evaluation's val_loss is reported, which the pruner
    reads; for rank_ic (which needs the panel's ``per_symbol`` statistics) nothing is: those
    val_losses would be minimised in a maximised study."""
    mlflow = tracking.mlflow_api()
    check_objective(params.tune.objective, data.validation, per_symbol)
    rank_ic_of: Optional[Callable[[Any], tuple[float, int]]] = None
    if params.tune.objective == "rank_ic":
        assert isinstance(data.validation, PanelWindows) and per_symbol is not None  # check_objective's
        rank_ic_of = functools.partial(validation_rank_ic, validation=data.validation, target_scales=(
            features.symbol_target_scales(data.validation.symbols, per_symbol)))

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
                if rank_ic_of is not None:  # no intermediate value: the pruner has none to judge by
                    return
                trial.report(served_so_far, point.step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"val_loss {served_so_far:.4f} at step {point.step}")

            try:
                result = training.train_model(
                    data, trial_params.model, trial_params.train, trial_params.base.seed, on_point
                )
                value = result.best_loss
                if rank_ic_of is not None:
                    value, days = rank_ic_of(result.model)
                    trial.set_user_attr("val_rank_ic_days", days)
            except optuna.TrialPruned:
                mlflow.log_metric("best_val_loss", served_so_far)
                mlflow.set_tag("state", "PRUNED")
                mlflow.end_run("KILLED")  # MLflow's word for a run stopped on purpose
                raise
            except BaseException:
                mlflow.set_tag("state", "FAIL")
                mlflow.end_run("FAILED")
                raise
            figures = {"best_val_loss": result.best_loss, "best_step": result.best_step,
                       "steps_run": result.steps_run}
            if rank_ic_of is not None:
                figures["val_rank_ic"] = value
            mlflow.log_metrics(figures)
            mlflow.set_tag("state", "COMPLETE")
            mlflow.end_run("FINISHED")
            return value

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
    per_symbol = layout.read_panel_normalisation()
    check_objective(params.tune.objective, data.validation, per_symbol)  # before a study is opened
    objective = studies.OBJECTIVES[params.tune.objective]
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
    # trial must beat, which the dashboard and the runs show beside the trials' values. No change
    # ranks no symbol above another: its Rank IC is undefined (null), and 0 is "no skill".
    persistence = persistence_val_loss(data)
    references: dict[str, Optional[float]] = {"persistence_val_loss": persistence}
    if params.tune.objective == "rank_ic":
        references[objective.reference] = None
        print("objective rank_ic: trials report no intermediate values, so the pruner stops none", flush=True)
    with warnings.catch_warnings():  # experimental in Optuna 4; the dashboard labels its axis with it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([objective.metric_name])
    for name, reference in references.items():
        study.set_user_attr(name, reference)
    with tracking.stage_run("tune") as parent:
        tune_params = params.section_dict("tune")
        mlflow.log_params(tune_params)
        mlflow.log_params({"tune.n_trials_run": trials, "study": study.study_name})
        mlflow.set_tags({"optuna_study": study.study_name, "optuna_storage": shown})
        mlflow.log_metric("persistence_val_loss", persistence)

        def report(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            value = "" if trial.value is None else f" {objective.metric_name} {trial.value:.4f}"
            print(f"trial {trial.number} {trial.state.name.lower()}{value} {trial.params}", flush=True)

        study.optimize(
            make_objective(params, study, data, per_symbol), n_trials=trials, timeout=params.tune.timeout,
            callbacks=[report], gc_after_trial=True,
            catch=(training.TrainingDiverged,),  # a diverged trial is FAIL; the search goes on
        )
        counts = studies.trial_counts(study)
        best = studies.best_values(study)
        mlflow.log_metrics({f"trials_{state}": n for state, n in counts.items()})
        if best is not None:
            # the children's names: one column holds a trial's values and the study's best
            mlflow.log_metric(objective.logged, best["value"])
            mlflow.log_params(best["params"])
            mlflow.set_tag("best_trial", str(best["trial"]))
            # Training is deterministic, so retraining the best values gives the best trial's model.
            best_params = studies.with_trial_values(params, best["params"])
            best_model = training.train_model(
                data, best_params.model, best_params.train, best_params.base.seed).model
            logged = tracking.log_keras_model(best_model, data.validation.inputs[:5],
                                              name=f"tune-best-{tracking.model_name(best_params)}", exported=True)
            mlflow.log_metric(objective.logged, best["value"], model_id=logged.model_id)
        log_study_figures(study)

        report_json: dict[str, Any] = {  # DVC metrics: numbers only (null: undefined, which DVC skips)
            # which objective, as the trials' states are given: every one named, 1 for the study's
            "objective": {name: int(name == params.tune.objective) for name in studies.OBJECTIVES},
            "best_value": None if best is None else best["value"],
            "best_trial": None if best is None else best["trial"],
            **references,
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
            figures[f"tune_best_{objective.metric_name}"] = best["value"]
        parent.record(tracking.execution_params(params), figures)
    return report_json | study_json


def main(params: Params, n_trials: Optional[int] = None) -> None:
    report = run(params, n_trials)
    name = studies.OBJECTIVES[params.tune.objective].metric_name
    print(f"study {report['study_name']}: best {name} {report['best_value']} "
          f"(trial {report['best_trial']}), trials {report['trials']}")

"""Stage 5: search hidden units, learning rate and steps with Optuna.

Every trial trains the default model through the train stage's own entry point
(:func:`nextclose.training.train_model`), ``train.seeds`` members at once, and is scored on the
ensemble it would serve (each member at its best weights), so the search does not chase one lucky
seed, and on ``tune.cv_folds`` blocks of the training and validation period, each trained on every
day before it (:mod:`nextclose.tuning_folds`), so it does not chase one lucky period either: the
value is the mean over the blocks. The test split and the walk-forward days are never read.
``tune.objective`` says by what: ``val_loss``, the validation loss (minimised), or ``rank_ic``,
on a panel, the mean daily Rank IC of the validation forecasts across symbols (maximised). The
study lives in a persistent storage shared by every worker; one MLflow parent run per invocation
holds a nested child run per trial, with each fold's values as steps.

Writes ``reports/best_params.yaml`` (the best values, for ``nextclose
apply-best``), ``reports/tune.json`` (DVC metrics: the objective, the best value, persistence's,
trials by state) and ``reports/tune_study.json`` (which study, in which storage, and the MLflow
parent run).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Optional

import numpy as np
import optuna

from nextclose import atomic, cross_section, features, layout, tracking, training, tuning_folds
from nextclose import study as studies
from nextclose.errors import UserError
from nextclose.features import Normalisation, PanelWindows, Windows
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


def read_folds(params: Params) -> list[tuning_folds.TuningFold]:
    """The ``tune.cv_folds`` folds of the prepared data (:func:`nextclose.tuning_folds.plan`)."""
    data = layout.read_training_data()
    return tuning_folds.plan(layout.read_windows(), layout.read_prepared_bars(), data.normalisation.feature_names,
                             params, data.tutorial_x, data.tutorial_y)


def make_objective(
    params: Params, study: optuna.Study, folds: list[tuning_folds.TuningFold],
) -> Callable[[optuna.Trial], float]:
    """The objective: train the trial's lstm on each fold and return the mean of its served
    ensembles' values of ``tune.objective`` over the folds.

    With several folds, the running mean is reported after each fold (step = the fold's
    number), which the pruner reads: a trial whose first folds are already bad stops there.
    With one fold, val_loss reports every evaluation's val_loss instead (step = the training
    step), and rank_ic reports nothing (those val_losses would be minimised in a maximised study).
    """
    mlflow = tracking.mlflow_api()
    objective_name = params.tune.objective
    for fold in folds:
        check_objective(objective_name, fold.data.validation, fold.per_symbol)
    metric = studies.OBJECTIVES[objective_name].metric_name
    per_fold = len(folds) > 1

    def fold_value(fold: tuning_folds.TuningFold, result: training.TrainResult) -> tuple[float, dict[str, float]]:
        """The fold's value of the objective, and what else its child run logs for it."""
        if objective_name != "rank_ic":
            return result.best_loss, {}
        validation = fold.data.validation
        assert isinstance(validation, PanelWindows) and fold.per_symbol is not None  # check_objective's
        value, days = validation_rank_ic(result.model, validation,
                                         features.symbol_target_scales(validation.symbols, fold.per_symbol))
        return value, {"fold_val_rank_ic_days": days}

    def objective(trial: optuna.Trial) -> float:
        values = studies.suggest_params(trial, params.tune)
        # The baseline is what every other trial is judged against: it runs to the end.
        prunable = "baseline" not in trial.user_attrs
        trial_params = studies.with_trial_values(params, values)
        with studies.Heartbeat(study, trial):
            parent = mlflow.active_run()
            execution = parent.data.tags.get("pipeline_execution") if parent is not None else None
            child = mlflow.start_run(
                run_name=f"trial-{trial.number}", nested=True,
                tags={**tracking.run_tags("tune", execution), "optuna_trial": str(trial.number),
                      "optuna_study": study.study_name}
                | ({"baseline": trial.user_attrs["baseline"]} if "baseline" in trial.user_attrs else {}),
            )
            trial.set_user_attr("mlflow_run_id", child.info.run_id)
            mlflow.log_params(values)
            served_so_far = float("nan")
            fold_values: list[float] = []
            fold_losses: list[float] = []
            fold_steps: list[int] = []
            fold_days: list[int] = []  # rank_ic: the days each fold's mean is over

            def on_point(point: training.CurvePoint) -> None:
                nonlocal served_so_far
                assert point.val_loss is not None and point.served_val_loss is not None  # the lstm has both
                prefix = f"fold{len(fold_values) + 1}/" if per_fold else ""
                mlflow.log_metrics({f"{prefix}loss": point.loss, f"{prefix}val_loss": point.val_loss,
                                    f"{prefix}served_val_loss": point.served_val_loss}, step=point.step)
                # The ensemble with each member's best weights so far: what would be served if
                # training ended here, and what the objective returns at the end.
                served_so_far = point.served_val_loss
                if per_fold or objective_name == "rank_ic":  # judged per fold, or not at all
                    return
                trial.report(served_so_far, point.step)
                if prunable and trial.should_prune():
                    raise optuna.TrialPruned(f"val_loss {served_so_far:.4f} at step {point.step}")

            def record_folds() -> None:
                trial.set_user_attr(f"fold_{metric}", fold_values)
                if objective_name != "val_loss":
                    trial.set_user_attr("fold_val_loss", fold_losses)
                trial.set_user_attr("fold_best_step", fold_steps)
                if fold_days:
                    trial.set_user_attr("fold_val_rank_ic_days", fold_days)

            try:
                for fold in folds:
                    result = training.train_model(
                        fold.data, trial_params.model, trial_params.train, trial_params.base.seed, on_point)
                    value, extra = fold_value(fold, result)
                    fold_values.append(value)
                    fold_losses.append(result.best_loss)
                    fold_steps.append(result.best_step)
                    if "fold_val_rank_ic_days" in extra:
                        fold_days.append(int(extra["fold_val_rank_ic_days"]))
                    number = len(fold_values)
                    mlflow.log_metrics({"fold_val_loss": result.best_loss, "fold_best_step": result.best_step,
                                        "fold_persistence_val_loss": fold.persistence_val_loss,
                                        "fold_drift_val_loss": fold.drift_val_loss}
                                       | ({"fold_val_rank_ic": value} if objective_name == "rank_ic" else {})
                                       | extra, step=number)
                    if per_fold:
                        running = float(np.mean(fold_values))
                        trial.report(running, number)
                        if prunable and number < len(folds) and trial.should_prune():
                            raise optuna.TrialPruned(f"{metric} {running:.4f} over the first {number} folds")
            except optuna.TrialPruned:
                record_folds()
                if fold_values:
                    mlflow.log_metric(f"mean_fold_{metric}", float(np.mean(fold_values)))
                if not per_fold and objective_name == "val_loss":
                    mlflow.log_metric("best_val_loss", served_so_far)
                mlflow.set_tag("state", "PRUNED")
                mlflow.end_run("KILLED")  # MLflow's word for a run stopped on purpose
                raise
            except BaseException:
                mlflow.set_tag("state", "FAIL")
                mlflow.end_run("FAILED")
                raise
            record_folds()
            value = float(np.mean(fold_values))
            figures = {studies.OBJECTIVES[objective_name].logged: value, "best_step": result.best_step,
                       "steps_run": result.steps_run}
            if objective_name != "val_loss":
                figures["best_val_loss"] = float(np.mean(fold_losses))
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
    folds = read_folds(params)
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
    if params.tune.baseline_trial:
        print(studies.enqueue_baseline(study, params.tune), flush=True)

    trials = n_trials if n_trials is not None else params.tune.n_trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)  # each trial traces its own functions; no news
    # The loss of forecasting "no change" on the folds (every trial's step 0), and of each
    # series' drift: the figures a trial must beat, which the dashboard and the runs show beside
    # the trials' values. No change ranks no symbol above another: its Rank IC is undefined
    # (null), and 0 is "no skill".
    persistence = float(np.mean([fold.persistence_val_loss for fold in folds]))
    drift = float(np.mean([fold.drift_val_loss for fold in folds]))
    references: dict[str, Optional[float]] = {"persistence_val_loss": persistence}
    if params.tune.objective == "rank_ic":
        references[objective.reference] = None
        if len(folds) == 1:
            print("objective rank_ic on one fold: trials report no intermediate values, so the pruner stops none",
                  flush=True)
    print(f"{len(folds)} fold(s), each trained on every day before it: " + "; ".join(
        f"{fold.start} .. {fold.end}" for fold in folds), flush=True)
    with warnings.catch_warnings():  # experimental in Optuna 4; the dashboard labels its axis with it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([objective.metric_name])
    for name, reference in references.items():
        study.set_user_attr(name, reference)
    # What the dashboard's "User Attributes" show beside the trials: the folds and what no skill scores on each.
    study.set_user_attr("drift_val_loss", drift)
    study.set_user_attr("cv_folds", [fold.dates() for fold in folds])
    study.set_user_attr("fold_persistence_val_loss", [fold.persistence_val_loss for fold in folds])
    study.set_user_attr("fold_drift_val_loss", [fold.drift_val_loss for fold in folds])
    with tracking.stage_run("tune") as parent:
        tune_params = params.section_dict("tune")
        mlflow.log_params(tune_params)
        mlflow.log_params({"tune.n_trials_run": trials, "study": study.study_name})
        mlflow.set_tags({"optuna_study": study.study_name, "optuna_storage": shown})
        mlflow.log_metric("persistence_val_loss", persistence)
        mlflow.log_metric("drift_val_loss", drift)
        mlflow.log_dict({"folds": [fold.dates() for fold in folds]}, "cv_folds.json")

        def report(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            value = "" if trial.value is None else f" {objective.metric_name} {trial.value:.4f}"
            print(f"trial {trial.number} {trial.state.name.lower()}{value} {trial.params}", flush=True)

        study.optimize(
            make_objective(params, study, folds), n_trials=trials, timeout=params.tune.timeout,
            callbacks=[report], gc_after_trial=True,
            catch=(training.TrainingDiverged,),  # a diverged trial is FAIL; the search goes on
        )
        counts = studies.trial_counts(study)
        best = studies.best_values(study)
        mlflow.log_metrics({f"trials_{state}": n for state, n in counts.items()})
        baseline = studies.baseline_value(study)
        if baseline is not None:  # beside the best in the parent run: what the defaults scored
            mlflow.log_metric(f"baseline_{objective.metric_name}", baseline)
            print(f"{studies.BASELINE}: {objective.metric_name} {baseline:.4f}", flush=True)
        if best is not None:
            # the children's names: one column holds a trial's values and the study's best
            mlflow.log_metric(objective.logged, best["value"])
            mlflow.log_params(best["params"])
            mlflow.set_tag("best_trial", str(best["trial"]))
            # The best values trained as the train stage would train them (on the training split,
            # early-stopped on validation): with one fold, the best trial's own model (training is
            # deterministic); with several, the model apply-best and dvc repro would give.
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

"""Stage 3: score the trained model against naive forecasts (:mod:`nextclose.evaluation`).

Writes ``reports/metrics.json`` (DVC metrics) and ``reports/predictions.csv``
(DVC plot: date, actual, model, one column per baseline), and an MLflow run
with the same numbers, the figures, and links both ways to the training run.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from nextclose import atomic, cross_section, evaluation, headline, layout, plots
from nextclose.features import PanelWindows
from nextclose.params import Params


def _link_to_training(client: Any, evaluate_run: Any, train_run: Optional[dict[str, Any]]) -> Optional[str]:
    """Link this evaluation and the run that trained ``models/`` both ways, when that run is
    known here (``models/`` pulled from a DVC remote was trained elsewhere); its model id or None."""
    from nextclose import tracking

    mlflow = tracking.mlflow_api()

    if train_run is None:
        print(f"note: {layout.TRAIN_RUN_FILE} is missing (models/ was not trained in this workspace); "
              f"the evaluation is not linked to a training run")
        return None
    try:
        client.set_tag(train_run["run_id"], "evaluate_run_id", evaluate_run.info.run_id)
    except mlflow.exceptions.MlflowException:
        print(f"note: training run {train_run['run_id']} is not in this MLflow store; not linked back")
        return None
    mlflow.set_tags({"train_run_id": train_run["run_id"], "model_uri": train_run["model_uri"],
                     "model_id": train_run["model_id"]})
    mlflow.set_tag(
        "mlflow.note.content",
        f"Evaluates training run [{train_run['run_id']}](#/experiments/{train_run['experiment_id']}"
        f"/runs/{train_run['run_id']}) and its model `{train_run['model_uri']}`.",
    )
    try:
        client.get_logged_model(train_run["model_id"])
    except mlflow.exceptions.MlflowException:
        return None
    return train_run["model_id"]


def main(params: Params) -> None:
    import keras

    from nextclose import model as _registers_tutorial_network  # noqa: F401  (load_model needs it)
    from nextclose import tracking

    mlflow = tracking.mlflow_api()

    started = time.perf_counter()
    train = layout.read_train_summary()
    kind = train["kind"]
    network = keras.saving.load_model(layout.model_file())
    if kind == "tutorial":
        x, y, target_dates = layout.read_tutorial_sequence()
        trained_x, _ = layout.read_tutorial_state()
        result = evaluation.evaluate_tutorial(network, x, y, trained_x, train["final_cost"], target_dates)
    else:
        bars = layout.read_prepared_bars()
        windows = layout.read_windows()
        per_symbol = layout.read_panel_normalisation()
        if per_symbol is not None:
            from nextclose import panel_evaluation

            calibration_days, test_days = windows["validation"], windows["test"]
            assert isinstance(calibration_days, PanelWindows) and isinstance(test_days, PanelWindows)
            if params.evaluate.arima:
                print("note: evaluate.arima is skipped on a panel (an ARIMA per symbol); baselines: "
                      "persistence and drift, each symbol's own")
            result = panel_evaluation.evaluate_panel(network, bars, calibration_days, test_days, per_symbol,
                                                     params.evaluate, params.base.seed)
        else:
            result = evaluation.evaluate_lstm(network, bars, windows["validation"], windows["test"],
                                              params.evaluate, params.base.seed)
    history = layout.read_history()
    csv_text = layout.predictions_csv(result.predictions)
    # Every scored symbol-day in prices; a single series is a panel of one, named after its source.
    panel_predictions = getattr(result, "panel_predictions", None)
    if panel_predictions is None:
        panel_predictions = evaluation.as_panel_predictions(result.predictions, layout.read_summary()["source"])
    # How the forecasts order the symbols each day (a single series: one symbol, nothing to rank).
    ranking, ranking_daily = cross_section.from_predictions(
        panel_predictions, getattr(result, "member_forecasts", None),
        layout.read_prepared_bars() if kind != "tutorial" else None,
        params.evaluate.top_k, params.evaluate.cost_bps, params.evaluate.hac_lags)
    ranked = cross_section.headline(ranking)

    with tracking.stage_run("evaluate") as run:
        client = tracking.client()
        # every param, not only evaluate's: this run's table then shows what the model was trained with
        mlflow.log_params(tracking.execution_params(params) | {"model.kind": kind})
        mlflow.log_params({f"fitted.{key}": value for key, value in result.fitted.items()})
        mlflow.set_tag("evaluated_on", "in-sample" if kind == "tutorial" else "test")
        # with the model's id, the metrics also show on the model's page
        model_id = _link_to_training(client, run, layout.read_train_run())
        mlflow.log_metrics(evaluation.tracked_metrics(result.report), model_id=model_id)
        mlflow.log_metrics(cross_section.tracked_metrics(ranking), model_id=model_id)
        figures = plots.evaluation_figures(result.predictions, history, train.get("best_step"), kind,
                                           panel="panel" in result.report)
        for path, figure in figures.items():
            mlflow.log_figure(figure, path)
        mlflow.log_dict(result.report, "metrics.json")
        mlflow.log_text(csv_text, "predictions.csv")
        mlflow.log_dict(ranking, "cross_section.json")
        # Files last, in one commit, inside the run: a kill before it leaves the old files and a
        # run that never finished (the next run marks it KILLED).
        with atomic.Commit() as commit:
            layout.write_evaluation(commit, result.report, headline.test_scores(result.report) | ranked, csv_text)
            layout.write_panel_predictions(commit, panel_predictions)
            layout.write_cross_section(commit, ranking, ranking_daily)
        validation = {"val_loss": train["best_val_loss"]} if "best_val_loss" in train else {}
        run.record(tracking.execution_params(params), headline.test_execution_figures(result.report) | validation
                   | {f"test_{key}": value for key, value in ranked.items()})
    print(evaluation.summary_table(result.report))
    if ranked:
        print(cross_section.summary_table(ranking))
        print(cross_section.verdict(ranking, f"on the {ranking['days']} test days", claims=False))
    print(f"evaluated {kind} in {time.perf_counter() - started:.1f} s; MLflow run {run.info.run_id}")

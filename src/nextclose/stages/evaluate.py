"""Stage 3: score the trained model against naive forecasts (:mod:`nextclose.evaluation`).

Writes ``reports/metrics.json`` (DVC metrics) and ``reports/predictions.csv``
(DVC plot: date, actual, model, one column per baseline), and an MLflow run
with the same numbers, the figures, and links both ways to the training run.
"""

from __future__ import annotations

import time
from typing import Any

from nextclose import evaluation, layout, plots
from nextclose.params import Params


def _link_to_training(client: Any, evaluate_run: Any, train: dict[str, Any]) -> None:
    """Tag the training run with this evaluation, when it lives in the same store."""
    import mlflow

    try:
        client.set_tag(train["run_id"], "evaluate_run_id", evaluate_run.info.run_id)
    except mlflow.exceptions.MlflowException:
        print(f"note: training run {train['run_id']} is not in this MLflow store; not linked back")


def main(params: Params) -> None:
    import keras
    import mlflow

    from nextclose import model as _registers_tutorial_network  # noqa: F401  (load_model needs it)
    from nextclose import tracking

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
        result = evaluation.evaluate_lstm(network, bars, layout.read_windows()["test"], params.evaluate)
    history = layout.read_history()
    csv_text = layout.predictions_csv(result.predictions)

    with tracking.stage_run("evaluate", run_name=f"evaluate-{kind}") as run:
        client = mlflow.MlflowClient()
        mlflow.log_params(params.section_dict("evaluate") | {"model.kind": kind})
        mlflow.log_params({f"fitted.{key}": value for key, value in result.fitted.items()})
        mlflow.set_tags({
            "train_run_id": train["run_id"], "model_uri": train["model_uri"],
            "model_id": train["model_id"], "evaluated_on": "in-sample" if kind == "tutorial" else "test",
        })
        mlflow.set_tag(
            "mlflow.note.content",
            f"Evaluates training run [{train['run_id']}](#/experiments/{train['experiment_id']}"
            f"/runs/{train['run_id']}) and its model `{train['model_uri']}`.",
        )
        flat = evaluation.tracked_metrics(result.report)
        try:
            client.get_logged_model(train["model_id"])
            model_id = train["model_id"]  # the metrics then also show on the model's page
        except mlflow.exceptions.MlflowException:
            model_id = None
        mlflow.log_metrics(flat, model_id=model_id)
        figures = plots.evaluation_figures(result.predictions, history, train.get("best_step"), kind)
        for path, figure in figures.items():
            mlflow.log_figure(figure, path)
        mlflow.log_dict(result.report, "metrics.json")
        mlflow.log_text(csv_text, "predictions.csv")
        _link_to_training(client, run, train)

    # Files last, each in one rename, so a failure above leaves the old outputs whole.
    layout.write_evaluation(result.report, csv_text)
    print(evaluation.summary_table(result.report))
    print(f"evaluated {kind} in {time.perf_counter() - started:.1f} s; MLflow run {run.info.run_id}")

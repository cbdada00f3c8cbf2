"""The MLflow model registry: every trained model is a version; an alias marks the best.

``nextclose champion`` moves an alias (``champion`` by default) to the version
with the lowest validation or test figure, so ``models:/nextclose-lstm@champion``
always loads the best model trained so far.
"""

from __future__ import annotations

import math
from typing import Optional

from nextclose.errors import UserError

class RegistryError(UserError, LookupError):
    """Nothing in the registry to choose from; the message says what to run first."""


# Where each figure lives: the training run, or the evaluation of that training run.
TRAIN_METRICS = ("best_val_loss",)
EVALUATE_METRICS = ("rmse_ratio_persistence", "rmse", "mae", "mape", "mase")


def registered_name(kind: str) -> str:
    """One registered model per model kind: their figures are not comparable."""
    return f"nextclose-{kind}"


def version_figure(client, version, metric: str) -> Optional[float]:
    """``metric`` of a model version, from its training run or that run's evaluation."""
    import mlflow

    try:
        train_run = client.get_run(version.run_id)
    except mlflow.exceptions.MlflowException:
        return None
    if metric in TRAIN_METRICS:
        return train_run.data.metrics.get(metric)
    evaluate_run_id = train_run.data.tags.get("evaluate_run_id")
    if not evaluate_run_id:
        return None
    try:
        return client.get_run(evaluate_run_id).data.metrics.get(metric)
    except mlflow.exceptions.MlflowException:
        return None


def choose_champion(figures: dict[str, Optional[float]]) -> Optional[str]:
    """The version with the lowest figure (the oldest on a tie); None when none has one."""
    scored = {v: f for v, f in figures.items() if f is not None and math.isfinite(f)}
    if not scored:
        return None
    return min(scored, key=lambda version: (scored[version], int(version)))


def main(kind: str, metric: str, alias: str) -> None:
    import mlflow

    from nextclose import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri())
    client = mlflow.MlflowClient()
    name = registered_name(kind)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise RegistryError(f"no versions of registered model {name!r} in {tracking.tracking_uri()}; "
                          f"run the train stage first")
    figures = {str(v.version): version_figure(client, v, metric) for v in versions}
    best = choose_champion(figures)
    if best is None:
        raise RegistryError(f"no version of {name!r} has {metric!r}"
                          + ("; run the evaluate stage" if metric in EVALUATE_METRICS else ""))
    client.set_registered_model_alias(name, alias, best)
    client.set_model_version_tag(name, best, f"{alias}_{metric}", str(figures[best]))
    for version, figure in sorted(figures.items(), key=lambda item: int(item[0])):
        mark = f"  <- {alias}" if version == best else ""
        shown = "-" if figure is None else f"{figure:.6g}"
        print(f"{name} version {version}: {metric} {shown}{mark}")
    print(f"load it with mlflow.pyfunc.load_model('models:/{name}@{alias}')")

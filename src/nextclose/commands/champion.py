"""``nextclose champion``: point a registry alias at the model version with the best figure.

The figure comes from the version's training run (``best_val_loss``, the served
ensemble's validation loss, by default) or from that run's evaluation on the test split;
:mod:`nextclose.registry` holds the rules, this module the MLflow calls.
"""

from __future__ import annotations

from typing import Any, Optional

from nextclose import registry


def version_figure(client: Any, version: Any, metric: str) -> Optional[float]:
    """``metric`` of a model version, from its training run or that run's evaluation."""
    import mlflow

    try:
        train_run = client.get_run(version.run_id)
    except mlflow.exceptions.MlflowException:
        return None
    if train_run.info.status != "FINISHED":  # killed or failed: its model was never settled
        return None
    if metric in registry.TRAIN_METRICS:
        return train_run.data.metrics.get(metric)
    evaluate_run_id = train_run.data.tags.get("evaluate_run_id")
    if not evaluate_run_id:
        return None
    try:
        return client.get_run(evaluate_run_id).data.metrics.get(metric)
    except mlflow.exceptions.MlflowException:
        return None


def main(kind: str, metric: str, alias: str) -> None:
    from nextclose import tracking

    with tracking.store_lock():
        client = tracking.open_client()
        for note in tracking.mark_dead_runs(client):
            print(f"note: {note}")
    name = registry.registered_name(kind)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise registry.RegistryError(
            f"no versions of registered model {name!r} in {tracking.tracking_uri()}; run the train stage first"
        )
    figures = {str(v.version): version_figure(client, v, metric) for v in versions}
    best = registry.choose_champion(figures)
    if best is None:
        raise registry.RegistryError(
            f"no version of {name!r} has {metric!r}"
            + ("; run the evaluate stage" if metric in registry.EVALUATE_METRICS else "")
        )
    client.set_registered_model_alias(name, alias, best)
    client.set_model_version_tag(name, best, f"{alias}_{metric}", str(figures[best]))
    client.set_model_version_tag(name, best, f"{alias}_chosen_on", registry.metric_split(metric))
    if registry.metric_split(metric) == "test":
        print(f"note: chosen on the test split ({metric}): its test figures are no longer an unbiased "
              f"estimate of its error; the default, best_val_loss, chooses on validation")
    for version, figure in sorted(figures.items(), key=lambda item: int(item[0])):
        mark = f"  <- {alias}" if version == best else ""
        shown = "-" if figure is None else f"{figure:.6g}"
        print(f"{name} version {version}: {metric} {shown}{mark}")
    print(f"load it with mlflow.pyfunc.load_model('models:/{name}@{alias}')")

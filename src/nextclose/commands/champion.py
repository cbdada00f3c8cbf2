"""``nextclose champion``: the newest registered version challenges ``@champion``.

The newest version gets ``@challenger``; ``@champion`` moves to it only when its figure is
better: lower, but higher for ``backtest_rank_ic`` (:func:`nextclose.registry.challenge`). The
figure comes from the version's training run (``best_val_loss``, the served ensemble's
validation loss, by default) or from the run of the pipeline execution that trained it
(``backtest_rmse_ratio``; for a panel's models, ``--panel``, also ``backtest_rank_ic``, the
walk-forward Rank IC mean); :mod:`nextclose.registry` holds the rules, this module the MLflow
calls.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from nextclose import registry

CHAMPION, CHALLENGER = "champion", "challenger"


def version_figure(client: Any, version: Any, metric: str) -> Optional[float]:
    """``metric`` of a model version, from its training run or its pipeline execution's run."""
    from nextclose import tracking

    mlflow = tracking.mlflow_api()

    try:
        train_run = client.get_run(version.run_id)
    except mlflow.exceptions.MlflowException:
        return None
    if train_run.info.status != "FINISHED":  # killed or failed: its model was never settled
        return None
    if metric in registry.TRAIN_METRICS:
        return train_run.data.metrics.get(metric)
    execution = train_run.data.tags.get("pipeline_execution")
    run = tracking.execution_run(client, execution) if execution else None
    return None if run is None else run.data.metrics.get(metric)


def takes_bars(name: str, version: str) -> bool:
    """Whether a version is a bars forecaster (:mod:`nextclose.served`), which ``nextclose
    predict`` and a served endpoint can use."""
    from nextclose import served, tracking

    mlflow = tracking.mlflow_api()

    try:
        return served.takes_bars(mlflow.models.get_model_info(f"models:/{name}/{version}").signature)
    except mlflow.exceptions.MlflowException:
        return False


def main(kind: str, metric: str, panel: bool = False) -> None:
    from nextclose import tracking

    registry.check_metric(metric, panel)
    mlflow = tracking.mlflow_api()

    with tracking.store_lock():
        client = tracking.open_client()
        for note in tracking.mark_dead_runs(client):
            print(f"note: {note}")
    name = registry.registered_name(kind, panel)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise registry.RegistryError(
            f"no versions of registered model {name!r} in {tracking.tracking_uri()}; run the train stage first"
        )
    try:
        champion: Optional[Any] = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        champion = None
    # The challenger: the newest version with the figure (a training that did not finish has
    # none) that can serve (an lstm takes bars), newer than the champion.
    figures = {int(v.version): version_figure(client, v, metric) for v in versions}
    oldest = 0 if champion is None else int(champion.version)
    newest, passed = None, []
    for version in sorted(figures, reverse=True):
        if version <= oldest:
            break
        figure = figures[version]
        if figure is None or not math.isfinite(figure):
            passed.append(f"{version} (no {metric})")
        elif kind == "lstm" and not takes_bars(name, str(version)):
            passed.append(f"{version} (takes tensors, not bars)")
        else:
            newest = version
            break
    if passed:
        print(f"note: passed over version{'s' if len(passed) > 1 else ''} {', '.join(passed)}")
    if newest is None:
        if champion is None:
            raise registry.RegistryError(
                f"no version of {name!r} can be champion: none has {metric}"
                + (" and takes bars (run the train stage)" if kind == "lstm" else "")
                + registry.missing_hint(metric))
        print(f"{name} version {champion.version} stays @{CHAMPION}: no newer version can challenge it")
        return
    unfit = None
    if kind == "lstm" and champion is not None and not takes_bars(name, str(champion.version)):
        unfit = "takes tensors, not bars (logged before the served model took bars)"
    decision = registry.challenge(
        metric, str(newest), figures[newest],
        None if champion is None else str(champion.version),
        None if champion is None else figures.get(int(champion.version)), unfit)
    split = registry.metric_split(metric)
    client.set_registered_model_alias(name, CHALLENGER, str(newest))
    client.set_model_version_tag(name, str(newest), "challenge", decision.reason)
    if decision.moved:
        client.set_registered_model_alias(name, CHAMPION, decision.champion)
        client.set_model_version_tag(name, decision.champion, "champion_reason", decision.reason)
        client.set_model_version_tag(name, decision.champion, "champion_chosen_on", split)
    verb = "is now" if decision.moved else "stays"
    print(f"{name} version {decision.champion} {verb} @{CHAMPION}: {decision.reason} ({split})")
    if kind == "lstm":
        print(f"forecast with it: nextclose predict (or mlflow models serve -m models:/{name}@{CHAMPION} "
              f"--env-manager local)")

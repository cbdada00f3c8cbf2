"""Stage 4: the walk-forward backtest (:mod:`nextclose.backtest`).

Retrains the ensemble before each fold with the train stage's settings and forecasts the
fold's days one step ahead, beside the baselines refitted per fold. Writes
``reports/backtest.json`` (DVC metrics: per fold, pooled with the tests against persistence
and the intervals' coverage, the members' spread, the baselines) and ``reports/backtest.csv``
(DVC plot: one row per forecast day), and an MLflow run with the same numbers, the
per-fold figures as steps, and a figure.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from nextclose import atomic, backtest, cross_section, headline, layout, plots
from nextclose.features import PanelWindows
from nextclose.params import Params


def main(params: Params) -> None:
    import tensorflow as tf

    from nextclose import tracking, training

    mlflow = tracking.mlflow_api()

    tf.get_logger().setLevel(logging.ERROR)  # each fold traces its own functions; no news
    started = time.perf_counter()
    if params.model.kind != "lstm":
        # The tutorial's network trains and scores in-sample on one sequence: there is no
        # held-out day to walk forward to. An empty backtest keeps `dvc repro` whole.
        with tracking.stage_run("backtest") as run:
            mlflow.set_tag("mlflow.note.content", f"model.kind {params.model.kind}: nothing to backtest")
            with atomic.Commit() as commit:
                layout.write_backtest(commit, backtest.empty_report(), {},
                                      layout.predictions_csv(backtest.table([])))
                layout.write_cross_section(commit, None, pd.DataFrame(columns=cross_section.DAILY_COLUMNS),
                                           None, layout.BACKTEST_CROSS_SECTION_TABLE_FILE)
            run.record(tracking.execution_params(params), {})
        print(f"backtest: model.kind {params.model.kind} trains and scores in-sample; nothing to walk forward "
              f"(wrote an empty {layout.BACKTEST_FILE})")
        return
    splits = layout.read_windows()
    bars = layout.read_prepared_bars()
    names = layout.read_normalisation().feature_names
    samples = backtest.all_samples(splits)
    days, validation_days = backtest.resolve_lengths(params.backtest, splits)
    panel = isinstance(samples, PanelWindows)
    if panel:  # folds cut in days; each symbol scaled by its own statistics on each fold's past
        folds = backtest.plan_panel_folds(samples.target_dates, days, params.backtest.folds, validation_days)
    else:
        folds = backtest.plan_folds(len(samples.targets), days, params.backtest.folds, validation_days)
    forecast_fold = backtest.forecast_panel_fold if panel else backtest.forecast_fold
    if panel and params.evaluate.arima:
        print("note: evaluate.arima is skipped on a panel (an ARIMA per symbol and fold); baselines: "
              "persistence and drift, each symbol's own")

    with tracking.stage_run("backtest") as run:
        mlflow.log_params(params.section_dict("base", "model", "train", "backtest", "evaluate")
                          | {"features.window": params.features.window, "backtest.days_resolved": days,
                             "backtest.validation_days_resolved": validation_days})

        def train_ensemble(train: Any, validation: Any, normalisation: Any) -> Any:
            """The train stage's training, on the fold's past (every fold from base.seed)."""
            return training.train_lstm(train, validation, normalisation, params.model, params.train,
                                       params.base.seed).model

        results = []
        for fold in folds:
            result = forecast_fold(fold, samples, bars, names, train_ensemble, params.evaluate)  # type: ignore[arg-type]
            results.append(result)
            mlflow.log_params({f"fold{fold.number}.{key}": value for key, value in result.fitted.items()})
            first, last = (str(d) for d in result.samples.target_dates[[0, -1]])
            print(f"fold {fold.number}/{len(folds)}: trained on {len(fold.train)} samples "
                  f"(+{len(fold.validation)} to early-stop), forecast {first} .. {last} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        report = backtest.report(results, params.evaluate, params.base.seed)
        forecasts = backtest.table(results)
        table_text = layout.predictions_csv(forecasts)
        # How the walk-forward forecasts order the symbols each day: the ranking verdict's figures.
        report["cross_section"], ranking_daily = cross_section.from_predictions(
            forecasts if panel else forecasts.assign(symbol=layout.read_summary()["source"]),
            backtest.member_forecasts(results), bars,
            params.evaluate.top_k, params.evaluate.cost_bps, params.evaluate.hac_lags)
        for number, fold_figures in enumerate(report["folds"], 1):
            mlflow.log_metrics({f"fold_{key}": fold_figures[key] for key in backtest.FOLD_KEYS}, step=number)
        mlflow.log_metrics(backtest.tracked_metrics(report))
        mlflow.log_metrics(cross_section.tracked_metrics(report["cross_section"]))
        if not panel:  # a price line per day: a panel has many symbols a day (backtest.json has them each)
            mlflow.log_figure(plots.backtest_figure(backtest.table(results)), "backtest.png")
        mlflow.log_dict(report, "backtest.json")
        mlflow.log_text(table_text, "backtest.csv")
        with atomic.Commit() as commit:
            layout.write_backtest(commit, report, headline.backtest_scores(report), table_text)
            layout.write_cross_section(commit, None, ranking_daily, None, layout.BACKTEST_CROSS_SECTION_TABLE_FILE)
        run.record(tracking.execution_params(params), headline.backtest_execution_figures(report))
    print(backtest.summary_table(report))
    if cross_section.headline(report["cross_section"]):
        print(cross_section.summary_table(report["cross_section"]))
        walk = report["cross_section"]
        print(cross_section.verdict(walk, f"over {walk['days']} walk-forward days"))
    print(f"backtest of {len(folds)} folds in {time.perf_counter() - started:.1f} s; MLflow run {run.info.run_id}")

"""The evaluation's figures, built as matplotlib ``Figure`` objects.

Figures are made with ``matplotlib.figure.Figure`` directly rather than
``pyplot``: no global figure registry to leak memory, no GUI backend to pick,
and ``Figure.savefig`` renders PNG with Agg on its own. No file I/O here: the
caller saves or logs them.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd

# Days shown in the close-up panel: few enough that the lines come apart.
ZOOM_DAYS = 40
# One colour per series across all figures, so "persistence" is the same line everywhere.
COLOURS = {
    "actual": "black", "model": "tab:red", "persistence": "tab:blue",
    "drift": "tab:green", "arima": "tab:purple",
}


def _new_figure(rows: int = 1, height: float = 4.0, sharey: bool = False):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, height * rows), layout="constrained")
    return figure, figure.subplots(rows, 1, squeeze=False, sharey=sharey)[:, 0]


def predictions_figure(
    dates: np.ndarray, actual: np.ndarray, forecasts: Mapping[str, np.ndarray], title: str
):
    """Forecast against actual close over the whole period, and over its last days.

    Forecast lines nearly cover the actual line in the top panel; that is the
    point of the close-up: a good-looking fit of price levels mostly shows the
    forecast trailing the actual by one day.
    """
    figure, (whole, close_up) = _new_figure(2)
    dates = pd.to_datetime(np.asarray(dates))
    for axes, start in ((whole, 0), (close_up, max(0, len(dates) - ZOOM_DAYS))):
        axes.plot(dates[start:], np.asarray(actual)[start:], color=COLOURS["actual"],
                  linewidth=2.0, label="actual")
        for name, values in forecasts.items():
            axes.plot(dates[start:], np.asarray(values)[start:], color=COLOURS.get(name),
                      linewidth=1.0, label=name, marker="." if start else None)
        axes.set_ylabel("close")
        axes.grid(alpha=0.3)
    whole.set_title(title)
    close_up.set_title(f"last {len(dates) - max(0, len(dates) - ZOOM_DAYS)} days")
    whole.legend(loc="upper left")
    return figure


def residuals_figure(
    dates: np.ndarray, actual: np.ndarray, forecasts: Mapping[str, np.ndarray], title: str
):
    """Forecast minus actual close, per day, one panel per forecaster on a shared scale."""
    figure, panels = _new_figure(len(forecasts), height=2.2, sharey=True)
    dates = pd.to_datetime(np.asarray(dates))
    for axes, (name, values) in zip(panels, forecasts.items()):
        residual = np.asarray(values, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
        axes.plot(dates, residual, color=COLOURS.get(name), linewidth=0.8)
        axes.axhline(0.0, color="grey", linewidth=0.8)
        rmse = float(np.sqrt(np.mean(np.square(residual))))
        axes.set_ylabel("forecast - actual")
        axes.set_title(f"{name} (RMSE {rmse:.4g})", loc="left", fontsize="medium")
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    return figure


def learning_curve_figure(history: pd.DataFrame, best_step: Optional[int], title: str):
    """Loss (and validation loss, when recorded) against optimizer steps: the ensemble's in
    bold, each member's thin beside it (``member<i>_loss``, ``member<i>_val_loss`` columns)."""
    figure, (axes,) = _new_figure(1)
    members = sorted({int(c[6:].split("_")[0]) for c in history.columns if c.startswith("member")})
    for index in members:
        kept = {"alpha": 0.35, "linewidth": 0.7}
        axes.plot(history["step"], history[f"member{index}_loss"], color="tab:blue",
                  label="members' loss" if index == members[0] else None, **kept)
        if f"member{index}_val_loss" in history:
            axes.plot(history["step"], history[f"member{index}_val_loss"], color="tab:orange",
                      label="members' val_loss" if index == members[0] else None, **kept)
    which = "mean of members' " if members else ""
    axes.plot(history["step"], history["loss"], color="tab:blue", linewidth=2, label=f"{which}loss")
    if "val_loss" in history:
        axes.plot(history["step"], history["val_loss"], color="tab:orange", linewidth=2,
                  label="ensemble val_loss" if members else "val_loss")
    if "served_val_loss" in history:
        axes.plot(history["step"], history["served_val_loss"], color="tab:red", linewidth=1.2,
                  linestyle="--", label="served: members' best weights")
        # The default model's losses are scaled so that "no change" scores 1 on training data.
        axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--", label="persistence (train)")
    if best_step is not None:
        axes.axvline(best_step, color="tab:red", linewidth=0.8, linestyle=":", label=f"kept: step {best_step}")
    if (history["loss"] > 0).all() and history["loss"].max() / history["loss"].min() > 100:
        axes.set_yscale("log")  # the tutorial network's cost falls over orders of magnitude
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def evaluation_figures(
    predictions: pd.DataFrame, history: pd.DataFrame, best_step: Optional[int], kind: str, panel: bool = False,
) -> dict[str, object]:
    """The evaluate run's PNGs by artifact path: forecasts, residuals, learning curve.

    ``predictions`` has the columns ``date, actual``, one per forecaster and the model's
    interval ``lower, upper``; a forecaster that made no forecast (an all-empty column) is
    left out. A panel's many symbols per day make no price line: its learning curve only.
    """
    curve = learning_curve_figure(history, best_step, f"Learning curve ({kind})")
    if panel:
        return {"figures/learning_curve.png": curve}
    forecasts = {
        name: predictions[name].to_numpy()
        for name in predictions.columns[2:]
        if name not in ("lower", "upper") and predictions[name].notna().any()
    }
    period = "in sample (tutorial)" if kind == "tutorial" else "test split"
    return {
        "figures/predictions.png": predictions_figure(
            predictions["date"], predictions["actual"], forecasts, f"Next close forecasts, {period}"
        ),
        "figures/residuals.png": residuals_figure(
            predictions["date"], predictions["actual"], forecasts, f"Forecast errors, {period}"
        ),
        "figures/learning_curve.png": curve,
    }


def backtest_figure(table: pd.DataFrame):
    """The walk-forward forecasts with their intervals, fold by fold (shaded boundaries), and
    each fold's RMSE against persistence's."""
    figure, (prices, ratios) = _new_figure(2)
    dates = pd.to_datetime(table["date"])
    prices.fill_between(dates, table["lower"], table["upper"], color=COLOURS["model"], alpha=0.15,
                        linewidth=0, label="model interval")
    prices.plot(dates, table["actual"], color=COLOURS["actual"], linewidth=1.5, label="actual")
    prices.plot(dates, table["model"], color=COLOURS["model"], linewidth=0.8, label="model")
    names, ratio = [], []
    for fold, days in table.groupby("fold", sort=True):
        if int(fold) % 2 == 0:
            prices.axvspan(pd.to_datetime(days["date"].iloc[0]), pd.to_datetime(days["date"].iloc[-1]),
                           color="grey", alpha=0.08, linewidth=0)
        errors = {name: float(np.sqrt(np.mean(np.square(days[name] - days["actual"]))))
                  for name in ("model", "persistence")}
        names.append(f"fold {int(fold)}\n{days['date'].iloc[0]}")
        ratio.append(errors["model"] / errors["persistence"])
    prices.set_ylabel("close")
    prices.set_title("walk-forward forecasts, one model per fold (alternate folds shaded)")
    prices.legend(loc="upper left")
    prices.grid(alpha=0.3)
    ratios.bar(names, ratio, color=COLOURS["model"])
    ratios.axhline(1.0, color=COLOURS["persistence"], linewidth=1.0, label="persistence")
    ratios.set_ylim(min(0.9, min(ratio) - 0.01), max(1.1, max(ratio) + 0.01))
    ratios.set_ylabel("RMSE / persistence's")
    ratios.legend(loc="upper right")
    ratios.grid(alpha=0.3, axis="y")
    return figure

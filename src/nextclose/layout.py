"""Where every stage's files live and what is in them: the one owner of the file formats.

Paths are relative to the working directory (the repository root, where DVC runs
the stages). Writers put each output into a stage's :class:`nextclose.atomic.Commit`,
so a stage's outputs change together or not at all, and write the same bytes for the
same content; readers turn the files back into the core's values.

- ``data/raw/``: ``bars.csv`` as the source gave it, ``raw.json`` where it came from.
- ``data/prepared/``: ``bars.csv`` (checked bars with their split; a panel's with a ``symbol``
  column), ``windows.npz`` (the default model's samples per split; a panel's with each sample's
  symbol), ``tutorial.npz`` (the tutorial's x, y and target dates; empty for a panel),
  ``prepared.json`` (split dates, counts, normalisation, source hash; a panel's ``panel`` block:
  its symbols and each one's normalisation).
- ``models/``: ``model.keras``, ``train.json`` (the kind, steps, final figures)
  and, for the tutorial kind, ``tutorial_state.npz`` (x and y as training left them).
- ``reports/``: ``train_history.csv``, ``resolved_params.yaml``, ``metrics.json`` and ``scores.json`` (its headline),
  ``predictions.csv`` (a panel's: each symbol-day relative to its last close), ``panel_predictions.csv``
  (every scored symbol-day, in prices; a single series is a panel of one), ``backtest.json`` and
  ``backtest_scores.json``, ``backtest.csv``,
  ``best_params.yaml``, ``tune.json`` (numbers) and ``tune_study.json`` (which study, where).
- ``.nextclose/train_run.json``: the MLflow run and model that made ``models/`` (untracked).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import pandas as pd
import yaml

from nextclose import atomic, features
from nextclose.errors import UserError
from nextclose.params import ParamsError
from nextclose.search_space import SEARCHED

if TYPE_CHECKING:  # types only: importing them would make every stage depend on their modules
    from nextclose.preparation import Prepared
    from nextclose.training import CurvePoint

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("models")
HISTORY_FILE = Path("reports/train_history.csv")
# What params.yaml's nulls resolve to (the kind's defaults): a top-level params file of dvc.yaml,
# so `dvc exp show` and `dvc params diff` show the values used beside the nulls.
RESOLVED_PARAMS_FILE = Path("reports/resolved_params.yaml")
METRICS_FILE = Path("reports/metrics.json")
# DVC's metrics: numbers only, and few, so `dvc exp show --only-changed` fits a screen; the full
# reports beside them are plain outputs (`dvc metrics show reports/metrics.json` still reads one).
SCORES_FILE = Path("reports/scores.json")
BACKTEST_SCORES_FILE = Path("reports/backtest_scores.json")
PREDICTIONS_FILE = Path("reports/predictions.csv")
# Every scored symbol-day in each symbol's own prices (a single series: a panel of one).
PANEL_PREDICTIONS_FILE = Path("reports/panel_predictions.csv")
BACKTEST_FILE = Path("reports/backtest.json")
BACKTEST_TABLE_FILE = Path("reports/backtest.csv")
# How well the forecasts order the symbols each day (nextclose.cross_section): the summary and the
# daily table (date, ic, rank_ic, long_short_return, turnover), of the test split and of the backtest
# (whose summary is backtest.json's cross_section block).
CROSS_SECTION_FILE = Path("reports/cross_section.json")
CROSS_SECTION_TABLE_FILE = Path("reports/cross_section.csv")
BACKTEST_CROSS_SECTION_TABLE_FILE = Path("reports/backtest_cross_section.csv")
BEST_PARAMS_FILE = Path("reports/best_params.yaml")
TUNE_REPORT_FILE = Path("reports/tune.json")
TUNE_STUDY_FILE = Path("reports/tune_study.json")

MODEL_FILE = "model.keras"
TRAIN_SUMMARY_FILE = "train.json"
TUTORIAL_STATE_FILE = "tutorial_state.npz"
# The lstm's validation residuals, for the forecaster's intervals (nextclose.forecaster.Calibration).
CALIBRATION_FILE = "calibration.json"
# The MLflow run and model that made models/: not a DVC output (it differs on every run, while
# models/ must not), not in git; evaluate links its run to it when it is there.
TRAIN_RUN_FILE = Path(".nextclose/train_run.json")

# Every output a stage commits: `nextclose` mends an interrupted commit of any of them first.
OUTPUTS = (RAW_DIR, PREPARED_DIR, MODELS_DIR, HISTORY_FILE, RESOLVED_PARAMS_FILE, METRICS_FILE, SCORES_FILE,
           PREDICTIONS_FILE, PANEL_PREDICTIONS_FILE, BACKTEST_FILE, BACKTEST_SCORES_FILE, BACKTEST_TABLE_FILE,
           CROSS_SECTION_FILE, CROSS_SECTION_TABLE_FILE, BACKTEST_CROSS_SECTION_TABLE_FILE, BEST_PARAMS_FILE,
           TUNE_REPORT_FILE, TUNE_STUDY_FILE, TRAIN_RUN_FILE)
# Zip members get this time, so the same content gives the same bytes (and the same DVC hash).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class MissingOutput(UserError, FileNotFoundError):
    """An input a stage needs is not there; the message names the stage that makes it."""


def _require(path: Path, made_by: str) -> Path:
    if not path.exists():
        raise MissingOutput(f"{path}: not found; run `nextclose {made_by}` (or dvc repro) first")
    return path


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed member times: the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME), buffer.getvalue())


def _renumber_shared_objects(config: Any) -> Any:
    """Keras marks objects several layers share with ``shared_object_id``, the Python ``id()``
    of the object: a memory address, new in every process. Number them by first appearance."""
    numbers: dict[Any, int] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            renumbered = {key: walk(value) for key, value in node.items()}
            if "shared_object_id" in node:
                renumbered["shared_object_id"] = numbers.setdefault(node["shared_object_id"], len(numbers) + 1)
            return renumbered
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(config)


def save_keras(model: Any, path: Path) -> None:
    """``model.save`` without the save time Keras stamps into the archive, so the same
    weights give the same bytes (and ``dvc status`` knows a reproduced model)."""
    stamped = path.with_name(path.name + ".stamped.keras")
    model.save(stamped)
    try:
        with zipfile.ZipFile(stamped) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
            for member in source.infolist():
                data = source.read(member.filename)
                if member.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata, sort_keys=True).encode()
                elif member.filename == "config.json":
                    data = json.dumps(_renumber_shared_objects(json.loads(data))).encode()
                target.writestr(zipfile.ZipInfo(member.filename, date_time=ZIP_TIME), data, zipfile.ZIP_DEFLATED)
    finally:
        stamped.unlink(missing_ok=True)


# --- data/raw ----------------------------------------------------------------------------------


def write_raw(commit: atomic.Commit, table: pd.DataFrame, metadata: dict[str, object],
              directory: Path = RAW_DIR) -> None:
    """Keep the source's bars as read, so a commit pins exactly the data it used."""
    staging = commit.directory(directory)
    atomic.write_new(staging / "bars.csv", table.to_csv(index=False, date_format="%Y-%m-%d"))
    atomic.write_new(staging / "raw.json", json.dumps(metadata, indent=2) + "\n")


def read_raw(directory: Path = RAW_DIR) -> Optional[tuple[dict[str, Any], pd.DataFrame]]:
    """The metadata and bars of an earlier fetch, or None when there is none to read."""
    meta_file, bars_file = directory / "raw.json", directory / "bars.csv"
    if not meta_file.exists() or not bars_file.exists():
        return None
    table = pd.read_csv(bars_file, parse_dates=["date"], dtype={"symbol": str})  # a panel's symbols as text
    numbers = [column for column in table.columns if column not in ("date", "symbol", "member")]
    table[numbers] = table[numbers].astype(np.float64)
    if "member" in table:  # a constituent panel's point-in-time membership
        table["member"] = table["member"].astype(bool)
    return json.loads(meta_file.read_text()), table


# --- data/prepared -----------------------------------------------------------------------------


def write_prepared(commit: atomic.Commit, prepared: Prepared, directory: Path = PREPARED_DIR) -> None:
    """Write all of ``prepared`` into ``directory``, replaced whole with the commit."""
    staging = commit.directory(directory)
    atomic.write_new(staging / "bars.csv", prepared.bars.to_csv(index=False, date_format="%Y-%m-%d"))
    arrays = {}
    for name, part in prepared.splits.items():
        for field in dataclasses.fields(part):  # a panel's windows add their symbols
            arrays[f"{name}_{field.name}"] = getattr(part, field.name)
    save_npz(staging / "windows.npz", arrays)
    save_npz(staging / "tutorial.npz", {"x": prepared.tutorial_x, "y": prepared.tutorial_y,
                                        "target_dates": prepared.tutorial_target_dates})
    atomic.write_new(staging / "prepared.json", json.dumps(prepared.summary(), indent=2) + "\n")


def read_windows(directory: Path = PREPARED_DIR) -> dict[str, features.Windows]:
    """The per-split samples written by :func:`write_prepared`."""
    with np.load(_require(directory / "windows.npz", "prepare")) as arrays:
        kind = features.PanelWindows if "train_symbols" in arrays else features.Windows
        return {
            name: kind(*(arrays[f"{name}_{field.name}"] for field in dataclasses.fields(kind)))
            for name in features.SPLITS
        }


def read_summary(directory: Path = PREPARED_DIR) -> dict[str, Any]:
    """``prepared.json``: split dates and counts, the normalisation, the source's hash."""
    return json.loads(_require(directory / "prepared.json", "prepare").read_text())


def read_normalisation(directory: Path = PREPARED_DIR) -> features.Normalisation:
    stats = read_summary(directory)["normalisation"]
    return features.Normalisation(
        tuple(stats["feature_names"]), tuple(stats["mean"]), tuple(stats["std"]), stats["target_scale"]
    )


def read_panel_normalisation(directory: Path = PREPARED_DIR) -> Optional[dict[str, features.Normalisation]]:
    """A panel's per-symbol statistics (None for a single series)."""
    panel = read_summary(directory).get("panel")
    if panel is None:
        return None
    return {
        symbol: features.Normalisation(tuple(stats["feature_names"]), tuple(stats["mean"]),
                                       tuple(stats["std"]), stats["target_scale"])
        for symbol, stats in panel["normalisation"].items()
    }


def read_tutorial_sequence(directory: Path = PREPARED_DIR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tutorial's x, y and the date of each target."""
    with np.load(_require(directory / "tutorial.npz", "prepare")) as arrays:
        return arrays["x"], arrays["y"], arrays["target_dates"]


def read_training_data(directory: Path = PREPARED_DIR) -> features.TrainingData:
    """What training may read (never the test split)."""
    windows = read_windows(directory)
    x, y, _ = read_tutorial_sequence(directory)
    train, validation = windows["train"], windows["validation"]
    per_symbol = read_panel_normalisation(directory)
    if per_symbol is not None:  # the global model reads windows already scaled per symbol
        assert isinstance(train, features.PanelWindows) and isinstance(validation, features.PanelWindows)
        train, validation = (features.normalise_panel(part, per_symbol) for part in (train, validation))
    return features.TrainingData(train, validation, read_normalisation(directory), x, y)


def read_prepared_bars(directory: Path = PREPARED_DIR) -> pd.DataFrame:
    """The checked bars of the date range with their ``split`` column (dates as text)."""
    return pd.read_csv(_require(directory / "bars.csv", "prepare"), dtype={"symbol": str})


# --- models/ -----------------------------------------------------------------------------------


def write_models(
    commit: atomic.Commit, model: Any, summary: dict[str, object],
    tutorial_state: Optional[tuple[np.ndarray, np.ndarray]] = None, directory: Path = MODELS_DIR,
    calibration: Optional[dict[str, Any]] = None,
) -> None:
    """The trained model (anything with Keras' ``save``), its summary, and the tutorial's
    trained data or the lstm's calibration, replacing ``directory`` with the commit. Same
    inputs, same bytes."""
    staging = commit.directory(directory)
    save_keras(model, staging / MODEL_FILE)
    if calibration is not None:
        atomic.write_new(staging / CALIBRATION_FILE, json.dumps(calibration) + "\n")
    if tutorial_state is not None:
        x, y = tutorial_state
        save_npz(staging / TUTORIAL_STATE_FILE, {"x": x, "y": y})
    atomic.write_new(staging / TRAIN_SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


def write_train_run(commit: atomic.Commit, ids: dict[str, Any], path: Path = TRAIN_RUN_FILE) -> None:
    commit.write_json(path, ids)


def read_train_run(path: Path = TRAIN_RUN_FILE) -> Optional[dict[str, Any]]:
    """The MLflow ids of the run that trained ``models/``, if this workspace made it."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def model_file(directory: Path = MODELS_DIR) -> Path:
    return _require(directory / MODEL_FILE, "train")


def read_train_summary(directory: Path = MODELS_DIR) -> dict[str, Any]:
    return json.loads(_require(directory / TRAIN_SUMMARY_FILE, "train").read_text())


def read_calibration(directory: Path = MODELS_DIR) -> dict[str, Any]:
    """The lstm's calibration document (the tutorial kind has none: it has no held-out days)."""
    return json.loads(_require(directory / CALIBRATION_FILE, "train").read_text())


def read_tutorial_state(directory: Path = MODELS_DIR) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's x and y as training left them (its optimizer trains the data)."""
    with np.load(_require(directory / TUTORIAL_STATE_FILE, "train")) as state:
        return state["x"], state["y"]


# --- reports/ ----------------------------------------------------------------------------------


def history_csv(history: Sequence[CurvePoint], with_validation: bool) -> str:
    """The learning curve: ``step,loss[,val_loss]``, exact floats; with several members also
    ``served_val_loss`` and one ``member<i>_loss[,member<i>_val_loss]`` pair per member (empty
    once it stopped).

    ``loss`` is the members' mean training loss; ``val_loss`` the ensemble's as it stands;
    ``served_val_loss`` that of the ensemble of each member's best weights so far."""
    members = len(history[0].member_losses) if history else 0
    names = ["step", "loss", "val_loss"] if with_validation else ["step", "loss"]
    if members > 1 and with_validation:
        names.append("served_val_loss")  # the ensemble of each member's best weights so far
    if members > 1:
        for index in range(1, members + 1):
            names += [f"member{index}_loss"] + ([f"member{index}_val_loss"] if with_validation else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)

    def exact(value: Optional[float]) -> str:
        return "" if value is None else repr(value)

    for row in history:
        values = [str(row.step), exact(row.loss)] + ([exact(row.val_loss)] if with_validation else [])
        if members > 1 and with_validation:
            values.append(exact(row.served_val_loss))
        if members > 1:
            val_losses = row.member_val_losses or (None,) * members
            for loss, val_loss in zip(row.member_losses, val_losses):
                values += [exact(loss)] + ([exact(val_loss)] if with_validation else [])
        writer.writerow(values)
    return out.getvalue()


def write_resolved_params(commit: atomic.Commit, model: Any, train: Any, path: Path = RESOLVED_PARAMS_FILE) -> None:
    """The values training ran with where ``params.yaml`` may say null (the kind's defaults)."""
    # under keys of their own: keys shared with params.yaml would make DVC name both files' columns by path
    resolved = {"resolved": {"hidden_units": model.hidden_units, "learning_rate": train.learning_rate,
                             "steps": train.steps}}
    commit.write_text(path, "# written by `nextclose train`: the values params.yaml's nulls resolved to\n"
                      + yaml.safe_dump(resolved, sort_keys=False))


def write_history(commit: atomic.Commit, history: Sequence[CurvePoint], with_validation: bool,
                  path: Path = HISTORY_FILE) -> None:
    commit.write_text(path, history_csv(history, with_validation))


def read_history(path: Path = HISTORY_FILE) -> pd.DataFrame:
    return pd.read_csv(_require(path, "train"))


def predictions_csv(predictions: pd.DataFrame) -> str:
    return predictions.to_csv(index=False, lineterminator="\n")


def write_evaluation(commit: atomic.Commit, report: dict[str, object], scores: dict[str, float],
                     predictions_text: str, metrics_file: Path = METRICS_FILE, scores_file: Path = SCORES_FILE,
                     predictions_file: Path = PREDICTIONS_FILE) -> None:
    commit.write_json(metrics_file, report)
    commit.write_json(scores_file, scores)
    commit.write_text(predictions_file, predictions_text)


def write_panel_predictions(commit: atomic.Commit, table: pd.DataFrame, path: Path = PANEL_PREDICTIONS_FILE) -> None:
    commit.write_text(path, predictions_csv(table))


def read_panel_predictions(path: Path = PANEL_PREDICTIONS_FILE) -> pd.DataFrame:
    return pd.read_csv(_require(path, "evaluate"), dtype={"symbol": str})


def write_cross_section(commit: atomic.Commit, summary: Optional[dict[str, Any]], daily: pd.DataFrame,
                        summary_file: Optional[Path] = CROSS_SECTION_FILE,
                        table_file: Path = CROSS_SECTION_TABLE_FILE) -> None:
    """The summary (unless it goes into another report: the backtest's) and the daily table."""
    if summary_file is not None and summary is not None:
        commit.write_json(summary_file, summary)
    commit.write_text(table_file, predictions_csv(daily))


def write_backtest(commit: atomic.Commit, report: dict[str, object], scores: dict[str, float],
                   table_text: str) -> None:
    write_evaluation(commit, report, scores, table_text, BACKTEST_FILE, BACKTEST_SCORES_FILE, BACKTEST_TABLE_FILE)


def best_params_document(study_name: str, best: Optional[dict[str, Any]]) -> dict[str, Any]:
    """``best_params.yaml``: the study, its best value and the best values by section."""
    document: dict[str, Any] = {"study_name": study_name, "best_value": None}
    if best is None:
        return document
    document["best_value"] = best["value"]
    for searched in SEARCHED:
        document.setdefault(searched.section, {})[searched.key] = searched.coerce(best["params"][searched.name])
    return document


def write_tune_reports(commit: atomic.Commit, best_params: dict[str, Any], report: dict[str, Any],
                       study: dict[str, Any], best_file: Path = BEST_PARAMS_FILE,
                       report_file: Path = TUNE_REPORT_FILE, study_file: Path = TUNE_STUDY_FILE) -> None:
    """``report``: the figures (DVC metrics, numbers only); ``study``: its name, storage, MLflow run."""
    commit.write_text(best_file, yaml.safe_dump(best_params, sort_keys=False))
    commit.write_json(report_file, report)
    commit.write_json(study_file, study)


def read_best_params(path: Path = BEST_PARAMS_FILE) -> dict[tuple[str, str], Any]:
    """The tuned values of ``best_params.yaml`` by ``(section, key)``; refuses a file
    without a best trial or with a value missing."""
    try:
        best = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run `nextclose tune` (or dvc repro) first") from None
    if not isinstance(best, dict) or best.get("best_value") is None:
        raise ParamsError(f"{path}: holds no best trial yet (no trial has completed)")
    values = {}
    for searched in SEARCHED:
        try:
            raw = best[searched.section][searched.key]
        except (KeyError, TypeError):
            raise ParamsError(f"{path}: {searched.name}: missing key") from None
        try:
            values[(searched.section, searched.key)] = searched.coerce(raw, f"{path}: {searched.name}")
        except ValueError as error:
            raise ParamsError(str(error)) from None
    return values

"""Stage 1: read the bars, check them, split them by time, build the model inputs.

Writes ``data/raw/`` (the bars as the source gave them, and ``raw.json``: source,
symbol, fetch time, hash; a network source is fetched only when these change) and
``data/prepared/`` (each directory replaced in one rename, after every check passed):
``bars.csv`` (the checked bars of the date range, with their split),
``windows.npz`` (the default model's samples per split),
``seed.npz`` (the tutorial's x and y) and ``prepared.json`` (split dates,
row counts, normalisation statistics, a hash of the source data).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from nextclose import atomic, bars, features
from nextclose.params import DataParams, Params

PREPARED_DIR = Path("data/prepared")
RAW_DIR = Path("data/raw")


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything the prepare stage computes, before anything is written."""

    source: str
    bars: pd.DataFrame  # the date range's checked bars, with a `split` column
    splits: dict[str, features.Windows]
    normalisation: features.Normalisation
    seed_x: np.ndarray
    seed_y: np.ndarray
    source_hash: str

    def summary(self) -> dict[str, object]:
        """The content of ``prepared.json``."""
        split_info = {}
        for name, part in self.splits.items():
            first, last = features.date_range(part.target_dates)
            split_info[name] = {"samples": int(len(part.targets)), "first_target": first, "last_target": last}
        return {
            "source": self.source,
            "source_sha256": self.source_hash,
            "rows": int(len(self.bars)),
            "first_date": self.bars["date"].iloc[0].strftime("%Y-%m-%d"),
            "last_date": self.bars["date"].iloc[-1].strftime("%Y-%m-%d"),
            "splits": split_info,
            "normalisation": dataclasses.asdict(self.normalisation),
            "seed": {"steps": int(len(self.seed_y))},
        }


@dataclasses.dataclass(frozen=True)
class Source:
    """The bars as the source gave them, what to call them, and where they came from."""

    table: pd.DataFrame
    name: str  # for messages and MLflow
    metadata: dict[str, object]  # data/raw/raw.json
    reused: bool = False  # network sources: read back from data/raw instead of fetched


def load_source(data: DataParams, raw_dir: Path = RAW_DIR) -> Source:
    """The unvalidated bars of ``data.source``.

    A network source is fetched only when ``data/raw`` does not already hold the
    same source, symbol and dates: ``dvc repro`` with unchanged params reuses it.
    """
    if data.source == "msft":
        table = bars.load_msft()
        return Source(table, "pmdarima.datasets.load_msft", local_metadata("msft", None, table))
    if data.source == "csv":
        assert data.path is not None  # the params check guarantees it
        table = bars.read_csv_bars(data.path, data.columns)
        return Source(table, data.path, local_metadata("csv", data.path, table))
    from nextclose import sources

    meta_file = raw_dir / "raw.json"
    if meta_file.exists():
        metadata = json.loads(meta_file.read_text())
        if sources.is_reusable(metadata, data.source, data.symbol, data.start_date, data.end_date):
            table = bars.read_csv_bars(raw_dir / "bars.csv")
            if bars.bars_hash(table) == metadata.get("bars_sha256"):
                return Source(table, f"{raw_dir / 'bars.csv'} ({data.source})", metadata, reused=True)
    table = sources.fetch(data.source, data.symbol, data.start_date, data.end_date)
    metadata = sources.raw_metadata(data.source, data.symbol, data.start_date, data.end_date, table)
    return Source(table, f"{data.source}:{metadata['library_symbol']}", metadata)


def local_metadata(source: str, path: Optional[str], table: pd.DataFrame) -> dict[str, object]:
    return {
        "source": source,
        "path": path,
        "rows": int(len(table)),
        "first_date": table["date"].iloc[0].strftime("%Y-%m-%d") if len(table) else None,
        "last_date": table["date"].iloc[-1].strftime("%Y-%m-%d") if len(table) else None,
        "bars_sha256": bars.bars_hash(table),
    }


def write_raw(source: Source, directory: Path = RAW_DIR) -> None:
    """Keep the source's bars as read, so a commit pins exactly the data it used."""
    if source.reused:
        return
    with atomic.new_directory(directory) as staging:
        source.table.to_csv(staging / "bars.csv", index=False, date_format="%Y-%m-%d")
        (staging / "raw.json").write_text(json.dumps(source.metadata, indent=2) + "\n")


def prepare(table: pd.DataFrame, source: str, params: Params) -> Prepared:
    """Check, cut and window the bars; raise ``DataError`` before anything is written."""
    bars.validate_bars(table, source)
    if params.features.volume and "volume" not in table:
        raise bars.DataError(
            f"{source}: no volume column, but features.volume is true in params "
            f"(set features.volume: false, or map the column with data.columns.volume)"
        )
    selected = bars.select_dates(table, params.data.start_date, params.data.end_date, source)
    if not params.features.volume:
        selected = selected.drop(columns=["volume"], errors="ignore")
    windows = features.make_windows(selected, params.features)
    if len(windows.targets) < 3 * features.MIN_SAMPLES_PER_SPLIT:
        raise bars.DataError(
            f"{source}: too few rows: {len(selected)} rows between data.start and data.end, "
            f"but features.window={params.features.window} plus "
            f"{3 * features.MIN_SAMPLES_PER_SPLIT} samples for the three splits need "
            f"{params.features.window + 3 * features.MIN_SAMPLES_PER_SPLIT}"
        )
    boundaries = features.split_boundaries(windows.target_dates, params.split)
    splits = features.split_windows(windows, boundaries, source, params.features.window)
    normalisation = features.fit_normalisation(
        splits["train"], features.feature_names(params.features.volume)
    )
    validation_start, test_start = (pd.Timestamp(b) for b in boundaries)
    labelled = selected.copy()
    labelled["split"] = np.where(
        labelled["date"] < validation_start, "train",
        np.where(labelled["date"] < test_start, "validation", "test"),
    )
    seed_x, seed_y = features.seed_sequence(selected)
    return Prepared(
        source, labelled, splits, normalisation, seed_x, seed_y, bars.bars_hash(selected)
    )


def write_prepared(prepared: Prepared, directory: Path) -> None:
    """Write all outputs into ``directory`` (replaced whole, or not at all)."""
    with atomic.new_directory(directory) as staging:
        prepared.bars.to_csv(staging / "bars.csv", index=False, date_format="%Y-%m-%d")
        arrays = {}
        for name, part in prepared.splits.items():
            for field in dataclasses.fields(features.Windows):
                arrays[f"{name}_{field.name}"] = getattr(part, field.name)
        np.savez(staging / "windows.npz", **arrays)
        seed_dates = prepared.bars["date"].to_numpy().astype("datetime64[D]")[1:]
        np.savez(staging / "seed.npz", x=prepared.seed_x, y=prepared.seed_y, target_dates=seed_dates)
        (staging / "prepared.json").write_text(json.dumps(prepared.summary(), indent=2) + "\n")


def load_windows(directory: Path = PREPARED_DIR) -> dict[str, features.Windows]:
    """Read back the per-split samples written by :func:`write_prepared`."""
    with np.load(directory / "windows.npz") as arrays:
        return {
            name: features.Windows(
                *(arrays[f"{name}_{field.name}"] for field in dataclasses.fields(features.Windows))
            )
            for name in features.SPLITS
        }


def load_normalisation(directory: Path = PREPARED_DIR) -> features.Normalisation:
    summary = json.loads((directory / "prepared.json").read_text())
    stats = summary["normalisation"]
    return features.Normalisation(
        tuple(stats["feature_names"]), tuple(stats["mean"]), tuple(stats["std"]), stats["target_scale"]
    )


def main(params: Params) -> None:
    import mlflow

    from nextclose import tracking

    loaded = load_source(params.data)
    source = loaded.name
    prepared = prepare(loaded.table, source, params)
    # Only now, with every check passed, is anything replaced.
    write_raw(loaded)
    write_prepared(prepared, PREPARED_DIR)
    summary = prepared.summary()
    if params.data.source not in ("msft", "csv"):
        how = "reused" if loaded.reused else "fetched"
        print(f"{how} {params.data.source} {params.data.symbol} bars "
              f"(fetched at {loaded.metadata['fetched_at']}; data/raw/raw.json)")
    print(
        f"prepared {summary['rows']} rows of {source} from {summary['first_date']} "
        f"to {summary['last_date']}: "
        + ", ".join(f"{n} {s['samples']} samples" for n, s in summary["splits"].items())
    )
    with tracking.stage_run("prepare"):
        mlflow.log_params(params.section_dict("data", "split", "features"))
        mlflow.log_metric("rows", summary["rows"])
        mlflow.log_metric("seed_steps", summary["seed"]["steps"])
        for name, split in summary["splits"].items():
            mlflow.log_metric(f"{name}_samples", split["samples"])
            mlflow.set_tag(f"{name}_first_target", split["first_target"])
            mlflow.set_tag(f"{name}_last_target", split["last_target"])
        mlflow.set_tags(
            {"source": source, "source_sha256": prepared.source_hash,
             "first_date": summary["first_date"], "last_date": summary["last_date"]}
        )
        with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways"
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(
                prepared.bars.assign(date=prepared.bars["date"].dt.strftime("%Y-%m-%d")),
                source=str((PREPARED_DIR / "bars.csv").resolve()),
                name=f"{params.data.source}:{summary['first_date']}..{summary['last_date']}",
                digest=prepared.source_hash[:16],
            )
        mlflow.log_input(dataset, context="prepare")
        mlflow.log_dict(summary["normalisation"], "normalisation.json")
        mlflow.log_dict(summary, "prepared.json")
        mlflow.log_dict(loaded.metadata, "raw.json")
        if "fetched_at" in loaded.metadata:
            mlflow.set_tags({"symbol": params.data.symbol, "fetched_at": loaded.metadata["fetched_at"],
                             "raw_reused": str(loaded.reused).lower()})

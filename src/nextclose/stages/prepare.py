"""Stage 1: read the bars, check them, split them by time, build the model inputs.

Writes ``data/raw/`` (the bars as the source gave them, and ``raw.json``: source,
symbol, fetch time, hash; a network source is fetched only when these change) and
``data/prepared/`` (both replaced in one commit, after every check passed);
:mod:`nextclose.layout` describes the files.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Optional

import pandas as pd

from nextclose import atomic, bars, layout, panels, preparation
from nextclose.params import CONSTITUENT_SOURCES, DataParams, Params


@dataclasses.dataclass(frozen=True)
class Source:
    """The bars as the source gave them, what to call them, and where they came from."""

    table: pd.DataFrame
    name: str  # for messages and MLflow
    metadata: dict[str, object]  # data/raw/raw.json
    reused: bool = False  # network sources: read back from data/raw instead of fetched


# Sources read from a package or a file: nothing fetched, nothing reused.
OFFLINE_SOURCES = ("msft", "csv", "sp500", "panel_csv")


def load_source(data: DataParams) -> Source:
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
    if data.source == "sp500":
        table = panels.load_sp500()
        return Source(table, "skfolio.datasets.load_sp500_dataset", local_metadata("sp500", None, table))
    if data.source == "panel_csv":
        assert data.path is not None  # the params check guarantees it
        table = panels.read_panel_csv(data.path, data.columns)
        return Source(table, data.path, local_metadata("panel_csv", data.path, table))
    if data.source in CONSTITUENT_SOURCES:
        return load_constituents(data)
    from nextclose import sources

    earlier = layout.read_raw()
    if earlier is not None:
        metadata, table = earlier
        if (sources.is_reusable(metadata, data.source, data.symbol, data.start_date, data.end_date)
                and bars.bars_hash(table) == metadata.get("bars_sha256")):
            return Source(table, f"{layout.RAW_DIR / 'bars.csv'} ({data.source})", metadata, reused=True)
    table = sources.fetch(data.source, data.symbol, data.start_date, data.end_date)
    metadata = sources.raw_metadata(data.source, data.symbol, data.start_date, data.end_date, table)
    return Source(table, f"{data.source}:{metadata['library_symbol']}", metadata)


def load_constituents(data: DataParams) -> Source:
    """An index's members as a panel with their point-in-time ``member`` column: ``data/raw``'s
    when it holds the same source, index, dates and membership data, else fetched (one call a stock)."""
    from nextclose import constituents

    assert data.start_date is not None  # the params check requires data.start for these sources
    earlier = layout.read_raw()
    if earlier is not None:
        metadata, table = earlier
        if (constituents.is_reusable(metadata, data.source, data.symbol, data.start_date, data.end_date)
                and constituents.check_reused(table, metadata)):
            return Source(table, f"{layout.RAW_DIR / 'bars.csv'} ({data.source})", metadata, reused=True)

    def progress(done: int, total: int, symbol: str) -> None:
        if done == 1 or done % 50 == 0 or done == total:
            print(f"{data.source} {data.symbol}: {done}/{total} constituents fetched ({symbol})", flush=True)

    table = constituents.fetch_constituent_panel(data.source, data.symbol, data.start_date, data.end_date,
                                                 progress=progress)
    metadata = constituents.raw_metadata(data.source, data.symbol, data.start_date, data.end_date, table)
    return Source(table, f"{data.source}:{metadata['index']}", metadata)


def local_metadata(source: str, path: Optional[str], table: pd.DataFrame) -> dict[str, object]:
    """raw.json of an offline source; a panel (a symbol column) adds its count of symbols."""
    if "symbol" in table:  # sorted by symbol: its first and last days are the extremes
        first, last = (table["date"].min(), table["date"].max()) if len(table) else (None, None)
    else:
        first, last = (table["date"].iloc[0], table["date"].iloc[-1]) if len(table) else (None, None)
    metadata: dict[str, object] = {
        "source": source,
        "path": path,
        "rows": int(len(table)),
        "first_date": first.strftime("%Y-%m-%d") if first is not None else None,
        "last_date": last.strftime("%Y-%m-%d") if last is not None else None,
        "bars_sha256": panels.panel_hash(table) if "symbol" in table else bars.bars_hash(table),
    }
    if "symbol" in table:
        metadata["symbols"] = int(table["symbol"].nunique())
    return metadata


def main(params: Params) -> None:
    from nextclose import tracking

    mlflow = tracking.mlflow_api()

    loaded = load_source(params.data)
    source = loaded.name
    prepared = preparation.prepare(loaded.table, source, params.data, params.split, params.features)
    summary = prepared.summary()
    if params.data.source not in OFFLINE_SOURCES:
        how = "reused" if loaded.reused else "fetched"
        print(f"{how} {params.data.source} {params.data.symbol} bars "
              f"(fetched at {loaded.metadata['fetched_at']}; {layout.RAW_DIR / 'raw.json'})")
        missing = loaded.metadata.get("missing")
        if missing:  # members the library had no bars for: the panel is short of them
            assert isinstance(missing, list)
            print(f"warning: {len(missing)} of the {loaded.metadata['constituents']} constituents have no bars from "
                  f"{params.data.source} in the period and are left out: {', '.join(missing[:20])}"
                  + (" ..." if len(missing) > 20 else ""))
    print(
        f"prepared {summary['rows']} rows of {source} from {summary['first_date']} "
        f"to {summary['last_date']}: "
        + ", ".join(f"{n} {s['samples']} samples" for n, s in summary["splits"].items())
    )
    with tracking.stage_run("prepare") as run:
        mlflow.log_params(params.section_dict("data", "split", "features"))
        mlflow.log_metric("rows", summary["rows"])
        mlflow.log_metric("tutorial_steps", summary["tutorial"]["steps"])
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
            dataset = mlflow.data.pandas_dataset.from_pandas(
                prepared.bars.assign(date=prepared.bars["date"].dt.strftime("%Y-%m-%d")),
                source=str((layout.PREPARED_DIR / "bars.csv").resolve()),
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
        # Only now, with every check passed, is anything replaced: both folders in one commit,
        # inside the run, so a run that never finished is one whose outputs may not have landed.
        with atomic.Commit() as commit:
            if not loaded.reused:
                layout.write_raw(commit, loaded.table, loaded.metadata)
            layout.write_prepared(commit, prepared)
        run.record(tracking.execution_params(params), {})

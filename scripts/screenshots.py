"""Screenshots of what a user sees, for the docs: ``python scripts/screenshots.py`` (``make screenshots``).

From the workspace's own stores (run it after ``dvc repro`` and a few ``dvc exp run``s), with
headless Chromium (Debian: ``apt-get install chromium``), it writes to ``docs/``:

- ``mlflow-runs.png``: the experiment ``nextclose`` in the MLflow UI, opened on its saved view;
- ``mlflow-compare.png``: MLflow's compare view of the latest executions;
- ``mlflow-models.png``: the train experiment's logged models with their figures;
- ``optuna-dashboard.png``: the current study in optuna-dashboard;
- ``optuna-trials.png``: its trial list, a trial's fold values among its user attributes;
- ``dvc-plots.png``: ``dvc plots show``, rendered offline.

The servers run on loopback ports of their own, on a copy of ``mlflow.db``; nothing in the
workspace is changed but ``docs/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from loopback import NoAnswer, free_port, wait_until_up  # scripts/loopback.py, beside this file

BIN = Path(sys.executable).parent


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("headless Chromium is needed: apt-get install chromium (Debian) or put it on PATH")


def shoot(url: str, out: Path, size: str = "2800,800", budget_ms: int = 15000) -> None:
    """One screenshot; the virtual time budget lets the single-page apps fetch and draw."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={size}", f"--virtual-time-budget={budget_ms}",
             f"--screenshot={out}", url],
            capture_output=True, text=True, timeout=300,
        )
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"chromium could not screenshot {url}:\n{done.stderr[-2000:]}")
    print(f"{out}  <- {url}")


def mlflow_shots(root: Path, docs: Path, scratch: Path) -> None:
    import mlflow

    database = scratch / "mlflow.db"
    shutil.copy2(root / "mlflow.db", database)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{database}")
    pipeline = client.get_experiment_by_name("nextclose")
    train = client.get_experiment_by_name("nextclose-train")
    if pipeline is None or train is None:
        raise SystemExit(f"{root / 'mlflow.db'} has no nextclose runs yet: run `dvc repro` first")
    latest = client.search_runs([pipeline.experiment_id], filter_string="metrics.test_rmse_ratio > 0",
                                order_by=["attributes.start_time DESC"], max_results=3)  # evaluated ones
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{database}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/health", server)
        shoot(f"{base}/#/experiments/{pipeline.experiment_id}/runs?workflowType=machine_learning"
              f"&viewStateShareKey=nextclose", docs / "mlflow-runs.png")
        runs = json.dumps([r.info.run_id for r in latest])
        shoot(f"{base}/#/compare-runs?runs={urllib.request.quote(runs)}"
              f"&experiments={urllib.request.quote(json.dumps([pipeline.experiment_id]))}",
              docs / "mlflow-compare.png", size="2400,1400")
        shoot(f"{base}/#/experiments/{train.experiment_id}/models?workflowType=machine_learning",
              docs / "mlflow-models.png")
    finally:
        server.terminate()
        server.wait(30)


def optuna_shot(root: Path, docs: Path, scratch: Path) -> None:
    import optuna

    journal = scratch / "optuna-journal.log"
    shutil.copy2(root / "optuna-journal.log", journal)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study_name = json.loads((root / "reports/tune_study.json").read_text())["study_name"]
    study_id = storage.get_study_id_from_name(study_name)
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "optuna-dashboard"), str(journal), "--host", "127.0.0.1", "--port", str(port)],
        cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/studies", server)
        shoot(f"{base}/dashboard/studies/{study_id}", docs / "optuna-dashboard.png", size="1800,1200")
        # the trial list: a trial's per-fold values (user attributes) and its running mean per fold
        shoot(f"{base}/dashboard/studies/{study_id}/trials", docs / "optuna-trials.png", size="1800,1400")
    finally:
        server.terminate()
        server.wait(30)


def dvc_plots_shot(root: Path, docs: Path, scratch: Path) -> None:
    out = scratch / "dvc_plots"
    done = subprocess.run([str(BIN / "dvc"), "plots", "show", "--out", str(out)], cwd=root,
                          capture_output=True, text=True, env=os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"})
    if done.returncode != 0:
        raise SystemExit(f"dvc plots show failed:\n{done.stderr[-2000:]}")
    shoot((out / "index.html").as_uri(), docs / "dvc-plots.png", size="1400,820")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs", type=Path, help="where the PNGs go (default: %(default)s)")
    parser.add_argument("--only", choices=("mlflow", "optuna", "dvc"), action="append",
                        help="take only these (repeatable; default: all)")
    args = parser.parse_args(argv)
    root = Path.cwd()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name, take in (("mlflow", mlflow_shots), ("optuna", optuna_shot), ("dvc", dvc_plots_shot)):
            if not args.only or name in args.only:
                try:
                    take(root, args.out, Path(scratch))
                except NoAnswer as error:
                    raise SystemExit(str(error)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`dvc plots show` draws the committed reports into a page that needs no network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from helpers import REPO

BIN = Path(sys.executable).parent
PAGE = REPO / ".dvc" / "plots" / "page.html"
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)
REMOTE = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def plots_show(tmp_path: Path) -> str:
    """The real `dvc plots show` in a scratch git repo holding the pipeline and the reports."""
    repo = tmp_path / "repo"
    for name in ("dvc.yaml", "params.yaml", ".dvc/config", "reports"):
        source, target = REPO / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "DVC_EXP_NAME")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run([str(BIN / "dvc"), "plots", "show", "-o", "out"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return (repo / "out" / "index.html").read_text(encoding="utf-8")


def test_dvc_uses_the_committed_page_template():
    config = (REPO / ".dvc" / "config").read_text()
    assert re.search(r"^\s*html_template\s*=\s*plots/page\.html\s*$", config, re.MULTILINE), config
    page = PAGE.read_text(encoding="utf-8")
    assert page.count("{plot_divs}") == 1
    assert "{scripts}" not in page  # where DVC would put its CDN script tags
    assert "BSD" in page and "University of Washington Interactive Data Lab" in page


def test_plots_show_writes_a_page_with_vega_inline_and_no_remote_script(tmp_path):
    html = plots_show(tmp_path)
    tags = SCRIPT_TAG.findall(html)
    assert tags and not any("src" in tag.lower() for tag in tags), tags
    assert not REMOTE.search(html), REMOTE.search(html)
    assert "cdn.jsdelivr.net" not in html
    for library in ("vega 5.33.0", "vega-lite 5.23.0", "vega-embed 6.29.0"):
        assert f"/* {library} */" in html
    assert 't.version="5.33.0"' in html  # vega's own code, not a reference to it
    # One chart per top-level plot of dvc.yaml, and none from the stages (no repeats).
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    titles = [next(iter(plot)) for plot in plots]
    assert html.count("vegaEmbed('#") == len(titles) == 8
    for plot in plots:
        (title, spec), = plot.items()
        # DVC draws a plot whose files hold no rows (the panel's ranking, on one series) untitled
        drawn = any(len(pd.read_csv(REPO / name)) for name in spec["y"])
        assert (f'"{title}"' in html) == drawn, title
        assert re.sub(r"[^A-Za-z0-9-]", "_", title) in html, title  # its div, drawn or not


def test_the_learning_curve_draws_loss_and_val_loss_only():
    template = (REPO / ".dvc" / "plots" / "learning_curve.json").read_text()
    assert '"fold": ["loss", "val_loss"]' in template

"""The README's headline figures are the committed reports' (written by `make figures`)."""

from __future__ import annotations

import json

import pytest

from nextclose import headline

from helpers import REPO


def committed(name: str) -> dict:
    return json.loads((REPO / "reports" / name).read_text())


def test_the_readme_headline_is_what_the_committed_reports_give():
    text = (REPO / "README.md").read_text()
    assert headline.current_block(text) == headline.render(committed("metrics.json"), committed("backtest.json")), (
        "README.md's headline figures differ from reports/: run `make figures`")


def test_the_headline_claims_skill_only_below_the_diebold_mariano_threshold():
    backtest = committed("backtest.json")
    block = headline.render(committed("metrics.json"), backtest)
    p_value = backtest["pooled"]["dm_p_value"]
    assert ("verdict: skill over" in block) == (p_value < 0.05)
    better = backtest | {"pooled": backtest["pooled"] | {"dm_p_value": 0.01}}
    assert "verdict: skill over" in headline.render(committed("metrics.json"), better)
    assert f"{backtest['pooled']['interval_coverage']:.1%}" in block


def test_the_block_is_replaced_between_its_markers_only():
    text = f"before\n{headline.BEGIN}\nold\nlines\n{headline.END}\nafter\n"
    assert headline.replace_block(text, "new") == f"before\n{headline.BEGIN}\nnew\n{headline.END}\nafter\n"
    assert headline.current_block(headline.replace_block(text, "new")) == "new"
    with pytest.raises(ValueError, match="README.md: the markers"):
        headline.replace_block("no markers", "new")

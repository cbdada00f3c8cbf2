"""The docs site: the generated Reference pages cover every params key, every command and option
and every report key with a description, and `mkdocs build --strict` passes (slow)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import typing

import pytest
import yaml

from nextclose import cli, layout, reference
from nextclose.params import Params

from helpers import REPO

PARAMS_TEXT = (REPO / "params.yaml").read_text(encoding="utf-8")
REPORT_DIRECTORIES = [REPO / directory for directory in reference.REPORT_DIRECTORIES]


def undescribed_params(params_text: str) -> list[str]:
    """The params keys whose reference entry has no description."""
    return [doc.name for _, _, docs in reference.param_docs(params_text) for doc in docs if not doc.description.strip()]


def undescribed_report_keys(directories) -> list[str]:
    """``file: key`` for every key of a committed report file without a description."""
    missing = []
    for name in reference.report_files(layout.OUTPUTS):
        for key in reference.collected_keys(name, directories):
            if not reference.describe_key(name, key).strip():
                missing.append(f"{name}: {key}")
    return missing


# --- params.yaml ---------------------------------------------------------------------------------


def test_every_params_key_has_a_description_type_and_the_committed_default():
    assert undescribed_params(PARAMS_TEXT) == []
    committed = yaml.safe_load(PARAMS_TEXT)
    sections = reference.param_docs(PARAMS_TEXT)
    expected = [(section.name, field.name) for section in dataclasses.fields(Params)
                for field in dataclasses.fields(typing.get_type_hints(Params)[section.name])]
    assert [(doc.section, doc.key) for _, _, docs in sections for doc in docs] == expected
    for _, _, docs in sections:
        for doc in docs:
            assert doc.type, doc.name
            assert yaml.safe_load(doc.default) == committed[doc.section][doc.key], doc.name


def test_the_params_page_has_an_entry_with_its_anchor_for_every_key():
    page = reference.render_params(PARAMS_TEXT)
    for _, _, docs in reference.param_docs(PARAMS_TEXT):
        for doc in docs:
            assert f"### `{doc.name}` {{#{doc.section}-{doc.key}}}" in page
    assert "{#tune}" in page and "{#train-steps}" in page  # the anchor format the other pages link to


def test_a_key_without_its_comment_has_no_description(tmp_path):
    """The coverage check can fail: params.yaml with one comment deleted."""
    broken = PARAMS_TEXT.replace("# days of history in each input window", "", 1)
    assert broken != PARAMS_TEXT
    assert undescribed_params(broken) == ["features.window"]


def test_comments_continue_on_deeper_comment_only_lines():
    text = ("# the header\n"
            "first:                # the section\n"
            "  key: \"a # b\"        # starts here;\n"
            "                      # goes on here\n"
            "# not a continuation: at the section's indentation\n"
            "  other: 1\n"
            "  third: 2  # alone\n"
            "\n"
            "                      # after a blank line: not a continuation\n")
    comments = reference.read_comments(text)
    assert comments.header == "the header"
    assert comments.sections == {"first": "the section"}
    assert comments.keys[("first", "key")] == reference.CommentedKey('"a # b"', "starts here; goes on here")
    assert comments.keys[("first", "other")].comment == ""
    assert comments.keys[("first", "third")].comment == "alone"


def test_the_committed_descriptions_join_their_continuation_lines():
    docs = {doc.name: doc for _, _, docs in reference.param_docs(PARAMS_TEXT) for doc in docs}
    assert docs["data.source"].description.startswith("msft: Microsoft daily bars")
    assert "a panel marked by point-in-time membership" in docs["data.source"].description
    assert docs["tune.storage"].description.endswith("OPTUNA_STORAGE wins")
    assert docs["model.kind"].type == "one of `lstm`, `tutorial`"
    assert docs["data.path"].type == "text or null"
    assert docs["train.steps"].type.startswith("integer or null (the model kind's default: lstm 3000")
    assert "must lie in 1 .. 10" in docs["tune.cv_folds"].rules  # the loader's own words


# --- the nextclose command -----------------------------------------------------------------------


def test_every_command_and_option_has_help_and_an_entry():
    parser = cli.build_parser()
    page = reference.render_cli(parser)
    docs = reference.command_docs(parser)
    commands = reference._subcommands(parser).choices
    assert [doc.name for doc in docs] == list(commands)
    assert {"prepare", "train", "evaluate", "backtest", "tune", "apply-best", "predict", "champion"} <= set(commands)
    sections = page.split("\n## ")[1:]
    for doc, section in zip(docs, sections):
        assert section.startswith(f"`nextclose {doc.name}` {{#{doc.name}}}")
        assert doc.summary.strip() and doc.description.strip(), doc.name
        flags = [action.option_strings for action in commands[doc.name]._actions
                 if action.option_strings != ["-h", "--help"]]
        assert [option.flags.split(" ")[0] for option in doc.options] == [flag[0] for flag in flags]
        for option in doc.options:
            assert option.help.strip(), f"{doc.name} {option.flags}"
            assert f"| `{option.flags}` |" in section
    assert "%(default)s" not in page and "(default: reports/best_params.yaml)" in page


def test_an_option_without_help_is_found():
    """The coverage check can fail: a parser with an option that says nothing."""
    parser = cli.build_parser()
    reference._subcommands(parser).choices["train"].add_argument("--silent")
    (train,) = [doc for doc in reference.command_docs(parser) if doc.name == "train"]
    assert [option.flags for option in train.options if not option.help] == ["--silent SILENT"]


# --- reports/ ------------------------------------------------------------------------------------


def test_every_report_file_is_committed_and_described():
    names = reference.report_files(layout.OUTPUTS)
    assert sorted(names) == sorted(path.name for path in (REPO / "reports").iterdir())
    assert all(reference.REPORTS[name].description for name in names)


def test_every_key_of_every_committed_report_has_a_description():
    assert undescribed_report_keys(REPORT_DIRECTORIES) == []


def test_a_new_report_key_has_no_description(tmp_path):
    """The coverage check can fail: a committed report with a key nobody described."""
    for path in (REPO / "reports").iterdir():
        shutil.copy(path, tmp_path / path.name)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    metrics["pooled_skill"] = 1.0
    metrics["baselines"]["drift"]["new_figure"] = 2.0
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    header, rest = (tmp_path / "backtest.csv").read_text().split("\n", 1)
    (tmp_path / "backtest.csv").write_text(header + ",spread\n" + rest)
    assert sorted(undescribed_report_keys([tmp_path])) == [
        "backtest.csv: spread", "metrics.json: baselines.<baseline>.new_figure", "metrics.json: pooled_skill"]


def test_report_keys_are_dotted_and_named_children_are_one_entry():
    document = {"a": {"b": 1, "c": [1, 2]}, "folds": [{"start": 1}, {"start": 2, "end": 3}],
                "baselines": {"drift": {"rmse": 1}, "arima": {"rmse": 2, "dm": 3}}, "seeds": {"count": 2}}
    assert reference.document_keys(document) == {
        "a.b": [], "a.c": [], "folds[].start": [], "folds[].end": [],
        "baselines.<baseline>.rmse": ["<baseline>: drift", "<baseline>: arima"],
        "baselines.<baseline>.dm": ["<baseline>: arima"], "seeds.count": []}
    assert reference.csv_keys("step,loss,member1_loss,member2_loss\n") == {
        "step": [], "loss": [], "member<i>_loss": ["<i>: 1", "<i>: 2"]}
    assert reference.describe_key("backtest.json", "pooled.rmse") == reference.FIGURES["rmse"]
    assert reference.describe_key("metrics.json", "no_such_key") == ""


def test_the_reports_page_lists_every_file_and_key_with_its_writer():
    names = reference.report_files(layout.OUTPUTS)
    stages = reference.writers((REPO / "dvc.yaml").read_text())
    assert set(names) <= set(stages)
    page = reference.render_reports(names, REPORT_DIRECTORIES, stages)
    for name in names:
        assert f"## `{name}` {{#{reference.report_anchor(name)}}}" in page
        assert f"Written by [`nextclose {stages[name]}`](cli.md#{stages[name]})" in page
        for key in reference.collected_keys(name, REPORT_DIRECTORIES):
            assert f"| `{key}` |" in page


def test_the_hook_generates_the_three_reference_pages():
    generated = reference.pages(REPO)
    assert sorted(generated) == ["reference/cli.md", "reference/params.md", "reference/reports.md"]
    assert all(text.startswith("<!-- Generated at build time") for text in generated.values())


# --- the site ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_site_builds_strictly_without_warnings(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (make docs installs it)")
    pytest.importorskip("material", reason="the docs extra is not installed (make docs installs it)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not [line for line in output.splitlines() if "WARNING" in line], output
    params_page = (tmp_path / "site" / "reference" / "params" / "index.html").read_text()
    assert 'id="train-steps"' in params_page and 'id="tune-cv_folds"' in params_page
    assert 'id="apply-best"' in (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert not (tmp_path / "site" / "hooks.py").exists()


# --- the README ----------------------------------------------------------------------------------

README_LINK = re.compile(r"\]\((?!https?://|#)([^)\s]+)\)")


def test_the_readme_is_short_and_every_link_is_a_page_of_the_site_or_a_picture():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]

    def pages(entries) -> set[str]:
        found: set[str] = set()
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            found |= pages(value) if isinstance(value, list) else {value}
        return found

    in_nav = pages(nav)
    links = README_LINK.findall(text)
    assert links, "the README links into the docs"
    for link in links:
        path = link.split("#")[0]
        assert (REPO / path).is_file(), f"README.md links to {link}, which is not in the repository"
        if path.endswith(".md"):
            assert path.removeprefix("docs/") in in_nav, f"README.md links to {link}, which the site's nav leaves out"

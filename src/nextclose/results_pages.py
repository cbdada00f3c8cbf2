"""``make figures``: the generated blocks of README.md and of the results pages (docs/results/),
each rewritten between its markers from the files its figures come from.

:data:`BLOCKS` is the whole list: which page holds which block, the file or directory it is
read from and the function that renders it. Only the blocks are rewritten, and only they are
redacted: the prose around them is the repository's own, and documents the very URL forms
redaction rewrites. A page without a block's markers is refused, naming the page; a block
whose source a bench has not written yet (``optional``) is left as it is.
``tests/test_results_pages.py`` fails when a committed block is not what its source gives.

    python -m nextclose.results_pages       # or: make figures
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

from nextclose import atomic, bench_figures, headline, redaction

RESULTS = Path("docs/results")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def render_headline(reports: Path) -> str:
    return headline.render(read_json(reports / "metrics.json"), read_json(reports / "backtest.json"))


def render_panel(reports: Path) -> str:
    return headline.render_panel(*(read_json(reports / name) for name in
                                   ("metrics.json", "backtest.json", "cross_section.json", "run.json")))


def _from_document(render: Callable[[Any], str]) -> Callable[[Path], str]:
    return lambda path: render(read_json(path))


@dataclasses.dataclass(frozen=True)
class Block:
    """One generated block: in ``page``, between :attr:`begin` and :attr:`end`, what ``render``
    makes of ``source`` (both paths from the repository root)."""

    page: str
    name: str
    source: str  # a directory ends with "/"
    render: Callable[[Path], str]
    command: str = "make figures"  # what the markers tell a reader to run
    optional: bool = False  # left alone while the source is missing (a bench not run yet)

    @property
    def begin(self) -> str:
        return f"<!-- {self.name} figures: written by `{self.command}` from {self.source}; do not edit by hand -->"

    @property
    def end(self) -> str:
        return f"<!-- end of {self.name} figures -->"


BLOCKS = (
    Block("README.md", "headline", "reports/", render_headline),
    Block(f"{RESULTS}/single-series.md", "headline", "reports/", render_headline),
    Block(f"{RESULTS}/panel.md", "panel", f"{headline.PANEL_REPORTS}/", render_panel, command="make panel-figures"),
    Block(f"{RESULTS}/tuning.md", "tuning", str(headline.TUNING_RESULTS), _from_document(headline.render_tuning),
          optional=True),
    Block(f"{RESULTS}/benchmarks.md", "training speed", "bench/results.json",
          _from_document(bench_figures.render_training_speed)),
    Block(f"{RESULTS}/benchmarks.md", "members", "bench/members.json", _from_document(bench_figures.render_members)),
    Block(f"{RESULTS}/benchmarks.md", "evaluate scaling", "bench/evaluate_scaling.json",
          _from_document(bench_figures.render_evaluate_scaling)),
    Block(f"{RESULTS}/benchmarks.md", "panel training", "bench/panel.json",
          _from_document(bench_figures.render_panel_training)),
    Block(f"{RESULTS}/mutation.md", "mutation", "bench/results/mutation.json",
          _from_document(bench_figures.render_mutation), optional=True),
)


def block_named(name: str, page: str) -> Block:
    return next(block for block in BLOCKS if block.name == name and block.page == page)


def _span(text: str, block: Block, where: str) -> tuple[int, int]:
    try:
        start = text.index(block.begin) + len(block.begin)
        return start, text.index(block.end, start)
    except ValueError:
        raise ValueError(f"{where}: the markers {block.begin!r} and {block.end!r} are missing") from None


def replace_block(text: str, block: Block, content: str, where: str) -> str:
    """``text`` with the lines between ``block``'s markers replaced by ``content``."""
    start, stop = _span(text, block, where)
    return text[:start] + "\n" + content + "\n" + text[stop:]


def current_block(text: str, block: Block, where: str = "the text") -> str:
    """What ``text`` holds between ``block``'s markers."""
    start, stop = _span(text, block, where)
    return text[start:stop].strip("\n")


def rendered(block: Block, root: Path) -> str | None:
    """The block as ``make figures`` writes it (redacted), or None while an optional source is missing."""
    source = root / block.source
    if block.optional and not source.exists():
        return None
    return redaction.redact(block.render(source))


def write_pages(root: Path, blocks: tuple[Block, ...] = BLOCKS) -> dict[str, bool]:
    """Rewrite every block under ``root``; page -> whether it changed."""
    changed = {}
    for page in dict.fromkeys(block.page for block in blocks):
        path = root / page
        text = path.read_text()
        updated = text
        for block in (block for block in blocks if block.page == page):
            content = rendered(block, root)
            if content is None:
                _span(updated, block, page)  # the markers must be there even while the block waits
                continue
            updated = replace_block(updated, block, content, page)
        if updated != text:
            atomic.write_text(path, updated, redacted=True)
        changed[page] = updated != text
    return changed


def main(root: Path = Path(".")) -> int:
    for page, changed in write_pages(root).items():
        blocks = [block for block in BLOCKS if block.page == page]
        written = [block.source for block in blocks if not block.optional or (root / block.source).exists()]
        waiting = [block.source for block in blocks if block.source not in written]
        print(f"{page}: " + "; ".join(
            ([f"{'rewritten from' if changed else 'already matches'} {', '.join(written)}"] if written else [])
            + ([f"left as it is until {', '.join(waiting)} is written"] if waiting else [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

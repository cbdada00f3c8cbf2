"""dvc.yaml's code deps can't drift: each stage lists every nextclose module its program runs.

The modules a stage runs are found from the imports themselves, followed through every
nextclose module (imports inside functions included, ``if TYPE_CHECKING:`` blocks not,
since they never run), starting at the stage's program ``nextclose.stages.<stage>``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from helpers import REPO

SRC = REPO / "src"
PACKAGE = "nextclose"

# Modules that cannot change what a stage writes to its DVC outputs, and why.
NOT_DEPS = {
    "nextclose": "a package marker: no code",
    "nextclose.stages": "a package marker: no code",
    "nextclose.errors": "the classes of the user's errors: they shape messages, never outputs",
    "nextclose.tracking": "MLflow runs and tags; the run ids it hands back differ on every run anyway",
    "nextclose.atomic": "how an output is replaced, not what it holds",
    "nextclose.cli": "argument parsing and error printing; the stage programs start below it",
    "nextclose.processes": "which process did the work (run tags, dead workers), never what it made",
    "nextclose.redaction": "masks credentials on their way out; an output that holds none is left as it is",
}


def module_file(module: str) -> Path | None:
    """The source file of a nextclose module or package, or None if there is none."""
    base = SRC / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(path: Path) -> set[str]:
    """The nextclose modules ``path`` imports anywhere, except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the deps test follows absolute ones"
            module = node.module or ""
            if module.split(".")[0] == PACKAGE:
                for alias in node.names:
                    submodule = f"{module}.{alias.name}"
                    found.add(submodule if module_file(submodule) else module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def with_parents(module: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` too."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def modules_run_by(program: str) -> set[str]:
    """Every nextclose module that running ``program`` may import, itself included."""
    seen: set[str] = set()
    todo = [program]
    while todo:
        module = todo.pop()
        for name in with_parents(module):
            if name in seen:
                continue
            seen.add(name)
            path = module_file(name)
            assert path is not None, f"{name}: imported, but no such module under {SRC}"
            todo.extend(imported_modules(path))
    return seen


def required_deps(stage: str) -> set[str]:
    """The source files ``stage``'s ``deps`` must list."""
    modules = modules_run_by(f"{PACKAGE}.stages.{stage}") - set(NOT_DEPS)
    return {module_file(m).relative_to(REPO).as_posix() for m in modules}  # type: ignore[union-attr]


def pipeline() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def drift(stage: str, deps: list[str]) -> tuple[set[str], set[str]]:
    """(missing, stale): modules the program runs that ``deps`` lacks, and listed source files
    it never runs (each reruns the stage for nothing)."""
    listed = {dep for dep in deps if dep.startswith("src/")}
    required = required_deps(stage)
    return required - listed, listed - required


STAGES = sorted(pipeline())


def test_every_stage_is_a_nextclose_program():
    for stage, spec in pipeline().items():
        assert spec["cmd"] == f"{PACKAGE} {stage}", f"{stage}: the deps test expects `nextclose {stage}`"
        assert module_file(f"{PACKAGE}.stages.{stage}") is not None


@pytest.mark.parametrize("stage", STAGES)
def test_deps_list_exactly_the_modules_the_stage_runs(stage):
    missing, stale = drift(stage, pipeline()[stage]["deps"])
    assert not missing, f"dvc.yaml: stage {stage} runs these but does not list them in deps: {sorted(missing)}"
    assert not stale, f"dvc.yaml: stage {stage} lists these in deps but never runs them: {sorted(stale)}"


@pytest.mark.parametrize("stage", STAGES)
def test_removing_any_dep_is_caught(stage):
    deps = pipeline()[stage]["deps"]
    for dep in [d for d in deps if d.startswith("src/")]:
        missing, _ = drift(stage, [d for d in deps if d != dep])
        assert missing == {dep}


@pytest.mark.parametrize("stage", STAGES)
def test_stages_never_import_each_other(stage):
    program = f"{PACKAGE}.stages.{stage}"
    others = {m for m in modules_run_by(program) if m.startswith(f"{PACKAGE}.stages.")} - {program}
    assert not others, f"{program} imports other stage programs: {sorted(others)}"


def test_imports_under_type_checking_are_not_followed(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from nextclose import layout\n"
        "if TYPE_CHECKING:\n    from nextclose.preparation import Prepared\n"
        "def f():\n    import nextclose.metrics\n    from nextclose.params import Params\n"
    )
    assert imported_modules(source) == {"nextclose.layout", "nextclose.metrics", "nextclose.params"}

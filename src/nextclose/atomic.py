"""Writing outputs so that a failure or a kill never leaves them half-written or mixed.

A stage's outputs change as one commit (:class:`Commit`): each output is written to a
temporary sibling (``.<name>.<random>.tmp``) first; then a journal naming every
(temporary, output) pair is written in one rename, and only then are the outputs renamed
into place, a replaced directory first moved aside (``.<name>.nextclose.old``). The journal
is the commit point. :func:`recover`, which every ``nextclose`` command runs first, finishes
the renames of a commit whose journal exists and rolls back (deletes the temporaries of)
one whose journal does not, so after a kill at any point every stage's outputs are all old
or all new, and no temporary is left.

Files and directories get the modes the umask gives (0644 / 0755 usually), not the
0600 / 0700 of :mod:`tempfile`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional

from nextclose import redaction

# In the working directory (the repository root, where the stages run).
JOURNAL = Path(".nextclose-commit.json")
LOCK = Path(".nextclose-commit.lock")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_new(path: Path, text: str, redacted: bool = False) -> None:
    """Write a new file's text, redacted (:func:`nextclose.redaction.redact`): the one way text
    reaches a file (``Commit.write_text``, :func:`write_text`, and a file in a folder that a
    ``Commit`` stages); ``tests/test_redaction.py`` scans the code for any other.

    ``redacted=True``: the caller redacted every part of ``text`` that did not come from the
    repository itself (the generated blocks of README.md and docs/results/: the prose documents the URL forms that
    redaction rewrites, and must stay as written)."""
    path.write_text(text if redacted else redaction.redact(text), encoding="utf-8")


def _temporary_file(target: Path) -> Path:
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def _temporary_directory(target: Path) -> Path:
    name = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.chmod(name, 0o777 & ~_umask())
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(path: Path) -> None:
    for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        with open(file, "rb") as stream:
            os.fsync(stream.fileno())


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block; other processes wait."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _workspace_lock(root: Path) -> contextlib.AbstractContextManager[None]:
    """One commit or recovery at a time in a workspace (e.g. two tune workers finishing)."""
    return file_lock(root / LOCK)


def _old_sibling(output: Path) -> Path:
    """Where a replaced directory waits until its commit is done."""
    return output.with_name(f".{output.name}.nextclose.old")


class Commit:
    """The outputs of one stage, replaced together or not at all.

    ``path(output)`` and ``directory(output)`` hand out temporaries to write into;
    leaving the ``with`` block normally commits them all, an exception deletes them.
    """

    def __init__(self, root: Path = Path(".")):
        self.root = root
        self.pairs: list[tuple[Path, Path]] = []  # (temporary, output), as given (relative)
        self._lock = contextlib.ExitStack()

    def __enter__(self) -> Commit:
        self._lock.enter_context(_workspace_lock(self.root))
        return self

    def _stage(self, output: str | Path, make: Callable[[Path], Path]) -> Path:
        output = Path(output)
        (self.root / output).parent.mkdir(parents=True, exist_ok=True)
        temporary = make(self.root / output)
        self.pairs.append((output.parent / temporary.name, output))
        return temporary

    def path(self, output: str | Path) -> Path:
        """An empty temporary file that becomes ``output`` on commit."""
        return self._stage(output, _temporary_file)

    def directory(self, output: str | Path) -> Path:
        """An empty temporary directory that replaces ``output`` whole on commit."""
        return self._stage(output, _temporary_directory)

    def write_text(self, output: str | Path, text: str) -> None:
        write_new(self.path(output), text)

    def write_json(self, output: str | Path, value: object) -> None:
        self.write_text(output, json.dumps(value, indent=2, sort_keys=False) + "\n")

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        try:
            if kind is None:
                _commit(self.root, self.pairs)
            else:
                for temporary, _ in self.pairs:
                    _remove(self.root / temporary)
        finally:
            self._lock.close()


def _commit(root: Path, pairs: list[tuple[Path, Path]]) -> None:
    for temporary, _ in pairs:  # the content is on disk before the journal says "commit"
        _fsync_tree(root / temporary)
    staged = _temporary_file(root / JOURNAL)
    with open(staged, "w", encoding="utf-8") as stream:
        json.dump({"pairs": [[str(t), str(o)] for t, o in pairs]}, stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(staged, root / JOURNAL)  # the commit point
    _fsync_directory(root)
    _roll_forward(root, pairs)


def _roll_forward(root: Path, pairs: list[tuple[Path, Path]]) -> None:
    """Rename every temporary into place; safe to repeat after a kill at any point."""
    for temporary_name, output_name in pairs:
        temporary, output = root / temporary_name, root / output_name
        if not temporary.exists():
            continue  # renamed already
        if temporary.is_dir() and output.exists():
            old = root / _old_sibling(output_name)
            _remove(old)  # a leftover of an earlier commit
            os.replace(output, old)
        os.replace(temporary, output)
    _fsync_directory(root)
    for _, output_name in pairs:
        _remove(root / _old_sibling(output_name))
    with contextlib.suppress(FileNotFoundError):
        (root / JOURNAL).unlink()


def recover(root: Path = Path("."), outputs: tuple[Path, ...] = ()) -> Optional[str]:
    """Finish or roll back an interrupted commit in ``root``; say which, or None if none was.

    With a journal, the commit had been decided: its renames are completed. Without one,
    it had not: the temporaries beside each of ``outputs`` are deleted, and a directory
    moved aside is moved back if its output is missing.
    """
    try:
        with _workspace_lock(root):
            return _recover(root, outputs)
    except PermissionError:  # a folder we may not write to holds no outputs of ours to mend
        return None


def _recover(root: Path, outputs: tuple[Path, ...]) -> Optional[str]:
    journal = root / JOURNAL
    if journal.exists():
        try:
            pairs = [(Path(t), Path(o)) for t, o in json.loads(journal.read_text())["pairs"]]
        except (ValueError, KeyError, TypeError):
            pairs = None  # a journal is renamed into place whole; never trust a torn one all the same
        if pairs is not None:
            _roll_forward(root, pairs)
            return f"completed an interrupted commit of {', '.join(str(o) for _, o in pairs)}"
        journal.unlink()
    cleaned = []
    for output in outputs:
        directory = root / output.parent
        if not directory.is_dir():
            continue
        for leftover in sorted(directory.glob(f".{output.name}.*.tmp")):
            _remove(leftover)
            cleaned.append(str(output.parent / leftover.name))
        old = root / _old_sibling(output)
        if old.exists():
            if (root / output).exists():
                _remove(old)
            else:
                os.replace(old, root / output)
            cleaned.append(str(_old_sibling(output)))
    for leftover in root.glob(f".{JOURNAL.name}.*.tmp"):
        _remove(leftover)
    return f"rolled back an interrupted write: removed {', '.join(cleaned)}" if cleaned else None


def write_text(path: str | Path, text: str, redacted: bool = False) -> None:
    """Replace one file with ``text`` in one rename (no other output changes with it);
    ``redacted``: as :func:`write_new`'s."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_file(path)
    try:
        write_new(temporary, text, redacted)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def write_json(path: str | Path, value: object) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")

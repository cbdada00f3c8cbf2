"""MkDocs hooks (mkdocs.yml: hooks): the Reference pages are generated at build time from the
code and the committed files they describe (nextclose.reference), so they cannot drift.

Nothing happens at import: MkDocs calls the functions below.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config):
    # This checkout's src/ first: the site documents the code beside it, even when the
    # environment's nextclose is installed from another checkout.
    src = str(_root(config) / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    from nextclose import reference

    for uri, text in reference.pages(_root(config)).items():
        written = files.get_file_from_path(uri)  # a stale copy on disk loses to the generated page
        if written is not None:
            files.remove(written)
        files.append(File.generated(config, uri, content=text))
    return files


def on_serve(server, config, builder):  # noqa: ARG001 (MkDocs passes each by name)
    from nextclose import reference

    for source in reference.SOURCES:  # `mkdocs serve` rebuilds when what the pages come from changes
        server.watch(str(_root(config) / source))
    return server

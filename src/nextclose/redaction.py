"""Secrets kept out of everything nextclose sends, writes and prints: one function, :func:`redact`.

Three places call it, and nothing leaves by another route (``tests/test_redaction.py`` scans the
code for one): every argument of every MLflow call (``tracking.mlflow_api``, ``tracking.client``),
every text file a stage writes (``atomic``), and the command's stdout and stderr (``cli``).

Two kinds of secret are masked, each with ``***``:

- the password of any ``scheme://user:password@host`` in the text, known or not;
- the credentials in this process's environment, wherever they stand in the text: the password
  of every variable that holds such a URL (``OPTUNA_STORAGE``, ``MLFLOW_TRACKING_URI``, ...) and
  the value of every variable named like a credential (``AWS_SECRET_ACCESS_KEY``,
  ``PGPASSWORD``, ``MLFLOW_TRACKING_TOKEN``, ``JQDATA_PASSWORD``, ...), each raw, percent-decoded,
  percent-encoded and JSON-escaped.

Values shorter than :data:`SHORTEST_SECRET` characters are masked only inside URLs: as free text
they would mask ordinary words and digits.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from typing import Any, Iterable, Iterator, Mapping, Optional, TextIO
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
SHORTEST_SECRET = 4

# scheme://user:password@: the password may hold "/" and ":" (SQLAlchemy reads it to the first "@";
# an "@" in it should be percent-encoded, but one that is not is masked too: this takes it to the
# last "@" of the word). Quotes and white space end the word, so a URL without credentials that
# is followed by other text is left alone.
URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][\w+.-]*://[^:/@\s\"'<>]*:)(?P<password>[^\s\"'<>]+)@")
# Variables whose value is itself a credential (a URL's password is found by URL_CREDENTIALS).
CREDENTIAL_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY|ACCESS_KEY(?!_ID)",
                             re.IGNORECASE)


def url_passwords(text: str) -> list[str]:
    """The passwords of the ``scheme://user:password@`` URLs in ``text``: for one that holds a raw
    "@", each reading of it (to its first "@", as SQLAlchemy reads it, ..., to the last)."""
    found: list[str] = []
    for match in URL_CREDENTIALS.finditer(text):
        parts = match["password"].split("@")
        found.extend("@".join(parts[: n + 1]) for n in range(len(parts)))
    return found


def environment_secrets(environ: Optional[Mapping[str, str]] = None) -> set[str]:
    """The credentials in ``environ`` (this process's environment by default)."""
    environ = os.environ if environ is None else environ
    secrets: set[str] = set()
    for name, value in environ.items():
        if not value:
            continue
        secrets.update(url_passwords(value))
        if CREDENTIAL_NAME.search(name):
            secrets.add(value)
    return secrets


def spellings(secret: str) -> set[str]:
    """The ways ``secret`` may be written: raw, percent-decoded, percent-encoded (in full and as a
    URL's userinfo keeps "/" and ":"), form-encoded and JSON-escaped."""
    forms = {secret, unquote(secret)}
    for form in list(forms):
        forms.update({quote(form, safe=""), quote(form, safe="/:"), quote_plus(form), json.dumps(form)[1:-1]})
    return {form for form in forms if len(form) >= SHORTEST_SECRET}


def redact(text: str, also: Iterable[str] = ()) -> str:
    """``text`` with every URL's password, the environment's credentials and the secrets ``also``
    names replaced by ``***``. Text without any comes back unchanged."""
    if not text:
        return text
    text = URL_CREDENTIALS.sub(lambda match: f"{match['head']}{MASK}@", text)
    known = environment_secrets() | set(also)
    forms = {form for secret in known for form in spellings(secret)}
    for form in sorted(forms, key=len, reverse=True):  # longest first: no half-masked longer spelling
        if form in text:
            text = text.replace(form, MASK)
    return text


class RedactedStream:
    """A text stream (stdout, stderr) that redacts what is written to it; the rest is the stream's."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Redact everything the process prints to ``sys.stdout`` and ``sys.stderr`` (its messages,
    warnings, logging set up inside, tracebacks) until the block ends."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactedStream(sys.stdout), RedactedStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def password_in_url(location: str) -> Optional[str]:
    """The password of ``location`` when it is a ``scheme://user:password@`` URL, else None."""
    match = URL_CREDENTIALS.match(location)
    return match["password"] if match else None

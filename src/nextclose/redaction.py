"""Secrets kept out of everything nextclose sends, writes and prints: one function, :func:`redact`.

Three places call it, and nothing leaves by another route (``tests/test_redaction.py`` scans the
code for one): every argument of every MLflow call (``tracking.mlflow_api``, ``tracking.client``),
every text file a stage writes (``atomic``), and the command's stdout and stderr (``cli``).

Two kinds of secret are masked, each with ``***``:

- in any URL, known or not, the password of ``scheme://user:password@host`` and the value of a
  ``password=`` (``passwd``, ``pwd``, ``secret``, ``token``, ...) query parameter;
- the credentials in this process's environment, wherever they stand in the text: the passwords
  of every variable that holds such a URL (``OPTUNA_STORAGE``, ``MLFLOW_TRACKING_URI``, ...) and
  the value of every variable named like a credential (``AWS_SECRET_ACCESS_KEY``,
  ``PGPASSWORD``, ``MYSQL_PWD``, ``MLFLOW_TRACKING_TOKEN``, ``JQDATA_PASSWORD``, ...), each raw,
  percent-decoded, percent-encoded and JSON-escaped.

As free text, outside a URL, a credential is masked where it stands alone (not inside a longer
run of letters and digits) and when it has at least :data:`SHORTEST_SECRET` characters: a weak
password such as ``mlflow`` or ``2024`` would otherwise mask MLflow's keys, dates and figures.
Inside URLs every password is masked whatever its length.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from typing import Any, Iterable, Mapping, Optional, TextIO
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
SHORTEST_SECRET = 8
SHORTEST_NAMED_SECRET = 4  # a secret a caller names (``also``): known to be one, in a short message

# scheme://user:password@: the password may hold "/" and ":" (SQLAlchemy reads it to the first "@";
# an "@" in it should be percent-encoded, but one that is not is masked too: this takes it to the
# last "@" of the word). Quotes and white space end the word, so a URL without credentials that
# is followed by other text is left alone.
# A "password" of digits before "/", "?", "#" or the end is a port (http://127.0.0.1:5000/#/x@y).
# Lengths are bounded so that long runs of URL-like text cost linear time.
URL_CREDENTIALS = re.compile(
    r"(?P<head>(?<![\w+.-])[A-Za-z][\w+.-]{0,30}://[^:/@\s\"'<>]{0,256}:)"
    r"(?!\d{1,5}(?:[/?#\s\"'<>]|$))(?P<password>[^\s\"'<>]{1,512}?)@(?![^\s\"'<>]{0,512}@)")
QUERY_CREDENTIALS = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|pass|secret|token|access_token|api_key|apikey|sslpassword)=)"
    r"(?P<password>[^&#\s\"'<>]+)", re.IGNORECASE)
# Variables whose value is itself a credential (a URL's password is found by URL_CREDENTIALS), by
# whole parts of the name: TOKENIZERS_PARALLELISM is no token, the shell's PWD no password.
CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|(^|_)(SECRET|TOKEN|CREDENTIALS?)(_|$)|(^|_)(API|PRIVATE|ACCESS|SECRET)_KEY$|.+_(PWD|PASS)$",
    re.IGNORECASE)


def url_passwords(text: str) -> list[str]:
    """The passwords of the URLs in ``text`` (``user:password@`` and ``?password=``): for one that
    holds a raw "@", each reading of it (to its first "@", as SQLAlchemy reads it, ..., to the last)."""
    found: list[str] = []
    for match in URL_CREDENTIALS.finditer(text):
        parts = match["password"].split("@")
        found.extend("@".join(parts[: n + 1]) for n in range(len(parts)))
    found.extend(match["password"] for match in QUERY_CREDENTIALS.finditer(text))
    return found


def environment_secrets(environ: Optional[Mapping[str, str]] = None) -> set[str]:
    """The credentials in ``environ`` (this process's environment by default)."""
    environ = os.environ if environ is None else environ
    secrets: set[str] = set()
    # (a variable's value may hold a URL, such as OPTUNA_STORAGE, or be the credential itself)
    for name, value in environ.items():
        if not value:
            continue
        secrets.update(url_passwords(value))
        if CREDENTIAL_NAME.search(name):
            secrets.add(value)
    return secrets


def spellings(secret: str, shortest: int = SHORTEST_SECRET) -> set[str]:
    """The ways ``secret`` may be written: raw, percent-decoded, percent-encoded (in full and as a
    URL's userinfo keeps "/" and ":"), form-encoded and JSON-escaped; those of ``shortest``
    characters or more."""
    forms = {secret, unquote(secret)}
    for form in list(forms):
        forms.update({quote(form, safe=""), quote(form, safe="/:"), quote_plus(form), json.dumps(form)[1:-1]})
    return {form for form in forms if len(form) >= shortest}


@functools.lru_cache(maxsize=16)
def _secrets_pattern(secrets: frozenset[str], named: frozenset[str]) -> Optional[re.Pattern[str]]:
    """One pattern of every spelling of ``secrets`` and ``named``, longest first, each standing alone."""
    every = {form for secret in secrets for form in spellings(secret)}
    every |= {form for secret in named for form in spellings(secret, SHORTEST_NAMED_SECRET)}
    forms = sorted(every, key=len, reverse=True)
    if not forms:
        return None
    return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, forms)) + r")(?![A-Za-z0-9])")


_environment_cache: tuple[tuple[tuple[str, str], ...], frozenset[str]] = ((), frozenset())


def _environment_secrets() -> frozenset[str]:
    """:func:`environment_secrets` of ``os.environ``, found again only when the environment changed."""
    global _environment_cache
    items = tuple(os.environ.items())
    if items != _environment_cache[0]:
        _environment_cache = (items, frozenset(environment_secrets(dict(items))))
    return _environment_cache[1]


def redact(text: str, also: Iterable[str] = ()) -> str:
    """``text`` with every URL's password, the environment's credentials and the secrets ``also``
    names replaced by ``***``. Text without any comes back unchanged."""
    if not text:
        return text
    text = URL_CREDENTIALS.sub(lambda match: f"{match['head']}{MASK}@", text)
    text = QUERY_CREDENTIALS.sub(lambda match: f"{match['head']}{MASK}", text)
    pattern = _secrets_pattern(_environment_secrets(), frozenset(also))
    return text if pattern is None else pattern.sub(MASK, text)


class RedactedStream:
    """A text stream (stdout, stderr) that redacts what is written to it, a line at a time (a
    secret that ``print`` writes in two pieces is masked whole); ``flush`` writes out a partial
    line (a progress bar). The rest is the stream's."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        complete, newline, self._pending = self._pending.rpartition("\n")
        if newline:
            self.stream.write(redact(complete + newline))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            self.stream.write(redact(self._pending))
            self._pending = ""
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":  # bytes written there would pass unredacted
            raise AttributeError("a redacted stream has no binary buffer")
        return getattr(self.stream, name)


def redact_process_output() -> None:
    """Redact everything this process prints to ``sys.stdout`` and ``sys.stderr`` from now to its
    end: its messages, warnings, logging, the interpreter's traceback of an uncaught exception and
    what exit handlers print (MLflow's note on a run it ends at exit names the tracking URI)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactedStream):
            setattr(sys, name, RedactedStream(stream))


def password_in_url(location: str) -> Optional[str]:
    """The password of ``location`` when it is a URL with one (``scheme://user:password@`` or a
    ``?password=`` parameter), else None."""
    match = URL_CREDENTIALS.match(location)
    if match:
        return match["password"]
    query = QUERY_CREDENTIALS.search(location) if "://" in location else None
    return query["password"] if query else None

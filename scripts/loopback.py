"""Servers on loopback, for the scripts (make services, make screenshots) and the tests: a free
port, and waiting until a server answers there."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional


class NoAnswer(RuntimeError):
    """The server ended, or did not answer in time; the message says which, with its log's end."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (a server started next may still race for it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, seconds: float = 180, log: Optional[Path] = None,
                  any_answer: bool = False) -> None:
    """Poll ``url`` until it answers 200 (with ``any_answer``, any HTTP status: S3's root asks for
    credentials); raise :class:`NoAnswer` when ``server`` exits first or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except urllib.error.HTTPError:
            if any_answer:
                return
        except OSError:
            pass
        ended = server.poll() is not None
        if ended or time.monotonic() > deadline:
            state = f"the server exited with code {server.returncode}" if ended else f"no answer in {seconds:g} s"
            tail = "" if log is None else "; the end of {}:\n{}".format(
                log, "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
            raise NoAnswer(f"{url}: {state}{tail}")
        time.sleep(1)

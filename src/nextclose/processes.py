"""Which process did a piece of work, and is it still alive: how dead workers are found."""

from __future__ import annotations

import socket
from typing import Any, Mapping, Optional


def this_process() -> dict[str, Any]:
    """This process: its host, pid and start time (a pid alone is reused by the system)."""
    import psutil

    process = psutil.Process()
    return {"host": socket.gethostname(), "pid": process.pid, "started": process.create_time()}


def is_alive(worker: Mapping[str, Any]) -> Optional[bool]:
    """True or False for a process of this host; None when it ran on another."""
    import psutil

    if worker.get("host") != socket.gethostname():
        return None
    try:
        return abs(psutil.Process(int(worker["pid"])).create_time() - float(worker["started"])) < 1.0
    except (psutil.Error, KeyError, ValueError, TypeError):
        return False

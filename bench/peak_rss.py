"""Run a command and print its peak resident set size as JSON.

    python bench/peak_rss.py [--log FILE] -- COMMAND [ARGS...]

Why a separate small launcher: on Linux a child's ``ru_maxrss`` also counts the
high-water RSS of the image it replaced at ``exec``, i.e. of the parent it was
forked from. Measured straight from ``bench/run.py`` (TensorFlow loaded, ~1 GiB)
every child would report at least the benchmark's own size. Launched from this
fresh, small process the floor is a few MiB.

Two figures: ``ru_maxrss`` from ``wait4`` (the child and its waited-for
descendants) and the last ``VmHWM`` polled from /proc (the child's own peak
after ``exec``; a lower bound, as polling stops at exit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", help="file for the command's stdout and stderr (default: discard)")
    parser.add_argument("--interval", type=float, default=0.05, help="VmHWM poll interval, seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    out = open(args.log, "w") if args.log else subprocess.DEVNULL
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    hwm = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        hwm = max(hwm, vm_hwm_kib(process.pid) or 0)
        time.sleep(args.interval)
    process.returncode = os.waitstatus_to_exitcode(status)
    json.dump({
        "returncode": process.returncode,
        "ru_maxrss_kib": usage.ru_maxrss,
        "vm_hwm_kib": hwm,
        "wall_seconds": time.perf_counter() - start,
    }, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

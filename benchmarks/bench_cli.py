"""Times kit-train's help screens and argument errors as whole processes (what a user waits for), against
`python -c "import torch"` as the reference of what importing torch alone costs here. Prints a table and writes JSON.

    python benchmarks/bench_cli.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

KIT_TRAIN = shutil.which("kit-train") or "kit-train"
COMMANDS = {
    "import torch (reference)": [sys.executable, "-c", "import torch"],
    "kit-train --help": [KIT_TRAIN, "--help"],
    "kit-train instant-ngp --help": [KIT_TRAIN, "instant-ngp", "--help"],
    "kit-train nerfacto --help": [KIT_TRAIN, "nerfacto", "--help"],
    "bad flag": [KIT_TRAIN, "instant-ngp", "--no-such-flag", "1"],
    "unknown method": [KIT_TRAIN, "instant-nfp"],
    "missing --data folder": [KIT_TRAIN, "instant-ngp", "--data", "/no/such/folder"],
}
"""What is timed: each command's wall time from start to exit."""


def wall_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command, after one untimed run")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/out/cli.json"), help="JSON written here")
    args = parser.parse_args()
    rows = []
    for name, command in COMMANDS.items():
        wall_seconds(command)
        times = [wall_seconds(command) for _ in range(args.runs)]
        rows.append({"command": name, "argv": command[1:], "runs": times, "min_s": min(times),
                     "median_s": statistics.median(times), "max_s": max(times)})  # fmt: skip
    table = Table(title=f"whole-process wall time, {args.runs} runs each (after one untimed run)")
    for column in ("command", "min s", "median s", "max s"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for row in rows:
        table.add_row(row["command"], *(f"{row[key]:.2f}" for key in ("min_s", "median_s", "max_s")))
    Console().print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    machine = {"processor": platform.processor() or platform.machine(), "python": platform.python_version()}
    args.output.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()

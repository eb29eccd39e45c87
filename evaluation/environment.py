"""Facts about the run that published figures must state: machine, load, versions, commit."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "opencv-contrib-python", "PyMatting", "mediapipe", "torch", "scipy", "numba")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
        return sha + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def describe() -> dict:
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "cores": cpu_count(), "memory_gib": round(memory_gib(), 1),
            "load_at_start": load_average(), "os": platform.platform(terse=True),
            "commit": git_commit(), "versions": versions()}


def markdown(info: dict, command: str) -> str:
    v = ", ".join(f"{k} {val}" for k, val in info["versions"].items())
    lines = [f"- Command: `{command}`",
             f"- Date: {info['date']}; commit {info['commit']}",
             f"- Machine: {info['cpu']}, **{info['cores']} cores** available to the run, "
             f"{info['memory_gib']} GiB RAM, {info['os']}; no GPU used",
             f"- Load average (1 / 5 / 15 min) at start: {info['load_at_start']}"
             + (f"; at end: {info['load_at_end']}" if info.get("load_at_end") else ""),
             f"- Versions: {v}"]
    return "\n".join(lines)

"""How every benchmark records its results: appended, with its machine, to a JSON list."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any


def append_result(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON list in ``path`` (created if missing) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(record)
    path.write_text(json.dumps(history, indent=1) + "\n")
    print(f"\nappended to {path}")


def machine_info(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """The machine a result was measured on: platform, CPU model, cores, Python, and the
    versions of ``packages`` (None when one is not installed)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }

"""How every benchmark records its results: appended, with its machine, to a JSON list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_result(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON list in ``path`` (created if missing) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(record)
    path.write_text(json.dumps(history, indent=1) + "\n")
    print(f"\nappended to {path}")

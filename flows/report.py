"""How a flow's command-line entry point reports the run it started."""

from __future__ import annotations

import json
import sys
from typing import Any


def exit_code(state: Any) -> int:
    """Print the flow's result (JSON) or its failure (stderr); 0 when it completed, else 1.

    ``state`` is the Prefect state a flow returns when called with ``return_state=True``.
    """
    if not state.is_completed():
        print(f"failed: {state.message}", file=sys.stderr)
        return 1
    print(json.dumps(state.result(), indent=2))
    return 0

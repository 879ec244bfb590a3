"""Create AirCast's work pools and global concurrency limits on a Prefect server.

What to create comes from ``infra/pools.yaml``, the one place that names them. Idempotent: a
pool or limit that exists is kept as it is (an operator may have tuned a limit's slots or a
pool's job template in the UI) and reported, so running it again after an upgrade is safe.

With ``--secrets-from-env`` it also saves the data-store keys in the Prefect ``Secret`` blocks
that ``flows/ingest.py`` reads first (``aircast-cds-key``, ``aircast-ads-key``), from the
environment variables ``AIRCAST_CDS_KEY`` and ``AIRCAST_ADS_KEY``; after that the workers need
no key in their environment. A key is never printed.

Usage (``PREFECT_API_URL`` must name the server: without it Prefect would start a throwaway
temporary server and the pools would vanish with it)::

    PREFECT_API_URL=http://prefect.internal:4200/api python infra/prefect/bootstrap.py
    AIRCAST_CDS_KEY=... AIRCAST_ADS_KEY=... python infra/prefect/bootstrap.py --secrets-from-env
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

POOLS_FILE = Path(__file__).resolve().parents[1] / "pools.yaml"

#: Environment variable each store's key is read from by ``--secrets-from-env``: the
#: ``key_env`` names the recipes in configs/ use.
KEY_ENV = {"cds": "AIRCAST_CDS_KEY", "ads": "AIRCAST_ADS_KEY"}


def load_pools(path: Path = POOLS_FILE) -> dict[str, Any]:
    """``infra/pools.yaml``, checked for the keys this script and flows/deploy.py rely on."""
    spec = yaml.safe_load(path.read_text())
    problems = []
    for name, pool in (spec.get("work_pools") or {}).items():
        if not isinstance(pool, dict) or not pool.get("type"):
            problems.append(f"work_pools.{name}: needs a type (e.g. process)")
        elif not isinstance(pool.get("flows"), list):
            problems.append(f"work_pools.{name}.flows: needs a list of flow names")
    for name, slots in (spec.get("concurrency_limits") or {}).items():
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
            problems.append(f"concurrency_limits.{name}: {slots!r} is not a positive integer")
    if not spec.get("work_pools"):
        problems.append("work_pools: none declared")
    if problems:
        raise SystemExit(f"error: {path}:\n  " + "\n  ".join(problems))
    return spec


def ensure_pool(client: Any, name: str, pool: dict[str, Any]) -> str:
    """Create the work pool ``name`` if it is missing; return what was done, for the log."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.base import BaseWorker

    try:
        existing = client.read_work_pool(name)
    except ObjectNotFound:
        pass
    else:
        if existing.type != pool["type"]:
            return (
                f"work pool {name!r} exists with type {existing.type!r}, not {pool['type']!r}: "
                f"kept; delete it (prefect work-pool delete {name}) and run this again to "
                "change its type"
            )
        return f"work pool {name!r} ({existing.type}) exists: kept"
    worker = BaseWorker.get_worker_class_from_type(pool["type"])
    if worker is None:  # e.g. docker without prefect-docker: its template lives in that package
        raise SystemExit(
            f"error: no worker for work pool type {pool['type']!r} is installed here; "
            f"install its package (type docker: pip install prefect-docker) and run this again"
        )
    client.create_work_pool(
        WorkPoolCreate(
            name=name,
            type=pool["type"],
            description=pool.get("description"),
            base_job_template=worker.get_default_base_job_template(),
        )
    )
    return f"work pool {name!r} ({pool['type']}) created"


def ensure_limit(client: Any, name: str, slots: int) -> str:
    """Create the global concurrency limit ``name`` if it is missing, the flows' way."""
    from flows.executor import create_limit_if_missing

    existing = create_limit_if_missing(client, name, slots)
    if existing is None:
        return f"global concurrency limit {name!r} created with {slots} slot(s)"
    note = "" if existing.limit == slots else f" (pools.yaml says {slots}; change it in the UI)"
    state = "" if existing.active else ", INACTIVE: it bounds nothing until activated"
    return (
        f"global concurrency limit {name!r} exists with {existing.limit} slot(s){state}: kept{note}"
    )


def save_secrets(environ: dict[str, str]) -> list[str]:
    """Save each store's key from its environment variable in the flows' Secret block."""
    from prefect.blocks.system import Secret

    # the block names the flows read; imported, not repeated, so that the two cannot drift
    from flows.ingest import SECRET_BLOCKS

    done = []
    for store, block in SECRET_BLOCKS.items():
        variable = KEY_ENV[store]
        value = environ.get(variable, "")
        if not value:
            done.append(f"Secret block {block!r}: {variable} is not set, left as it is")
            continue
        Secret(value=value).save(block, overwrite=True)
        done.append(f"Secret block {block!r} saved from {variable}")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=Path, default=POOLS_FILE, help="default: %(default)s")
    parser.add_argument(
        "--secrets-from-env",
        action="store_true",
        help="also save AIRCAST_CDS_KEY / AIRCAST_ADS_KEY in the flows' Prefect Secret blocks",
    )
    args = parser.parse_args(argv)
    spec = load_pools(args.pools)

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    api = get_current_settings().api.url
    if not api:
        print(
            "error: PREFECT_API_URL is not set; point it at the Prefect server "
            "(e.g. http://127.0.0.1:4200/api)",
            file=sys.stderr,
        )
        return 2
    print(f"Prefect server: {api}")
    with get_client(sync_client=True) as client:
        for name, pool in spec["work_pools"].items():
            print(ensure_pool(client, name, pool))
        for name, slots in (spec.get("concurrency_limits") or {}).items():
            print(ensure_limit(client, name, slots))
    if args.secrets_from_env:
        for line in save_secrets(dict(os.environ)):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Check that a work pool's worker runs flows: deploy a tiny flow to the pool, run it, report.

Run it after starting a worker, from any machine that reaches the Prefect server::

    export PREFECT_API_URL=http://prefect.internal:4200/api
    python infra/prefect/smoke.py --pool aircast-cpu
    python infra/prefect/smoke.py --pool aircast-gpu --gpu

It registers the deployment ``aircast-smoke/smoke-<pool>`` (code: this file, at this path:
run it from the image or checkout the workers use, where the path is the same), starts one run
and waits for it. The run reports the worker's host, Python, Prefect and AirCast versions and,
with ``--gpu``, the CUDA devices torch sees (it fails when there are none). Exit status 0 when
the run completed; 1 when it failed or no worker took it within ``--timeout`` seconds (the run
is then cancelled, so that a worker started later does not run a stale check).
"""

from __future__ import annotations

import argparse
import platform
import socket
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

HERE = Path(__file__).resolve().parent
FLOW_NAME = "aircast-smoke"


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


@flow(name=FLOW_NAME, persist_result=False)
def smoke(check_gpu: bool = False) -> dict[str, Any]:
    """What the worker's environment offers; raises when ``check_gpu`` and no CUDA device."""
    facts: dict[str, Any] = {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "prefect": _version("prefect"),
        "aircast": _version("aircast"),
    }
    if check_gpu:
        import torch  # only here: importing it costs seconds on a CPU worker

        facts["torch"] = torch.__version__
        facts["cuda_devices"] = torch.cuda.device_count()
        facts["cuda_device_0"] = (
            torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        )
    get_run_logger().info("worker environment: %s", facts)
    create_table_artifact(key=FLOW_NAME, table=[facts], description="aircast smoke check")
    if check_gpu and not facts["cuda_devices"]:
        raise RuntimeError(
            "torch sees no CUDA device on this worker: check the host's driver (nvidia-smi), "
            "CUDA_VISIBLE_DEVICES, and the GPU reservation of the worker's container"
        )
    return facts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="work pool, e.g. aircast-cpu")
    parser.add_argument("--gpu", action="store_true", help="also require a CUDA device")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment
    from prefect.settings import get_current_settings
    from prefect.states import Cancelled

    if not get_current_settings().api.url:
        print("error: PREFECT_API_URL is not set; point it at the Prefect server", file=sys.stderr)
        return 2
    deployment = f"smoke-{args.pool}"
    source = smoke.from_source(source=str(HERE), entrypoint=f"{Path(__file__).name}:smoke")
    source.deploy(
        name=deployment, work_pool_name=args.pool, print_next_steps=False, ignore_warnings=True
    )
    run = run_deployment(
        f"{FLOW_NAME}/{deployment}", parameters={"check_gpu": args.gpu}, timeout=args.timeout
    )
    state = run.state
    print(f"flow run {run.id} ({run.name}) on pool {args.pool}: {state.name if state else '?'}")
    with get_client(sync_client=True) as client:
        if state is None or not state.is_final():
            cancelled = Cancelled(message="smoke check timed out")
            client.set_flow_run_state(run.id, cancelled, force=True)
            print(
                f"no worker finished it within {args.timeout:.0f} s: is one running "
                f"(prefect worker start --pool {args.pool})? The run was cancelled.",
                file=sys.stderr,
            )
            return 1
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
        for artifact in artifacts:
            print(f"worker environment: {artifact.data}")
    if not state.is_completed():
        print(f"the run did not complete: {state.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

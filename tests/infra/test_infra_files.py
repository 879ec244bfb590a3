"""Fast checks that infra/ agrees with itself and with the code it deploys.

No Docker engine runs on the development and CI machines, so the images are not built here;
what can be checked without one is: the compose file and the environment template name the same
variables for the same services, the Dockerfiles install the project as the Makefile does, every
script parses, the work pools and concurrency limits in ``infra/pools.yaml`` are the ones the
flows and the compose workers use, every flow has a pool, and the production recipe validates.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
DOCKERFILES = {
    "cpu": INFRA / "docker" / "Dockerfile.cpu",
    "gpu": INFRA / "docker" / "Dockerfile.gpu",
}
SERVICES = {"postgres", "prefect-server", "bootstrap", "cpu-worker", "gpu-worker"}
#: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` in compose; ``$$VAR`` is the container's
_INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)")


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def pools() -> dict[str, Any]:
    # through bootstrap.py's own loader, so that its checks of the file run too
    bootstrap = _load_module(INFRA / "prefect" / "bootstrap.py")
    return bootstrap.load_pools(INFRA / "pools.yaml")


def _env_template() -> dict[str, set[str]]:
    """Variables of infra/aircast.env.example -> the compose services its sections name."""
    services: set[str] | None = None
    found: dict[str, set[str]] = {}
    names = []
    for line in (INFRA / "aircast.env.example").read_text().splitlines():
        if m := re.fullmatch(r"# @services:\s*(.+)", line.strip()):
            services = set() if m.group(1).strip() == "-" else set(m.group(1).split())
        elif m := re.match(r"([A-Z_][A-Z0-9_]*)=", line):
            assert services is not None, f"{m.group(1)} comes before any '# @services:' line"
            names.append(m.group(1))
            found[m.group(1)] = services
    duplicates = [n for n, c in Counter(names).items() if c > 1]
    assert not duplicates, f"set twice in aircast.env.example: {duplicates}"
    return found


def test_compose_names_the_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    assert compose["services"]["postgres"]["image"] == "postgres:15"
    gpu = compose["services"]["gpu-worker"]
    assert gpu["profiles"] == ["gpu"]  # `up` on a host without a GPU leaves it out
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    for name in ("cpu-worker", "gpu-worker"):
        # the worker's graceful stop (SIGTERM is handed on as SIGINT, but only by prefect itself)
        assert compose["services"][name]["stop_signal"] == "SIGINT"
        assert "aircast-data:/data" in compose["services"][name]["volumes"]


def test_env_template_and_compose_agree(compose: dict[str, Any]) -> None:
    template = _env_template()
    used_anywhere = set(_INTERPOLATED.findall((INFRA / "compose.yaml").read_text()))
    undocumented = used_anywhere - set(template)
    assert not undocumented, f"compose.yaml reads {undocumented}: document them in the template"
    for variable, services in template.items():
        unknown = services - SERVICES
        assert not unknown, f"aircast.env.example names no such service {unknown} for {variable}"
        for service in services:
            text = json.dumps(compose["services"][service])
            assert re.search(r"\$\{" + variable + r"\b", text), (
                f"aircast.env.example says {service} reads {variable}, compose.yaml does not "
                "pass it on"
            )
    # what each component needs in production, whatever compose does with it
    for required in (
        "PREFECT_API_URL",
        "PREFECT_API_DATABASE_CONNECTION_URL",
        "PREFECT_SERVER_ANALYTICS_ENABLED",
        "AIRCAST_CDS_KEY",
        "AIRCAST_ADS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert required in template


def test_env_template_matches_the_recipes_key_env() -> None:
    from aircast.config import load_config

    template = _env_template()
    recipes = [
        *sorted((REPO / "configs").glob("*.yaml")),
        INFRA / "configs" / "production.example.yaml",
    ]
    for recipe in recipes:
        config = load_config(recipe)
        for store in ("cds", "ads"):
            key_env = getattr(config.datastores, store).key_env
            assert key_env is None or key_env in template, (recipe.name, store, key_env)


def test_production_recipe_validates() -> None:
    from aircast.config import load_config

    config = load_config(INFRA / "configs" / "production.example.yaml")
    assert config.paths.root.is_absolute()  # a flow run's working directory is the code's
    assert not config.datastores.cds.is_sandbox and not config.datastores.ads.is_sandbox
    assert config.store_url.startswith("s3://") and config.forecast_url.startswith("s3://")


def _makefile_torch_pin() -> str:
    m = re.search(r"pip install [^\n]*torch==([0-9][^\s'\"]*)", (REPO / "Makefile").read_text())
    assert m, "the Makefile no longer pins torch: update this test and the Dockerfiles"
    return m.group(1)


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_installs_like_the_makefile(kind: str) -> None:
    text = DOCKERFILES[kind].read_text()
    pin = _makefile_torch_pin()
    assert re.search(rf"^ARG TORCH_VERSION={re.escape(pin)}$", text, re.M), (
        f"Dockerfile.{kind} must pin torch {pin}, as the Makefile does"
    )
    torch_at = text.index('"torch==${TORCH_VERSION}"')
    m = re.search(r"pip install [^\n]*-e '\.\[([a-z0-9,-]*)\]'", text)
    assert m, f"Dockerfile.{kind} must install the project editable, as the Makefile does"
    assert torch_at < m.start(), "torch first (pinned), then the project: the Makefile's order"
    extras = set(m.group(1).split(","))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    missing = extras - set(pyproject["project"]["optional-dependencies"])
    assert not missing, (
        f"Dockerfile.{kind} installs the extras {missing} that pyproject.toml does not define "
        '(add: s3 = ["s3fs>=2024.10"] under [project.optional-dependencies])'
    )
    # the installed packages and the readme pyproject names are all copied in before pip
    copied = {
        source.rstrip("/")
        for line in re.findall(r"^COPY (.+)$", text, re.M)
        for source in line.split()[:-1]  # the last is the destination
    }
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages | {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    assert {"configs", "infra"} <= copied  # recipes and the operator's scripts (bootstrap, smoke)
    # and the build context lets them through, but not an env file with secrets
    ignore = (DOCKERFILES[kind].parent / f"Dockerfile.{kind}.dockerignore").read_text()
    allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    assert copied <= allowed
    assert "infra/*.env" in ignore.splitlines()


def test_cpu_image_python_meets_the_project() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    least = re.fullmatch(r">=(\d+)\.(\d+)", pyproject["project"]["requires-python"])
    assert least
    m = re.search(r"^FROM python:(\d+)\.(\d+)", DOCKERFILES["cpu"].read_text(), re.M)
    assert m
    assert (int(m.group(1)), int(m.group(2))) >= (int(least.group(1)), int(least.group(2)))


def _scripts() -> list[Path]:
    return sorted(INFRA.rglob("*.sh"))


@pytest.mark.parametrize("script", _scripts(), ids=lambda p: str(p.relative_to(INFRA)))
def test_shell_script_is_strict_and_parses(script: Path) -> None:
    text = script.read_text()
    if text.startswith("#!"):  # run, not sourced
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "\nset -euo pipefail\n" in text
        assert os.access(script, os.X_OK), f"chmod +x {script.relative_to(REPO)}"
    else:  # a library: sourced by scripts that set the options; it must not change them
        assert "set -" not in text
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    done = subprocess.run(
        [shellcheck, "--external-sources", *map(str, _scripts())],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout


#: Run in a subprocess with its own PREFECT_HOME: importing prefect creates that directory, and
#: the flow tests set theirs at import; what flows/ names, as JSON.
_FLOW_FACTS = """
import importlib, json, pkgutil
import flows
from prefect import Flow
from flows.forecast import PUBLISH_LIMIT
from flows.ingest import SECRET_BLOCKS, limit_name

defined = set()
for m in pkgutil.iter_modules(flows.__path__):
    module = importlib.import_module(f"flows.{m.name}")
    defined |= {v.name for v in vars(module).values() if isinstance(v, Flow)}
facts = {
    "flows": sorted(defined),
    "limits": {"cds": limit_name("cds"), "ads": limit_name("ads"), "publish": PUBLISH_LIMIT},
    "secret_blocks": dict(SECRET_BLOCKS),
    "deployed": None,
}
try:
    from flows import deploy
except ImportError:
    pass
else:
    facts["deployed"] = {s.flow.name: s.pool for s in deploy.specs()}
    facts["assignments"] = deploy.pool_assignments()
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def flow_facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    home = tmp_path_factory.mktemp("prefect-home")
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run(
        [sys.executable, "-c", _FLOW_FACTS], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    facts: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return facts


def test_pools_match_the_flows_limits_and_workers(
    pools: dict[str, Any], compose: dict[str, Any], flow_facts: dict[str, Any]
) -> None:
    assert set(pools["work_pools"]) == {"aircast-cpu", "aircast-gpu"}
    assert all(p["type"] == "process" for p in pools["work_pools"].values())

    from aircast.config import IngestSettings

    limits = pools["concurrency_limits"]
    assert set(limits) == set(flow_facts["limits"].values())
    for store in ("cds", "ads"):
        # the limit a flow run creates on first use has the same slots as bootstrap's
        assert limits[flow_facts["limits"][store]] == IngestSettings().max_concurrent_requests
    assert limits[flow_facts["limits"]["publish"]] == 1  # what flows/forecast.py creates

    # bootstrap.py --secrets-from-env reads the recipes' key_env names for the flows' blocks
    bootstrap = _load_module(INFRA / "prefect" / "bootstrap.py")
    assert set(bootstrap.KEY_ENV) == set(flow_facts["secret_blocks"])

    # each worker, in compose and as each image's default command, polls a pool named here
    commands = [compose["services"][s]["command"] for s in ("cpu-worker", "gpu-worker")]
    for kind, path in DOCKERFILES.items():
        cmd = re.search(r"^CMD (\[.*\])$", path.read_text(), re.M)
        assert cmd
        commands.append(json.loads(cmd.group(1)))
        assert commands[-1][-1] == f"aircast-{kind}"
    for command in commands:
        assert command[:3] == ["prefect", "worker", "start"]
        assert command[command.index("--pool") + 1] in pools["work_pools"]


def test_every_flow_has_a_pool(pools: dict[str, Any], flow_facts: dict[str, Any]) -> None:
    assigned = [f for pool in pools["work_pools"].values() for f in pool["flows"]]
    duplicates = [f for f, c in Counter(assigned).items() if c > 1]
    assert not duplicates, f"flows in two pools: {duplicates}"
    homeless = set(flow_facts["flows"]) - set(assigned) - set(pools["local_only_flows"])
    assert not homeless, f"flows with no work pool in infra/pools.yaml: {sorted(homeless)}"


def test_deployments_go_to_the_pools(pools: dict[str, Any], flow_facts: dict[str, Any]) -> None:
    if flow_facts["deployed"] is None:
        pytest.skip("flows/deploy.py is not written yet")
    from_file = {f: name for name, pool in pools["work_pools"].items() for f in pool["flows"]}
    # deploy.py reads this file, and its own fallback (no infra/ beside it) agrees with it
    assert flow_facts["assignments"] == from_file
    for flow_name, pool in flow_facts["deployed"].items():
        assert from_file.get(flow_name) == pool, (flow_name, pool)


def test_readme_paths_exist() -> None:
    text = (INFRA / "README.md").read_text()
    for path in sorted(set(re.findall(r"(?<![\w/])infra/[\w./-]*\w", text))):
        if path.endswith("aircast.env"):  # the operator's copy of the template
            continue
        assert (REPO / path).exists(), f"infra/README.md names {path}, which does not exist"


def test_compose_file_passes_docker_compose_config() -> None:
    compose_cmd = None
    for candidate in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(candidate[0]):
            probe = subprocess.run([*candidate, "version"], capture_output=True, text=True)
            if probe.returncode == 0 and re.search(r"v?2\.\d+", probe.stdout):
                compose_cmd = candidate
                break
    if compose_cmd is None:
        pytest.skip("no Docker Compose v2 here (it needs no engine to check a file)")
    done = subprocess.run(
        [
            *compose_cmd,
            "--env-file",
            str(INFRA / "aircast.env.example"),
            "-f",
            str(INFRA / "compose.yaml"),
            "--profile",
            "gpu",
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr

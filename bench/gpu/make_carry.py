"""Make what the GPU run carries to the device machine, in ``.carry/`` (ignored, never committed).

Run from the repository root (one command; the store takes a few minutes of CPU the first time,
later runs reuse it)::

    python bench/gpu/make_carry.py

What it makes:

``.carry/whl/``
    cp312 manylinux wheels of the packages the run imports that the device image lacks
    (:data:`WHEELS`, each at the version installed here): the image has torch 2.11, numpy,
    xarray, pandas, scipy, fsspec, pyyaml, toolz, cloudpickle, typer, matplotlib
    (``/work/.library/device/KINDS.md``), and those are not carried.
``.carry/default/``
    The default recipe (``configs/default.yaml``: 61 × 129 cells at 0.75°, 21 dynamic + 2
    static channels) over four days of June 2019, built from the embedded sandbox by the
    forecast bench's own setup (``bench/bench_forecast_publish.py``: train 06-01..06-02,
    validation 06-03, test 06-04): ``recipe.yaml`` and ``root/store.zarr`` (14 MiB). The raw
    cache stays behind (``.carry/build/``, reused by later runs): the CAMS runs of the
    forecast's initial state are 59 MiB, so the GPU run starts its rollout from the store's
    own 06-04 00 UTC state (decoding those runs is CPU work, timed by the forecast bench),
    and it writes the untrained checkpoint there (1.5 s) rather than carry its 9 MiB.

It prints each part's size and the total with the working tree, which must be at most 64 MiB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CARRY = REPO / ".carry"
LIMIT_MIB = 64.0

#: distributions the run imports (each stage's JSON lists them: ``imported_distributions``)
#: that the device image lacks; optional imports that a module makes only where a package is
#: installed (pytz, cftime, tblib, redis, ...) are left out, and so are the GRIB and NetCDF
#: decoders (eckitlib alone is 34 MiB): the run imports no module of aircast.sources
WHEELS = (
    # the stores: zarr and its codecs and settings
    "zarr",
    "numcodecs",
    "donfig",
    "google-crc32c",
    # recipes
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    # xarray's chunked reads of the training store
    "dask",
    "partd",
    "locket",
)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


def mib(path: Path) -> float:
    """Size of a file or folder, MiB."""
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def working_tree_mib() -> float:
    """What travels besides ``carry``: tracked and untracked-not-ignored files, MiB."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    files = [REPO / name.decode() for name in listed if name]
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def download_wheels(folder: Path) -> None:
    """Each of :data:`WHEELS` at the version installed here, cp312 manylinux, no deps."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in WHEELS:
        version = metadata.version(name)
        stem = name.replace("-", "_").lower()
        if any(w.name.lower().startswith(f"{stem}-{version}") for w in folder.glob("*.whl")):
            continue
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        command += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        command += ["-d", str(folder), f"{name}=={version}"]
        print(f"  {name}=={version}", flush=True)
        subprocess.run(command, check=True)


def build_default(folder: Path) -> None:
    """The default-grid store and its recipe, in ``folder``."""
    sys.path.insert(0, str(REPO / "bench"))
    import bench_forecast_publish as forecast_bench

    from aircast.config import parse_config

    build = CARRY / "build"  # the whole raw cache: kept for reruns, never carried
    build.mkdir(parents=True, exist_ok=True)
    config_path, took = forecast_bench.setup(build)
    print(f"  setup: {took}", flush=True)
    data = yaml.safe_load(config_path.read_text())
    config = parse_config(data)
    root = folder / "root"
    shutil.rmtree(folder, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copytree(config.store_url, root / "store.zarr")
    data["paths"] = {"root": "root"}  # the run points it at the carried folder
    (folder / "recipe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-wheels", action="store_true", help="skip the wheels")
    parser.add_argument("--no-store", action="store_true", help="skip the default-grid store")
    args = parser.parse_args(argv)
    if not args.no_wheels:
        print("wheels:", flush=True)
        download_wheels(CARRY / "whl")
    if not args.no_store:
        print("default-grid store (first time: minutes):", flush=True)
        build_default(CARRY / "default")
    parts = [p for p in (CARRY / "whl", CARRY / "default") if p.exists()]
    tree = working_tree_mib()
    for part in parts:
        print(f"{part.relative_to(REPO)}: {mib(part):.1f} MiB")
    total = tree + sum(mib(p) for p in parts)
    print(
        f"working tree {tree:.1f} MiB; total that travels {total:.1f} MiB (limit {LIMIT_MIB:.0f})"
    )
    if total > LIMIT_MIB:
        print("over the limit: carry less (drop a part) or shrink the store's days")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

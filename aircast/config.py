"""Validated configuration: region, grid, variables, periods and data-store endpoints.

Configs are YAML files in ``configs/``. Every model forbids unknown keys, and
:func:`load_config` turns every validation problem into one line that names the key, the bad
value and the fix, collected into a single :class:`aircast.errors.ConfigError`.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aircast.catalogue import DATASETS
from aircast.errors import ConfigError, VocabularyError
from aircast.vocab import (
    CAMS_EAC4,
    CAMS_FORECAST,
    ERA5_PRESSURE,
    ERA5_SINGLE,
    Channel,
    LevelType,
    Role,
    did_you_mean,
    parse_channel,
)


def _admits_bool(annotation: Any) -> bool:
    """Whether a field's type takes true/false (``bool``, or a union or container with it)."""
    if annotation is bool:
        return True
    return any(arg is bool or _admits_bool(arg) for arg in get_args(annotation))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `true` as 1 (`resolution: true` would be a 1° grid): a
        # YAML boolean is only accepted where the key is a yes/no setting
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields[info.field_name]
            if not _admits_bool(field.annotation):
                raise ValueError(
                    f"{str(value).lower()} is a yes/no value, not a {_kind(field.annotation)}; "
                    "write the value itself (see configs/default.yaml)"
                )
        return value


def _kind(annotation: Any) -> str:
    names = {int: "whole number", float: "number", str: "text", dt.date: "date"}
    for candidate in (annotation, *get_args(annotation)):
        if candidate in names:
            return names[candidate]
    return "value of this key"


class Region(_Strict):
    """A latitude/longitude box; longitudes in [-180, 180], so a box may cross 0°."""

    north: float = Field(description="northern edge, degrees north")
    south: float = Field(description="southern edge, degrees north")
    west: float = Field(description="western edge, degrees east in [-180, 180]")
    east: float = Field(description="eastern edge, degrees east in [-180, 180]")

    @model_validator(mode="after")
    def _inside_globe(self) -> Region:
        for key in ("north", "south"):
            value = getattr(self, key)
            if not -90 <= value <= 90:
                raise ValueError(
                    f"region.{key} = {value} is outside the globe; latitudes lie in [-90, 90]"
                )
        for key in ("west", "east"):
            value = getattr(self, key)
            if not -180 <= value <= 180:
                hint = f" (write {value - 360:g} for {value:g}°E)" if 180 < value <= 360 else ""
                raise ValueError(
                    f"region.{key} = {value} is outside [-180, 180]{hint}; AirCast writes "
                    "longitudes from -180 to 180 so that a region may cross 0°"
                )
        if self.east == 180:
            # the store's longitudes lie in [-180, 180): 180°E is -180°, the region's west
            # edge seen from the other side, so a grid ending there is not a valid store
            raise ValueError(
                "region.east = 180 is the same meridian as -180, and the store's longitudes lie "
                "in [-180, 180); end the region one grid step before it (e.g. east: 179.25 at a "
                "0.75° grid)"
            )
        if self.south >= self.north:
            raise ValueError(
                f"region.south = {self.south} is not south of region.north = {self.north}; "
                "swap them"
            )
        if self.west >= self.east:
            raise ValueError(
                f"region.west = {self.west} is not west of region.east = {self.east}; a region "
                "crossing 180° is not supported, and one crossing 0° is written with a negative "
                "west (e.g. west: -20, east: 76)"
            )
        return self

    def as_area(self) -> list[float]:
        """The data stores' ``area`` key: [north, west, south, east]."""
        return [self.north, self.west, self.south, self.east]


class Grid(_Strict):
    """The target grid: a regular latitude/longitude grid over the region."""

    resolution: float = Field(gt=0, le=10, description="grid spacing in degrees")


class Period(_Strict):
    """An inclusive range of days."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(
                f"ends ({self.end}) before it starts ({self.start}); swap start and end"
            )
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


class Periods(_Strict):
    """Training, validation and test periods: disjoint; statistics come from train only."""

    train: Period
    validation: Period
    test: Period

    @model_validator(mode="after")
    def _disjoint(self) -> Periods:
        named = [("train", self.train), ("validation", self.validation), ("test", self.test)]
        for i, (name_a, a) in enumerate(named):
            for name_b, b in named[i + 1 :]:
                if a.start <= b.end and b.start <= a.end:
                    raise ValueError(
                        f"periods.{name_a} ({a.start}..{a.end}) overlaps periods.{name_b} "
                        f"({b.start}..{b.end}); periods must be disjoint so that the model is "
                        "never scored on days it trained on"
                    )
        return self

    def span(self) -> tuple[dt.date, dt.date]:
        """First and last day over all periods."""
        periods = (self.train, self.validation, self.test)
        return min(p.start for p in periods), max(p.end for p in periods)


#: Where each role's training data come from, and where its initial conditions come from.
TRAINING_SOURCE = {
    Role.WEATHER: (ERA5_SINGLE, ERA5_PRESSURE),
    Role.POLLUTANT: (CAMS_EAC4,),
    Role.STATIC: (ERA5_SINGLE,),
}
FORECAST_SOURCE = CAMS_FORECAST


class Variables(_Strict):
    """Channels by role: ``t2m``, ``u_850``, ``pm2p5``, ``go3_925``."""

    weather: list[str] = Field(min_length=1)
    pollutants: list[str] = Field(min_length=1)
    static: list[str] = Field(default_factory=list)

    @field_validator("weather", "pollutants", "static")
    @classmethod
    def _known_channels(cls, names: list[str], info: Any) -> list[str]:
        role = {"weather": Role.WEATHER, "pollutants": Role.POLLUTANT, "static": Role.STATIC}[
            info.field_name
        ]
        problems: list[str] = []
        seen: set[str] = set()
        for name in names:
            if name in seen:
                problems.append(f"{name!r} is listed twice; remove one")
                continue
            seen.add(name)
            try:
                channel = parse_channel(name)
            except VocabularyError as exc:
                problems.append(str(exc))
                continue
            problems.extend(_channel_problems(channel, role))
        if problems:
            raise ValueError("; ".join(problems))
        return names

    def channels(self) -> list[Channel]:
        """All channels in store order: weather, pollutants, static."""
        return [parse_channel(n) for n in (*self.weather, *self.pollutants, *self.static)]


def _channel_problems(channel: Channel, role: Role) -> list[str]:
    spec = channel.spec
    if spec.role is not role:
        section = {Role.WEATHER: "weather", Role.POLLUTANT: "pollutants", Role.STATIC: "static"}[
            spec.role
        ]
        return [f"{channel.name!r} is a {spec.role.value} variable; move it to variables.{section}"]
    problems = []
    needed = [d for d in TRAINING_SOURCE[role] if d in spec.request_names]
    if not needed:
        problems.append(
            f"{channel.name!r} is not offered by "
            f"{' or '.join(TRAINING_SOURCE[role])}, where {role.value} data come from"
        )
    if role is not Role.STATIC:
        needed.append(FORECAST_SOURCE)  # initial conditions of the daily forecast
    if channel.level is not None:
        for dataset_id in needed:
            if dataset_id not in spec.request_names:
                continue
            offered = DATASETS[dataset_id].levels
            if offered and channel.level not in offered:
                both = sorted(
                    set.intersection(
                        *(set(DATASETS[d].levels) for d in needed if DATASETS[d].levels)
                    )
                )
                problems.append(
                    f"level {channel.level} hPa of {channel.name!r} is not offered by "
                    f"{dataset_id}; use a level that every source offers: "
                    f"{', '.join(map(str, both))}"
                )
                break
    for dataset_id in needed:
        if dataset_id not in spec.request_names:
            problems.append(
                f"{channel.name!r} is not offered by {dataset_id}, which the "
                f"{'daily forecast' if dataset_id == FORECAST_SOURCE else 'training store'} "
                "needs it from"
            )
    return problems


class DataStore(_Strict):
    """One data store's endpoint. The key is never written in a config: name where it lives."""

    url: str = Field(
        default="sandbox",
        description="API URL, e.g. https://cds.climate.copernicus.eu/api, or 'sandbox' for the "
        "embedded local sandbox",
    )
    key_env: str | None = Field(default=None, description="environment variable holding the key")
    key_file: Path | None = Field(
        default=None, description="file holding the key as 'key: …' (the .cdsapirc format)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if url != "sandbox" and not url.startswith(("http://", "https://")):
            raise ValueError(
                f"{url!r} is neither 'sandbox' nor an http(s) URL; the real stores are "
                "https://cds.climate.copernicus.eu/api and https://ads.atmosphere.copernicus.eu/api"
            )
        return url.rstrip("/")

    @property
    def is_sandbox(self) -> bool:
        return self.url == "sandbox"


class DataStores(_Strict):
    """The Climate Data Store (ERA5) and the Atmosphere Data Store (CAMS): separate clients."""

    cds: DataStore = Field(default_factory=DataStore)
    ads: DataStore = Field(default_factory=DataStore)


class SandboxSettings(_Strict):
    """How the embedded sandbox data store runs when a data store's url is 'sandbox'."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0: any free port")
    seed: int = Field(default=0, description="seed of the toy atmosphere")
    key: str = Field(default="aircast-sandbox", description="the sandbox's (public) API key")
    faults: str | None = Field(default=None, description="fault spec, see aircast.sandbox.faults")
    grib_edition: dict[str, Literal[1, 2]] = Field(
        default_factory=dict,
        description="GRIB edition of a dataset's GRIB products, e.g. "
        "{'cams-global-reanalysis-eac4': 2}, as the real stores deliver some products; "
        "1 for a dataset not named",
    )

    @field_validator("grib_edition")
    @classmethod
    def _served_datasets(cls, editions: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(editions) - set(DATASETS))
        if unknown:
            raise ValueError(
                f"sandbox.grib_edition names {', '.join(map(repr, unknown))}, which the "
                f"sandbox does not serve; use one of {', '.join(sorted(DATASETS))}"
            )
        return editions


class IngestSettings(_Strict):
    """How the ingestion asks the stores: format, patience and politeness."""

    data_format: Literal["grib", "netcdf"] = Field(
        default="grib", description="GRIB is what the archives hold: smaller and exact"
    )
    max_concurrent_requests: int = Field(
        default=4,
        ge=1,
        le=32,
        description="jobs in flight per store (the stores queue and throttle)",
    )
    http_tries: int = Field(default=8, ge=1, description="tries of each HTTP call")
    download_tries: int = Field(default=4, ge=1, description="tries of each result's download")
    sleep_max: float = Field(
        default=30.0, gt=0, description="longest wait between polls/retries, s"
    )
    timeout: float = Field(default=60.0, gt=0, description="seconds to wait for one HTTP answer")
    connect_timeout: float = Field(
        default=10.0, gt=0, description="seconds to wait for a connection to a store to open"
    )
    unreachable_after: float = Field(
        default=60.0,
        gt=0,
        description=(
            "seconds without any answer from a store (connection refused, DNS failure, no "
            "reply) before it is given up for the run; a store that answers busy (429, 503) "
            "keeps the patience of http_tries and sleep_max"
        ),
    )
    forecast_lead_hours: int = Field(
        default=72, ge=0, le=120, description="CAMS forecast leads ingested, every 3 h up to this"
    )

    @field_validator("forecast_lead_hours")
    @classmethod
    def _every_three_hours(cls, value: int) -> int:
        if value % 3:
            raise ValueError(
                f"{value} is not a multiple of 3; CAMS pressure-level fields come every 3 hours "
                "of lead"
            )
        return value


class Paths(_Strict):
    """Where AirCast keeps its files; relative paths are relative to the working directory."""

    root: Path = Path("data")

    @property
    def raw(self) -> Path:
        return self.root / "raw"


#: fsspec protocols a training store may live on: the local disk and the object stores.
STORE_PROTOCOLS = ("file", "s3", "gs", "gcs", "az", "abfs", "abfss")

#: ``store.storage_options`` keys that carry secrets: they belong in the environment (or the
#: object store's own credential files), never in a config that is shared and committed.
_SECRET_OPTIONS = {"key", "secret", "token", "password", "account_key", "sas_token"}


def _checked_store_url(url: str | None, key: str, default: str) -> str | None:
    """A Zarr store URL of a supported protocol, without a trailing slash (or None)."""
    if url is None:
        return None
    url = url.strip().rstrip("/")
    if not url:
        raise ValueError(f"is empty; leave {key} out to use {default}")
    if "://" in url:
        protocol = url.split("://", 1)[0]
        if protocol not in STORE_PROTOCOLS:
            raise ValueError(
                f"protocol {protocol!r} of {url!r} is not supported for a store; "
                f"use a local path or one of {', '.join(p + '://' for p in STORE_PROTOCOLS)}"
            )
    return url


def _without_secrets(options: dict[str, Any]) -> dict[str, Any]:
    secrets = sorted(_SECRET_OPTIONS & set(options))
    if secrets:
        raise ValueError(
            f"{', '.join(secrets)}: credentials never go in a config file; set them in the "
            "environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for s3://, "
            "GOOGLE_APPLICATION_CREDENTIALS for gs://)"
        )
    return options


class StoreSettings(_Strict):
    """Where the training store lives and how it is built (``aircast.store``)."""

    url: str | None = Field(
        default=None,
        description="fsspec URL or local path of the Zarr store, e.g. s3://bucket/demo.zarr; "
        "default: paths.root/store.zarr",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for url (e.g. {client_kwargs: {endpoint_url: …}}); "
        "credentials come from the environment",
    )
    part_days: int = Field(
        default=8, ge=1, le=366, description="days per build part (one Dask task each)"
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="address of a running Dask scheduler (tcp://host:8786); default: a local "
        "cluster",
    )
    dask_workers: int = Field(
        default=2, ge=1, le=256, description="worker processes of the local Dask cluster"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return _checked_store_url(url, "store.url", "paths.root/store.zarr")

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, options: dict[str, Any]) -> dict[str, Any]:
        return _without_secrets(options)

    @field_validator("dask_scheduler")
    @classmethod
    def _scheduler(cls, address: str | None) -> str | None:
        if address is not None and "://" not in address:
            raise ValueError(f"{address!r} is not a scheduler address; write it as tcp://host:8786")
        return address


class ModelSettings(_Strict):
    """The forecaster's architecture (a ClimaX-style ViT, aircast.model)."""

    patch_size: int = Field(default=2, ge=1, le=16, description="patch edge in grid cells")
    width: int = Field(default=128, ge=8, description="token width (a multiple of 4 and heads)")
    depth: int = Field(default=4, ge=1, le=48, description="transformer blocks")
    heads: int = Field(default=4, ge=1, le=64, description="attention heads")
    mlp_ratio: float = Field(default=4.0, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    residual: Literal["climatology_anomaly", "persistence"] = Field(
        default="climatology_anomaly",
        description=(
            "the forecast the network corrects: damped anomaly persistence from the training "
            "period's diurnal climatology, or persistence of the initial state"
        ),
    )

    @model_validator(mode="after")
    def _divisible(self) -> ModelSettings:
        if self.width % self.heads or self.width % 4:
            raise ValueError(
                f"model.width = {self.width} must be a multiple of model.heads = {self.heads} "
                "and of 4 (2-D position embedding)"
            )
        return self


class LossSettings(_Strict):
    """Latitude-weighted MAE on weather + frequency-weighted MAE on pollutants."""

    weighting: Literal["ens", "inverse_log", "inverse_sqrt", "none"] = Field(
        default="ens", description="fMAE scheme; 'none' is plain MAE (the ablation)"
    )
    beta: float | None = Field(
        default=None, gt=0, lt=1, description="β of 'ens'; default 1 - 1/N (no saturation)"
    )
    weather_weight: float = Field(default=1.0, ge=0)
    pollutant_weight: float = Field(default=1.0, ge=0)


#: CPU threads torch may use (None: its default, one per core); 1 is fastest on a small machine
#: shared with other work, where the threads spin waiting for each other.
TorchThreads = Annotated[
    int | None,
    Field(ge=1, le=256, description="CPU threads of torch (None: one per core)"),
]


class TrainingSettings(_Strict):
    """How the forecaster is trained (aircast.training)."""

    lead_hours: list[int] = Field(
        default_factory=lambda: list(range(3, 25, 3)),
        description="leads predicted directly (multiples of 3 h); longer leads roll out",
    )
    max_lead_hours: int = Field(default=72, ge=3, le=120, description="rollout horizon")
    pollutants_only: bool = Field(
        default=False, description="single-task ablation: predict pollutants only"
    )
    batch_size: int = Field(default=8, ge=1)
    epochs: int = Field(default=10, ge=1)
    learning_rate: float = Field(default=5e-4, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    warmup_steps: int = Field(default=50, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    num_workers: int = Field(default=2, ge=0, description="DataLoader worker processes")
    in_memory: bool = Field(default=False, description="load the store's periods into memory")
    checkpoint_every_steps: int = Field(default=200, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: TorchThreads = None
    loss: LossSettings = Field(default_factory=LossSettings)

    @field_validator("lead_hours")
    @classmethod
    def _three_hourly(cls, leads: list[int]) -> list[int]:
        bad = [h for h in leads if h <= 0 or h % 3]
        if bad or not leads:
            raise ValueError(
                f"{bad or leads} : leads must be positive multiples of 3 h (the store's step)"
            )
        return sorted(set(leads))


class HealthSettings(_Strict):
    """How far a forecast's initial conditions may stray from the training data."""

    max_nan_fraction: float = Field(
        default=0.0, ge=0, le=1, description="largest share of NaN cells allowed per channel"
    )
    max_cell_sigma: float = Field(
        default=12.0,
        gt=0,
        description="largest |cell value - training mean| in training standard deviations "
        "(log space for heavy-tailed channels)",
    )
    max_drift_sigma: float = Field(
        default=4.0,
        gt=0,
        description="largest |area mean - training mean| in training standard deviations",
    )


class ForecastSettings(_Strict):
    """The daily forecast and its published store (``aircast.forecast``)."""

    url: str | None = Field(
        default=None,
        description="fsspec URL or local path of the forecast Zarr store, e.g. "
        "s3://bucket/forecast.zarr; default: paths.root/forecast.zarr",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options for url; credentials from the environment"
    )
    lead_hours: int = Field(
        default=72, ge=3, le=120, description="last lead published, every 3 h from 0"
    )
    checkpoint: Path | None = Field(
        default=None, description="model checkpoint; default: the training's best.ckpt"
    )
    fallback_to_previous_cycle: bool = Field(
        default=False,
        description="when today's initial conditions are missing or unhealthy, start from "
        "yesterday's 00 UTC run at lead 24 h instead of failing (said in the provenance)",
    )
    health: HealthSettings = Field(default_factory=HealthSettings)
    torch_threads: TorchThreads = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return _checked_store_url(url, "forecast.url", "paths.root/forecast.zarr")

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, options: dict[str, Any]) -> dict[str, Any]:
        return _without_secrets(options)

    @field_validator("lead_hours")
    @classmethod
    def _every_three_hours(cls, value: int) -> int:
        if value % 3:
            raise ValueError(f"{value} is not a multiple of 3; forecasts are 3-hourly")
        return value


#: The most target-grid cells a recipe may have: the whole globe at ERA5's 0.25° (721 × 1440
#: = 1,038,240) fits. One time step of one channel is then 4 MiB of float32, and a finer grid
#: than the sources' adds no information but cost; past this, a build runs out of memory.
MAX_GRID_CELLS = 1_048_576


class AirCastConfig(_Strict):
    """A whole AirCast recipe."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    region: Region
    grid: Grid
    variables: Variables
    periods: Periods
    datastores: DataStores = Field(default_factory=DataStores)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    paths: Paths = Field(default_factory=Paths)
    store: StoreSettings = Field(default_factory=StoreSettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)

    @model_validator(mode="after")
    def _grid_fits_region(self) -> AirCastConfig:
        res = self.grid.resolution
        n_lat = (self.region.north - self.region.south) / res + 1
        n_lon = (self.region.east - self.region.west) / res + 1
        if n_lat * n_lon > MAX_GRID_CELLS:
            area = (self.region.north - self.region.south) * (self.region.east - self.region.west)
            finest = math.ceil(math.sqrt(area / MAX_GRID_CELLS) * 100) / 100
            raise ValueError(
                f"grid.resolution = {res} gives {n_lat:,.0f} × {n_lon:,.0f} = "
                f"{n_lat * n_lon:,.0f} grid cells over the region, more than the "
                f"{MAX_GRID_CELLS:,} AirCast builds (a whole globe at 0.25°, ERA5's own grid); "
                f"choose a resolution of at least {finest:g}° or a smaller region"
            )
        for a, b in (("north", "south"), ("east", "west")):
            extent = getattr(self.region, a) - getattr(self.region, b)
            steps = extent / res
            if not math.isclose(steps, round(steps), abs_tol=1e-6):
                fixed = getattr(self.region, b) + math.floor(steps) * res
                raise ValueError(
                    f"grid.resolution = {res} does not divide the region's {a}-{b} extent "
                    f"({extent:g}°); set region.{a} to {fixed:g} or {fixed + res:g}, or choose "
                    f"a resolution that divides {extent:g}"
                )
        return self

    @model_validator(mode="after")
    def _periods_have_data(self) -> AirCastConfig:
        first, last = self.periods.span()
        has_pl = any(
            c.spec.level_type is LevelType.PRESSURE
            for c in self.variables.channels()
            if c.spec.role is Role.POLLUTANT
        )
        ranges = []
        for dataset_id in (*TRAINING_SOURCE[Role.WEATHER], *TRAINING_SOURCE[Role.POLLUTANT]):
            spec = DATASETS[dataset_id]
            end = spec.last_day(pressure_levels=dataset_id == CAMS_EAC4 and has_pl)
            ranges.append((dataset_id, spec.first_date, end))
        lo, hi = max(r[1] for r in ranges), min(r[2] for r in ranges)
        if first < lo or last > hi:
            limits = ", ".join(f"{d} {a}..{b}" for d, a, b in ranges)
            raise ValueError(
                f"periods span {first}..{last}, but the training sources overlap only on "
                f"{lo}..{hi} ({limits}); move the periods inside {lo}..{hi}"
            )
        return self

    @property
    def store_url(self) -> str:
        """The training store's URL or local path (``store.url``, else paths.root/store.zarr)."""
        if self.store.url is not None:
            return self.store.url
        return str(self.paths.root / "store.zarr")

    @property
    def forecast_url(self) -> str:
        """The forecast store's URL or path (``forecast.url``, else paths.root/forecast.zarr)."""
        if self.forecast.url is not None:
            return self.forecast.url
        return str(self.paths.root / "forecast.zarr")

    @property
    def lat_lon_shape(self) -> tuple[int, int]:
        """Number of target-grid latitudes and longitudes."""
        r, g = self.region, self.grid.resolution
        return (round((r.north - r.south) / g) + 1, round((r.east - r.west) / g) + 1)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at the parent of ``loc`` (for 'did you mean')."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            return []
        field = current.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        current = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return list(current.model_fields) if current is not None else []


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    where = _location(loc)
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if key == "key" and loc[0] == "datastores":
            return (
                f"{where}: an API key never goes in a config file (configs are shared and "
                "committed); put it in an environment variable named by key_env, or in a "
                "file named by key_file"
            )
        allowed = _allowed_keys(AirCastConfig, loc)
        hint = did_you_mean(key, allowed)
        return (
            f"{where}: unknown key {key!r}{hint}; remove it or fix its spelling "
            f"(allowed here: {', '.join(allowed)})"
        )
    if kind == "missing":
        return f"{where}: required key is missing; add it (see configs/default.yaml)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return f"{where}: {message}"
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    if kind.startswith(("date_", "datetime_")):
        return f"{where}: {shown} is not a date: {message}; write a day that exists, YYYY-MM-DD"
    return f"{where}: {shown} is not valid: {message}"


def parse_config(data: Any, source: str = "<config>") -> AirCastConfig:
    """Validate an already-loaded mapping (from YAML) into an :class:`AirCastConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(
            source, [f"expected a mapping of keys at the top level, got {type(data).__name__}"]
        )
    try:
        return AirCastConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e) for e in exc.errors()]) from None


class _DatesAsText(yaml.SafeLoader):
    """YAML's safe loader that leaves dates as text for the config's own date fields.

    PyYAML turns ``2019-02-30`` into a date itself and raises a bare ValueError for an
    impossible one, naming no key; left as text, the date is checked by validation, whose
    message names the key (``periods.train.start``).
    """


_DatesAsText.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


def load_config(path: str | Path) -> AirCastConfig:
    """Read and validate a YAML config file.

    Raises
    ------
    ConfigError
        Listing every problem with its key, bad value and fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            str(path), ["file not found; pass the path of a YAML config such as configs/demo.yaml"]
        )
    try:
        data = yaml.load(path.read_text(), Loader=_DatesAsText)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(
            str(path), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_config(data, str(path))


DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"

"""What the Copernicus data stores offer, and which requests their forms accept.

The rules here are the facts of the stores' catalogue forms (request keys, allowed values,
date ranges, field limits) for the four datasets AirCast uses. They are compiled into the
package so that the sandbox and the ingestion need no network and no external files;
``tests/test_catalogue.py`` re-derives them from the real forms in
``../shared/data/cds-forms/`` so that they cannot drift. The CAMS global forecast has no form
there; its rules follow the Atmosphere Data Store documentation (runs at 00 and 12 UTC,
``leadtime_hour`` 0-120, pressure-level fields every 3 hours of lead, data from 2015).

Date ranges are the one exception to "the forms are the truth": a form snapshot is frozen on
the day it was taken (the ERA5 forms there list the years 1959-2023), while the stores keep
serving new days. Each dataset's accepted dates therefore follow its documented coverage
(:data:`ERA5_FIRST_DATE`, :data:`ERA5_LAG_DAYS`, :data:`EAC4_LAST_DATE`,
:data:`CAMS_FORECAST_FIRST_DATE`); see :meth:`DatasetSpec.last_day`.

:func:`validate_request` is used by both sides of the network seam: the sandbox server rejects
what the real store would reject, and the ingestion refuses to send such a request at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from aircast.errors import RequestError
from aircast.vocab import (
    CAMS_EAC4,
    CAMS_FORECAST,
    ERA5_PRESSURE,
    ERA5_SINGLE,
    VARIABLES,
    LevelType,
    Variable,
    did_you_mean,
)

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)

ERA5_PRESSURE_LEVELS = (
    1,
    2,
    3,
    5,
    7,
    10,
    20,
    30,
    50,
    70,
    100,
    125,
    150,
    175,
    200,
    225,
    250,
    300,
    350,
    400,
    450,
    500,
    550,
    600,
    650,
    700,
    750,
    775,
    800,
    825,
    850,
    875,
    900,
    925,
    950,
    975,
    1000,
)
CAMS_PRESSURE_LEVELS = (
    1,
    2,
    3,
    5,
    7,
    10,
    20,
    30,
    50,
    70,
    100,
    150,
    200,
    250,
    300,
    400,
    500,
    600,
    700,
    800,
    850,
    900,
    925,
    950,
    1000,
)


#: ERA5's documented coverage: "1940 to present" (CDS dataset pages of
#: reanalysis-era5-single-levels and -pressure-levels since the 1940-1958 back extension).
ERA5_FIRST_DATE = dt.date(1940, 1, 1)
#: ERA5 reaches about five days before today: its preliminary release ERA5T is published
#: daily with a delay of about 5 days behind real time (CDS documentation of ERA5).
ERA5_LAG_DAYS = 5
#: EAC4's published end: the ``date`` widget of the cams-global-reanalysis-eac4 form
#: (ecmwf-projects/cads-catalogue, commit 2b22c77, 2025-09-25, in ../shared/data/cds-forms/).
EAC4_LAST_DATE = dt.date(2022, 6, 30)
#: EAC4's pressure-level fields end earlier: the constraint of that form with pressure levels.
EAC4_PRESSURE_LAST_DATE = dt.date(2021, 12, 31)
#: The CAMS global forecast's archive on the ADS: from 2015-01-01 up to today's runs (ADS
#: documentation of cams-global-atmospheric-composition-forecasts; no form snapshot here).
CAMS_FORECAST_FIRST_DATE = dt.date(2015, 1, 1)


@dataclass(frozen=True)
class DatasetSpec:
    """One data-store dataset: where it lives, its native grid and its time axis.

    Attributes
    ----------
    id
        Catalogue id, as passed to ``cdsapi.Client.retrieve``.
    store
        ``cds`` (Climate Data Store) or ``ads`` (Atmosphere Data Store).
    grid_step
        Native grid spacing in degrees; the native grid is global, latitude 90 → -90 and
        longitude 0 → 360 - step.
    hours
        UTC hours of the day that a reanalysis offers, or the forecast runs' start hours.
    levels
        Pressure levels (hPa) offered; empty for single-level datasets.
    first_date, last_date
        Inclusive documented coverage; ``last_date`` None: a rolling end, ``lag_days``
        before today (see :meth:`last_day`).
    coverage
        Where the range comes from, for the messages that refuse a date outside it.
    pressure_last_date
        For EAC4, pressure-level fields end earlier than surface fields.
    lag_days
        For a rolling end, how many days before today (UTC) the newest data are.
    selection_limit
        Largest number of fields (product of the counts of all list keys) in one request.
    """

    id: str
    store: Literal["cds", "ads"]
    title: str
    kind: Literal["reanalysis", "forecast"]
    grid_step: float
    hours: tuple[int, ...]
    levels: tuple[int, ...]
    first_date: dt.date
    last_date: dt.date | None
    selection_limit: int
    coverage: str
    pressure_last_date: dt.date | None = None
    lag_days: int = 0
    max_lead_hour: int = 0
    pressure_lead_step: int = 1

    def last_day(self, today: dt.date | None = None, *, pressure_levels: bool = False) -> dt.date:
        """The last date the store serves.

        Parameters
        ----------
        today
            The current date (default: today in UTC); only a rolling end depends on it.
        pressure_levels
            The end of pressure-level fields (earlier for EAC4).
        """
        if pressure_levels and self.pressure_last_date is not None:
            return self.pressure_last_date
        if self.last_date is not None:
            return self.last_date
        return (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=self.lag_days)

    @property
    def n_lat(self) -> int:
        return round(180 / self.grid_step) + 1

    @property
    def n_lon(self) -> int:
        return round(360 / self.grid_step)

    def variables(self) -> tuple[Variable, ...]:
        """The vocabulary's variables that this dataset offers."""
        return tuple(v for v in VARIABLES.values() if self.id in v.request_names)

    def native_latitudes(self) -> np.ndarray:
        """Native latitudes, north to south, shape (n_lat,)."""
        return np.round(90.0 - self.grid_step * np.arange(self.n_lat), 6)

    def native_longitudes(self) -> np.ndarray:
        """Native longitudes as archived, 0 → 360 - step, shape (n_lon,)."""
        return np.round(self.grid_step * np.arange(self.n_lon), 6)


_ERA5_COVERAGE = (
    "ERA5 covers 1940-01-01 to about five days before today (its preliminary data, ERA5T, "
    "are published with a 5-day delay)"
)

DATASETS: Mapping[str, DatasetSpec] = {
    ERA5_SINGLE: DatasetSpec(
        ERA5_SINGLE,
        "cds",
        "ERA5 hourly data on single levels",
        "reanalysis",
        0.25,
        tuple(range(24)),
        (),
        ERA5_FIRST_DATE,
        None,
        120_000,
        _ERA5_COVERAGE,
        lag_days=ERA5_LAG_DAYS,
    ),
    ERA5_PRESSURE: DatasetSpec(
        ERA5_PRESSURE,
        "cds",
        "ERA5 hourly data on pressure levels",
        "reanalysis",
        0.25,
        tuple(range(24)),
        ERA5_PRESSURE_LEVELS,
        ERA5_FIRST_DATE,
        None,
        1_000_000,
        _ERA5_COVERAGE,
        lag_days=ERA5_LAG_DAYS,
    ),
    CAMS_EAC4: DatasetSpec(
        CAMS_EAC4,
        "ads",
        "CAMS global reanalysis (EAC4)",
        "reanalysis",
        0.75,
        (0, 3, 6, 9, 12, 15, 18, 21),
        CAMS_PRESSURE_LEVELS,
        dt.date(2003, 1, 1),
        EAC4_LAST_DATE,
        100_000,
        "EAC4 is published from 2003-01-01 to 2022-06-30, pressure-level fields to 2021-12-31 "
        "(the store's form)",
        pressure_last_date=EAC4_PRESSURE_LAST_DATE,
    ),
    CAMS_FORECAST: DatasetSpec(
        CAMS_FORECAST,
        "ads",
        "CAMS global atmospheric composition forecasts",
        "forecast",
        0.4,
        (0, 12),
        CAMS_PRESSURE_LEVELS,
        CAMS_FORECAST_FIRST_DATE,
        None,
        100_000,
        "the CAMS forecast archive runs from 2015-01-01 to today's runs",
        max_lead_hour=120,
        pressure_lead_step=3,
    ),
}

#: Keys every store accepts besides the form's widgets (format selection of the current API).
_FORMAT_KEYS = {
    ERA5_SINGLE: ("data_format", "download_format"),
    ERA5_PRESSURE: ("data_format", "download_format"),
    CAMS_EAC4: ("format", "data_format"),
    CAMS_FORECAST: ("data_format", "format"),
}
_FORMATS = ("grib", "netcdf")
_REQUIRED = {
    ERA5_SINGLE: ("product_type", "variable", "year", "month", "day", "time"),
    ERA5_PRESSURE: ("product_type", "variable", "year", "month", "day", "time", "pressure_level"),
    CAMS_EAC4: ("variable", "date", "time"),
    CAMS_FORECAST: ("variable", "date", "time", "leadtime_hour", "type"),
}
_OPTIONAL = {
    ERA5_SINGLE: ("area",),
    ERA5_PRESSURE: ("area",),
    CAMS_EAC4: ("area", "pressure_level", "model_level"),
    CAMS_FORECAST: ("area", "pressure_level"),
}


def dataset(dataset_id: str) -> DatasetSpec:
    """Look up a dataset, naming the known ones when it is unknown."""
    try:
        return DATASETS[dataset_id]
    except KeyError:
        raise RequestError(
            f"unknown dataset {dataset_id!r}{did_you_mean(dataset_id, DATASETS)}; "
            f"AirCast knows: {', '.join(DATASETS)}"
        ) from None


@dataclass(frozen=True)
class ParsedRequest:
    """A request the form accepts, parsed into what a product needs.

    Attributes
    ----------
    dataset
        The dataset's id.
    variables
        Vocabulary short names, in request order.
    levels
        Pressure levels in hPa (sorted ascending), or ``()``.
    times
        Reanalysis: the valid times (datetime64[ns], sorted). Forecast: the runs' start times.
    lead_hours
        Forecast lead times in hours (sorted), or ``()`` for a reanalysis.
    area
        ``(north, west, south, east)`` in degrees, or None for the whole globe.
    data_format
        ``grib`` or ``netcdf``.
    """

    dataset: str
    variables: tuple[str, ...]
    levels: tuple[int, ...]
    times: np.ndarray
    lead_hours: tuple[int, ...]
    area: tuple[float, float, float, float] | None
    data_format: Literal["grib", "netcdf"]

    @property
    def n_fields(self) -> int:
        n_levels = max(1, len(self.levels))
        return len(self.variables) * n_levels * len(self.times) * max(1, len(self.lead_hours))


def _as_list(key: str, value: Any) -> list[str]:
    if isinstance(value, (str, int, float)):
        return [str(value)]
    if isinstance(value, Sequence) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise RequestError(
        f"request key {key!r}: expected a string or a list of strings, got {value!r}"
    )


def _check_values(key: str, values: list[str], allowed: Sequence[str]) -> None:
    for v in values:
        if v not in allowed:
            shown = ", ".join(allowed[:40]) + (" …" if len(allowed) > 40 else "")
            raise RequestError(
                f"request key {key!r}: value {v!r} is not accepted{did_you_mean(v, allowed)}; "
                f"the form accepts: {shown}"
            )


def _parse_area(value: Any) -> tuple[float, float, float, float]:
    try:
        north, west, south, east = (float(x) for x in value)
    except (TypeError, ValueError):
        raise RequestError(
            f"request key 'area': expected [north, west, south, east] in degrees, got {value!r}"
        ) from None
    if not (-90 <= south <= north <= 90):
        raise RequestError(
            f"request key 'area': latitudes must satisfy -90 <= south <= north <= 90, got "
            f"north={north}, south={south}"
        )
    if not (-180 <= west <= 360 and -180 <= east <= 360 and west <= east and east - west <= 360):
        raise RequestError(
            f"request key 'area': longitudes must satisfy west <= east within [-180, 360], got "
            f"west={west}, east={east}"
        )
    return north, west, south, east


def _parse_date_range(key: str, values: list[str]) -> list[dt.date]:
    days: list[dt.date] = []
    for v in values:
        first, _, last = v.partition("/")
        try:
            start = dt.date.fromisoformat(first)
            end = dt.date.fromisoformat(last) if last else start
        except ValueError:
            raise RequestError(
                f"request key {key!r}: {v!r} is not a date or date range; write "
                "'YYYY-MM-DD' or 'YYYY-MM-DD/YYYY-MM-DD'"
            ) from None
        if end < start:
            raise RequestError(f"request key {key!r}: range {v!r} ends before it starts")
        days.extend(start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    return sorted(set(days))


def _check_date_span(
    spec: DatasetSpec, days: list[dt.date], has_levels: bool, today: dt.date | None
) -> None:
    last = spec.last_day(today, pressure_levels=has_levels)
    for day in (days[0], days[-1]):
        if not spec.first_date <= day <= last:
            what = "pressure-level fields" if has_levels and spec.pressure_last_date else "data"
            raise RequestError(
                f"date {day.isoformat()} is outside the {what} of {spec.id}: the store offers "
                f"{spec.first_date.isoformat()} to {last.isoformat()} ({spec.coverage}); "
                f"request dates from {spec.first_date.isoformat()} to {last.isoformat()}"
            )


def _check_years(spec: DatasetSpec, years: list[str], today: dt.date | None) -> None:
    # The form's year list is a frozen snapshot; the documented coverage decides instead.
    last = spec.last_day(today)
    for year in years:
        if not (year.isdigit() and len(year) == 4):
            raise RequestError(f"request key 'year': {year!r} is not a year; write e.g. '2019'")
        if not spec.first_date.year <= int(year) <= last.year:
            raise RequestError(
                f"request key 'year': {year} is outside the data of {spec.id}: the store offers "
                f"{spec.first_date.isoformat()} to {last.isoformat()} ({spec.coverage}); "
                f"request years {spec.first_date.year} to {last.year}"
            )


def validate_request(
    dataset_id: str, request: Mapping[str, Any], *, today: dt.date | None = None
) -> ParsedRequest:
    """Check a request against the dataset's form and parse it.

    Parameters
    ----------
    dataset_id
        Catalogue id of the dataset.
    request
        The request as sent to ``cdsapi.Client.retrieve``.
    today
        The current date (default: today in UTC), for datasets whose coverage runs up to
        the present (ERA5, the CAMS forecast); tests may pin it.

    Raises
    ------
    RequestError
        Naming the key, the bad value and what the form accepts.
    """
    spec = dataset(dataset_id)
    allowed_keys = set(_REQUIRED[dataset_id]) | set(_OPTIONAL[dataset_id])
    allowed_keys |= set(_FORMAT_KEYS[dataset_id])
    for key in request:
        if key not in allowed_keys:
            raise RequestError(
                f"request key {key!r} is not accepted by {dataset_id}"
                f"{did_you_mean(key, allowed_keys)}; "
                f"accepted keys: {', '.join(sorted(allowed_keys))}"
            )
    for key in _REQUIRED[dataset_id]:
        if key not in request:
            raise RequestError(f"request for {dataset_id} lacks the required key {key!r}")

    # ---- format
    fmt_values = [
        str(request[k])
        for k in _FORMAT_KEYS[dataset_id][:1] + _FORMAT_KEYS[dataset_id][1:]
        if k in request and k != "download_format"
    ]
    data_format = fmt_values[0] if fmt_values else "grib"
    _check_values("data_format", [data_format], _FORMATS)
    if "download_format" in request:
        _check_values(
            "download_format",
            _as_list("download_format", request["download_format"]),
            ["unarchived"],
        )

    # ---- variables
    offered = {v.request_names[dataset_id]: v for v in spec.variables()}
    names = _as_list("variable", request["variable"])
    variables: list[Variable] = []
    for name in names:
        if name not in offered:
            raise RequestError(
                f"request key 'variable': {name!r} is not offered by {dataset_id}"
                f"{did_you_mean(name, offered)}"
            )
        variables.append(offered[name])

    has_pl = any(v.level_type is LevelType.PRESSURE for v in variables)

    # ---- levels
    levels: tuple[int, ...] = ()
    if dataset_id == ERA5_PRESSURE:
        level_values = _as_list("pressure_level", request["pressure_level"])
        _check_values("pressure_level", level_values, [f"{p}_hpa" for p in spec.levels])
        levels = tuple(sorted({int(v.removesuffix("_hpa")) for v in level_values}))
    elif "pressure_level" in request:
        level_values = _as_list("pressure_level", request["pressure_level"])
        _check_values("pressure_level", level_values, [str(p) for p in spec.levels])
        levels = tuple(sorted({int(v) for v in level_values}))
    if dataset_id in (CAMS_EAC4, CAMS_FORECAST):
        if "model_level" in request:
            raise RequestError(
                "request key 'model_level': model levels are not served by AirCast; "
                "request 'pressure_level' instead"
            )
        if has_pl and not levels:
            multi = [
                v.request_names[dataset_id] for v in variables if v.level_type is LevelType.PRESSURE
            ]
            raise RequestError(
                f"request for {dataset_id} asks for multi-level variables ({', '.join(multi)}) "
                "but no 'pressure_level'"
            )

    # ---- times
    lead_hours: tuple[int, ...] = ()
    if spec.kind == "reanalysis" and dataset_id in (ERA5_SINGLE, ERA5_PRESSURE):
        product = _as_list("product_type", request["product_type"])
        _check_values("product_type", product, ["reanalysis"])
        years = _as_list("year", request["year"])
        _check_years(spec, years, today)
        months = _as_list("month", request["month"])
        _check_values("month", months, MONTHS)
        day_values = _as_list("day", request["day"])
        _check_values("day", day_values, [f"{d:02d}" for d in range(1, 32)])
        hour_values = _as_list("time", request["time"])
        _check_values("time", hour_values, [f"{h:02d}:00" for h in spec.hours])
        days = []
        for y in sorted(set(years)):
            for m in sorted({MONTHS.index(m) + 1 for m in months}):
                for d in sorted({int(d) for d in day_values}):
                    try:
                        days.append(dt.date(int(y), m, d))
                    except ValueError:
                        continue  # 31 February: the store skips impossible dates
        if not days:
            raise RequestError("request selects no valid calendar date")
        hours = sorted({int(h[:2]) for h in hour_values})
    else:
        days = _parse_date_range("date", _as_list("date", request["date"]))
        hour_values = _as_list("time", request["time"])
        _check_values("time", hour_values, [f"{h:02d}:00" for h in spec.hours])
        hours = sorted({int(h[:2]) for h in hour_values})
        if spec.kind == "forecast":
            _check_values("type", _as_list("type", request["type"]), ["forecast"])
            lead_values = _as_list("leadtime_hour", request["leadtime_hour"])
            _check_values(
                "leadtime_hour", lead_values, [str(h) for h in range(spec.max_lead_hour + 1)]
            )
            lead_hours = tuple(sorted({int(v) for v in lead_values}))
            if has_pl:
                off = [h for h in lead_hours if h % spec.pressure_lead_step]
                if off:
                    raise RequestError(
                        f"request key 'leadtime_hour': pressure-level fields of {dataset_id} "
                        f"exist only every {spec.pressure_lead_step} hours of lead; "
                        f"{off} are not available (request them without pressure-level variables)"
                    )
    _check_date_span(spec, days, has_pl, today)

    times = np.array(
        [np.datetime64(f"{d.isoformat()}T{h:02d}:00", "ns") for d in days for h in hours],
        dtype="datetime64[ns]",
    )
    area = _parse_area(request["area"]) if "area" in request else None
    parsed = ParsedRequest(
        dataset=dataset_id,
        variables=tuple(v.name for v in variables),
        levels=levels,
        times=times,
        lead_hours=lead_hours,
        area=area,
        data_format=data_format,  # type: ignore[arg-type]
    )
    if parsed.n_fields > spec.selection_limit:
        raise RequestError(
            f"request too large: {parsed.n_fields} fields requested but {dataset_id} allows at "
            f"most {spec.selection_limit} per request; split it into smaller requests "
            "(fewer days or variables each)"
        )
    return parsed


@dataclass(frozen=True)
class ProductGrid:
    """The native grid points a product delivers.

    Attributes
    ----------
    latitudes
        Degrees north, north to south, float64, shape (n_lat,).
    longitudes
        Degrees east, increasing, float64, shape (n_lon,); negative west of 0° when the
        request's area starts there.
    step
        Grid spacing in degrees.
    """

    latitudes: np.ndarray
    longitudes: np.ndarray
    step: float

    @property
    def shape(self) -> tuple[int, int]:
        return (self.latitudes.size, self.longitudes.size)


def _millidegrees(value: float) -> int:
    # GRIB1 resolution; every native step (0.25, 0.4, 0.75) is a whole number of them, so
    # integer arithmetic selects grid points without floating-point edge effects.
    return round(value * 1000)


def product_grid(dataset_id: str, area: tuple[float, float, float, float] | None) -> ProductGrid:
    """The native grid points inside ``area`` for ``dataset_id``.

    Parameters
    ----------
    dataset_id
        Catalogue id.
    area
        ``(north, west, south, east)`` in degrees, or None for the whole globe (longitudes
        0 → 360 - step). Points are the multiples of the native step inside the box
        (edges included); a box from -20 to 76 gives longitudes -20 … 76.

    Raises
    ------
    RequestError
        When the box contains no grid point.
    """
    spec = DATASETS[dataset_id]
    step = _millidegrees(spec.grid_step)
    if area is None:
        lat_idx = np.arange(90_000 // step, -90_000 // step - 1, -1)
        lon_idx = np.arange(spec.n_lon)
    else:
        north, west, south, east = (_millidegrees(v) for v in area)
        lat_idx = np.arange(north // step, -(-south // step) - 1, -1)
        first = -(-west // step)
        last = east // step
        count = min(last - first + 1, spec.n_lon)  # a 360° box must not repeat 0° at 360°
        lon_idx = np.arange(first, first + count) if count > 0 else np.arange(0)
        if lat_idx.size == 0 or lon_idx.size == 0:
            raise RequestError(
                f"request key 'area': {list(area)} contains no point of the "
                f"{spec.grid_step}° grid of {dataset_id}; widen the box to at least one grid step"
            )
    return ProductGrid(
        latitudes=lat_idx * step / 1000.0,
        longitudes=lon_idx * step / 1000.0,
        step=spec.grid_step,
    )

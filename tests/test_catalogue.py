"""The compiled catalogue agrees with the data stores' real forms in ../shared/data/cds-forms.

Two independent readings of the same facts: ``aircast.catalogue`` (compiled into the package)
and a small form interpreter here that reads form.json, constraints.json and mapping.json.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aircast.catalogue import DATASETS, MONTHS, validate_request
from aircast.errors import RequestError
from aircast.vocab import CAMS_EAC4, CAMS_FORECAST, ERA5_PRESSURE, ERA5_SINGLE, VARIABLES

FORM_DATASETS = [ERA5_SINGLE, ERA5_PRESSURE, CAMS_EAC4]


def _load(forms: Path, dataset: str, name: str) -> Any:
    return json.loads((forms / dataset / f"{name}.json").read_text())


def _widget_values(forms: Path, dataset: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for widget in _load(forms, dataset, "form"):
        details = widget.get("details", {})
        if "values" in details:
            values[widget["name"]] = list(details["values"])
        elif "groups" in details:
            values[widget["name"]] = [
                v for g in details["groups"] for v in g.get("values", g.get("labels", {}))
            ]
    return values


@pytest.mark.parametrize("dataset", FORM_DATASETS)
def test_times_levels_and_limits_match_the_forms(cds_forms: Path, dataset: str) -> None:
    spec = DATASETS[dataset]
    widgets = _widget_values(cds_forms, dataset)
    assert widgets["time"] == [f"{h:02d}:00" for h in spec.hours]
    mapping = _load(cds_forms, dataset, "mapping")
    assert mapping["selection_limit"] == spec.selection_limit
    if dataset == ERA5_PRESSURE:
        assert sorted(int(v.removesuffix("_hpa")) for v in widgets["pressure_level"]) == list(
            spec.levels
        )
    if dataset == CAMS_EAC4:
        assert [int(v) for v in widgets["pressure_level"]] == list(spec.levels)
    if dataset in (ERA5_SINGLE, ERA5_PRESSURE):
        # the snapshot's years (1959-2023) lie inside the documented coverage, which decides
        years = [int(y) for y in widgets["year"]]
        assert spec.first_date.year <= min(years) and max(years) <= spec.last_day().year
        assert set(widgets["month"]) == set(MONTHS)
        assert set(mapping["remap"]["month"]) == set(MONTHS)


def test_eac4_date_ranges_match_the_constraints(cds_forms: Path) -> None:
    spec = DATASETS[CAMS_EAC4]
    form = {w["name"]: w for w in _load(cds_forms, CAMS_EAC4, "form")}
    first, last = form["date"]["details"]["range"]
    assert (dt.date.fromisoformat(first), dt.date.fromisoformat(last)) == (
        spec.first_date,
        spec.last_date,
    )
    pl_ranges = [
        e["date"][0] for e in _load(cds_forms, CAMS_EAC4, "constraints") if "pressure_level" in e
    ]
    assert pl_ranges == [f"{spec.first_date}/{spec.pressure_last_date}"]


# ---- an independent interpreter of the forms, to compare acceptance with


#: ERA5's documented coverage in years ("1940 to present"; the newest year is today's, or
#: last year's in the first five days of January), written out independently of the
#: catalogue: the form snapshot's year list is frozen at 1959-2023.
_ERA5_YEARS = [
    str(y) for y in range(1940, (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=5)).year + 1)
]


def _form_accepts(forms: Path, dataset: str, request: dict[str, Any]) -> bool:
    widgets = _widget_values(forms, dataset)
    if "year" in widgets:
        widgets["year"] = _ERA5_YEARS
    for key, value in request.items():
        if key in ("area", "data_format", "format", "download_format"):
            continue
        values = value if isinstance(value, list) else [value]
        if key == "date":
            lo, hi = _load(forms, dataset, "form")[5]["details"]["range"]
            if not all(lo <= v.split("/")[0] and v.split("/")[-1] <= hi for v in values):
                return False
            continue
        if key not in widgets or not set(values) <= set(widgets[key]):
            return False
    for variable in request["variable"]:
        entries = [
            e for e in _load(forms, dataset, "constraints") if variable in e.get("variable", [])
        ]
        if "product_type" in request:
            entries = [e for e in entries if set(request["product_type"]) <= set(e["product_type"])]
        if not entries:
            return False
        for key in ("time", "pressure_level"):  # years: the coverage, not the snapshot
            if key in request and all(key in e for e in entries):
                covered = set().union(*(e[key] for e in entries))
                if not set(request[key]) <= covered:
                    return False
        if "date" in request:
            ranges = [
                e["date"][0].split("/")
                for e in entries
                if ("pressure_level" in e) == ("pressure_level" in request)
            ]
            for v in request["date"]:
                first, last = v.split("/")[0], v.split("/")[-1]
                if not any(lo <= first and last <= hi for lo, hi in ranges):
                    return False
    return True


def _random_request(rng: random.Random, forms: Path, dataset: str) -> dict[str, Any]:
    ours = [v.request_names[dataset] for v in VARIABLES.values() if dataset in v.request_names]
    widgets = _widget_values(forms, dataset)

    def pick(key: str, k: int, extra: list[str]) -> list[str]:
        pool = widgets[key] + extra
        return sorted(set(rng.sample(pool, k=min(k, len(pool)))))

    if dataset == CAMS_EAC4:
        single = [v for v in ours if VARIABLES_BY_REQUEST[dataset][v].level_type == "single"]
        multi = [v for v in ours if v not in single]
        variables = rng.sample(single if rng.random() < 0.5 else multi, k=2)
        year = rng.choice([2002, 2003, 2010, 2021, 2022, 2023])
        request: dict[str, Any] = {
            "variable": variables,
            "date": [f"{year}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"],
            "time": pick("time", 2, ["01:00", "24:00"] if rng.random() < 0.4 else []),
            "format": "grib",
        }
        if variables[0] in multi:
            request["pressure_level"] = pick(
                "pressure_level", 2, ["975", "0"] if rng.random() < 0.5 else []
            )
        return request
    request = {
        "product_type": ["reanalysis"],
        "variable": rng.sample(ours, k=min(2, len(ours))),
        "year": pick("year", 1, ["1939", "1950", "2024", "2101"] if rng.random() < 0.5 else []),
        "month": pick("month", 1, ["13", "01"] if rng.random() < 0.5 else []),
        "day": pick("day", 2, []),
        "time": pick("time", 2, ["24:00", "0:00"] if rng.random() < 0.4 else []),
        "data_format": "grib",
    }
    if dataset == ERA5_PRESSURE:
        request["pressure_level"] = pick(
            "pressure_level", 2, ["925", "1013_hpa"] if rng.random() < 0.5 else []
        )
    return request


VARIABLES_BY_REQUEST = {
    d: {v.request_names[d]: v for v in VARIABLES.values() if d in v.request_names}
    for d in (ERA5_SINGLE, ERA5_PRESSURE, CAMS_EAC4, CAMS_FORECAST)
}


@pytest.mark.parametrize("dataset", FORM_DATASETS)
def test_acceptance_agrees_with_the_forms(cds_forms: Path, dataset: str) -> None:
    """Random requests, valid and not: we accept exactly what the real form accepts."""
    rng = random.Random(dataset)
    seen = {True: 0, False: 0}
    for _ in range(150):
        request = _random_request(rng, cds_forms, dataset)
        expected = _form_accepts(cds_forms, dataset, request)
        try:
            validate_request(dataset, request)
            accepted = True
        except RequestError:
            accepted = False
        assert accepted == expected, (request, expected)
        seen[expected] += 1
    assert seen[True] > 10 and seen[False] > 10, seen  # both sides were exercised


@pytest.mark.parametrize(
    ("dataset", "request_", "fragment"),
    [
        (
            ERA5_SINGLE,
            {
                "product_type": "reanalysis",
                "variable": "2m_temperatur",
                "year": "2019",
                "month": "june",
                "day": "01",
                "time": "00:00",
            },
            "did you mean '2m_temperature'",
        ),
        (
            ERA5_PRESSURE,
            {
                "product_type": "reanalysis",
                "variable": "temperature",
                "year": "2019",
                "month": "june",
                "day": "01",
                "time": "00:00",
            },
            "required key 'pressure_level'",
        ),
        (
            CAMS_EAC4,
            {
                "variable": "ozone",
                "date": "2019-06-01",
                "time": "00:00",
                "pressure_level": "925",
                "grid": "1/1",
            },
            "key 'grid' is not accepted",
        ),
        (
            CAMS_EAC4,
            {"variable": "ozone", "date": "2019-06-31", "time": "00:00", "pressure_level": "925"},
            "not a date",
        ),
        (
            CAMS_FORECAST,
            {
                "variable": "ozone",
                "date": "2024-01-01",
                "time": "00:00",
                "pressure_level": "925",
                "leadtime_hour": ["1"],
                "type": "forecast",
            },
            "every 3 hours of lead",
        ),
        (
            CAMS_FORECAST,
            {
                "variable": "particulate_matter_2.5um",
                "date": "2024-01-01",
                "time": "06:00",
                "leadtime_hour": "0",
                "type": "forecast",
            },
            "'time'",
        ),
        (
            CAMS_FORECAST,
            {
                "variable": "particulate_matter_2.5um",
                "date": "2014-12-31",
                "time": "00:00",
                "leadtime_hour": "0",
                "type": "forecast",
            },
            "2015-01-01",
        ),
        (
            CAMS_EAC4,
            {
                "variable": ["particulate_matter_2.5um", "particulate_matter_10um"],
                "date": "2003-01-01/2021-12-31",
                "time": [f"{h:02d}:00" for h in range(0, 24, 3)],
            },
            "too large",
        ),
        ("reanalysis-era5-single-level", {}, "did you mean 'reanalysis-era5-single-levels'"),
    ],
)
def test_rejections_name_the_problem(dataset: str, request_: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RequestError, match=fragment):
        validate_request(dataset, request_, today=dt.date(2026, 11, 21))


def test_forecast_request_parses_runs_and_leads() -> None:
    parsed = validate_request(
        CAMS_FORECAST,
        {
            "variable": ["particulate_matter_2.5um", "ozone"],
            "pressure_level": ["925"],
            "date": "2024-03-01/2024-03-02",
            "time": ["00:00", "12:00"],
            "leadtime_hour": ["0", "3", "72"],
            "type": "forecast",
            "data_format": "netcdf",
        },
        today=dt.date(2026, 11, 21),
    )
    assert parsed.variables == ("pm2p5", "go3")
    assert parsed.lead_hours == (0, 3, 72)
    assert len(parsed.times) == 4 and parsed.data_format == "netcdf"


# ---- date ranges: each dataset's documented coverage, not the frozen form snapshot

_TODAY = dt.datetime.now(dt.UTC).date()


def _era5_day(day: dt.date) -> dict[str, Any]:
    return {
        "product_type": "reanalysis",
        "variable": "2m_temperature",
        "year": str(day.year),
        "month": MONTHS[day.month - 1],
        "day": f"{day.day:02d}",
        "time": "00:00",
    }


@pytest.mark.parametrize("dataset", [ERA5_SINGLE, ERA5_PRESSURE])
def test_era5_serves_1940_to_five_days_before_today(dataset: str) -> None:
    extra = {"pressure_level": "500_hpa", "variable": "temperature"}
    extra = extra if dataset == ERA5_PRESSURE else {}
    for day in (dt.date(1940, 1, 1), dt.date(2024, 7, 1), _TODAY - dt.timedelta(days=5)):
        parsed = validate_request(dataset, _era5_day(day) | extra)
        assert parsed.times[0] == np.datetime64(f"{day.isoformat()}T00:00", "ns")
    with pytest.raises(RequestError) as too_new:
        validate_request(dataset, _era5_day(_TODAY - dt.timedelta(days=4)) | extra)
    last = (_TODAY - dt.timedelta(days=5)).isoformat()
    message = str(too_new.value)
    assert f"1940-01-01 to {last}" in message  # the range
    assert "five days before today" in message and "5-day delay" in message  # why
    assert f"request dates from 1940-01-01 to {last}" in message  # the fix
    with pytest.raises(RequestError, match=r"'year': 1939 is outside .* 1940-01-01 to"):
        validate_request(dataset, _era5_day(dt.date(1939, 12, 31)) | extra)


def test_era5_end_follows_the_date_it_is_asked_on() -> None:
    request = _era5_day(dt.date(2026, 3, 10))
    validate_request(ERA5_SINGLE, request, today=dt.date(2026, 3, 15))
    with pytest.raises(RequestError, match="2026-03-09"):
        validate_request(ERA5_SINGLE, request, today=dt.date(2026, 3, 14))
    with pytest.raises(RequestError, match=r"'year': 2026 .* request years 1940 to 2025"):
        validate_request(ERA5_SINGLE, _era5_day(dt.date(2026, 1, 1)), today=dt.date(2026, 1, 3))


def test_eac4_ends_on_its_published_date() -> None:
    base = {"variable": "particulate_matter_10um", "time": "00:00"}
    validate_request(CAMS_EAC4, base | {"date": "2022-06-30"})
    for day in ("2022-07-01", (_TODAY - dt.timedelta(days=7)).isoformat()):
        with pytest.raises(RequestError, match=r"2003-01-01 to 2022-06-30 \(EAC4 is published"):
            validate_request(CAMS_EAC4, base | {"date": day})
    with pytest.raises(RequestError, match=r"pressure-level fields .* to 2021-12-31"):
        validate_request(
            CAMS_EAC4,
            {"variable": "ozone", "pressure_level": "925", "time": "00:00", "date": "2022-01-01"},
        )


def test_cams_forecast_archive_runs_from_2015_to_today() -> None:
    base = {
        "variable": "particulate_matter_2.5um",
        "time": "00:00",
        "leadtime_hour": "0",
        "type": "forecast",
    }
    validate_request(CAMS_FORECAST, base | {"date": "2015-01-01"})
    validate_request(CAMS_FORECAST, base | {"date": _TODAY.isoformat()})
    with pytest.raises(RequestError, match=f"2015-01-01 to {_TODAY.isoformat()}"):
        validate_request(
            CAMS_FORECAST, base | {"date": (_TODAY + dt.timedelta(days=1)).isoformat()}
        )

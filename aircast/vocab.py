"""The one variable table of AirCast.

Every other module names variables through this table: our short name (``t2m``, ``pm2p5``,
``go3``), the data-store request name per dataset, the GRIB ``shortName``/``paramId``, the NetCDF
key the current stores write, units, role and whether the quantity is non-negative.

A *channel* is a variable at one level: single-level variables are channels under their own
name (``t2m``); pressure-level variables carry the level in hPa after an underscore
(``go3_925``, ``t_850``).

The parameter numbers and names follow the ECMWF parameter database as shipped with ecCodes
2.50, and the request names follow the Copernicus catalogue forms
(``tests/test_vocab.py`` checks both).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from aircast.errors import VocabularyError

ERA5_SINGLE = "reanalysis-era5-single-levels"
ERA5_PRESSURE = "reanalysis-era5-pressure-levels"
CAMS_EAC4 = "cams-global-reanalysis-eac4"
CAMS_FORECAST = "cams-global-atmospheric-composition-forecasts"


class Role(StrEnum):
    """What a variable is for in the model."""

    WEATHER = "weather"
    POLLUTANT = "pollutant"
    STATIC = "static"


class LevelType(StrEnum):
    """Vertical coordinate of a variable in the data stores."""

    SINGLE = "single"
    PRESSURE = "pressure"


class TimeKind(StrEnum):
    """How a field relates to its time stamp."""

    INSTANT = "instant"
    #: an amount accumulated over the interval that ends at the time stamp
    ACCUMULATED = "accumulated"
    #: does not change with time (land-sea mask, orography)
    CONSTANT = "constant"


@dataclass(frozen=True)
class Variable:
    """One physical variable as the data stores deliver it.

    Parameters
    ----------
    name
        AirCast short name; equal to the GRIB ``cfVarName`` that cfgrib gives the field.
    long_name
        Human-readable name (the CF ``long_name`` of published fields).
    units
        Units as delivered by the data stores and kept in the training store (UDUNITS syntax).
    role
        weather, pollutant or static.
    level_type
        single level or pressure levels.
    param_id
        ECMWF GRIB parameter id.
    grib_short_name
        ecCodes ``shortName`` (``2t`` for t2m; cfgrib renames it to ``name``).
    netcdf_key
        Variable name in the NetCDF files of the current data stores.
    request_names
        Request (form) name for each dataset that offers the variable.
    positive
        Physically non-negative: log-transformed and clamped at zero by the model.
    time_kind
        instant, accumulated or constant.
    standard_name
        CF standard name where one exists.
    """

    name: str
    long_name: str
    units: str
    role: Role
    level_type: LevelType
    param_id: int
    grib_short_name: str
    request_names: Mapping[str, str]
    positive: bool = False
    time_kind: TimeKind = TimeKind.INSTANT
    standard_name: str | None = None
    netcdf_key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.netcdf_key:
            object.__setattr__(self, "netcdf_key", self.name)
        object.__setattr__(self, "request_names", MappingProxyType(dict(self.request_names)))

    @property
    def heavy_tailed(self) -> bool:
        """Positive with a long right tail (pollutants, precipitation): modelled in log space."""
        return self.positive and (
            self.role is Role.POLLUTANT or self.time_kind is TimeKind.ACCUMULATED
        )

    @property
    def datasets(self) -> tuple[str, ...]:
        """Datasets that offer this variable, in table order."""
        return tuple(self.request_names)

    def request_name(self, dataset: str) -> str:
        """The form's name for this variable in ``dataset``."""
        try:
            return self.request_names[dataset]
        except KeyError:
            offered = ", ".join(self.datasets)
            raise VocabularyError(
                f"variable {self.name!r} is not offered by dataset {dataset!r}; "
                f"it is offered by: {offered}"
            ) from None


def _v(
    name: str,
    long_name: str,
    units: str,
    role: Role,
    level_type: LevelType,
    param_id: int,
    grib_short_name: str,
    request_names: Mapping[str, str],
    **kwargs: object,
) -> Variable:
    return Variable(
        name,
        long_name,
        units,
        role,
        level_type,
        param_id,
        grib_short_name,
        request_names,
        **kwargs,  # type: ignore[arg-type]
    )


_W, _P, _S = Role.WEATHER, Role.POLLUTANT, Role.STATIC
_SL, _PL = LevelType.SINGLE, LevelType.PRESSURE


def _all4(request_name: str, *, era5: str = ERA5_SINGLE) -> dict[str, str]:
    """The same request name in ERA5 and both CAMS products."""
    return {era5: request_name, CAMS_EAC4: request_name, CAMS_FORECAST: request_name}


def _cams(request_name: str) -> dict[str, str]:
    return {CAMS_EAC4: request_name, CAMS_FORECAST: request_name}


VARIABLES: Mapping[str, Variable] = MappingProxyType(
    {
        v.name: v
        for v in [
            # ---- ERA5 single levels (and the same fields carried by the CAMS products)
            _v(
                "t2m",
                "2 metre temperature",
                "K",
                _W,
                _SL,
                167,
                "2t",
                _all4("2m_temperature"),
                standard_name="air_temperature",
            ),
            _v(
                "d2m",
                "2 metre dewpoint temperature",
                "K",
                _W,
                _SL,
                168,
                "2d",
                _all4("2m_dewpoint_temperature"),
                standard_name="dew_point_temperature",
            ),
            _v(
                "u10",
                "10 metre U wind component",
                "m s-1",
                _W,
                _SL,
                165,
                "10u",
                _all4("10m_u_component_of_wind"),
                standard_name="eastward_wind",
            ),
            _v(
                "v10",
                "10 metre V wind component",
                "m s-1",
                _W,
                _SL,
                166,
                "10v",
                _all4("10m_v_component_of_wind"),
                standard_name="northward_wind",
            ),
            _v(
                "msl",
                "Mean sea level pressure",
                "Pa",
                _W,
                _SL,
                151,
                "msl",
                _all4("mean_sea_level_pressure"),
                standard_name="air_pressure_at_mean_sea_level",
            ),
            _v(
                "sp",
                "Surface pressure",
                "Pa",
                _W,
                _SL,
                134,
                "sp",
                _all4("surface_pressure"),
                standard_name="surface_air_pressure",
            ),
            _v(
                "tp",
                "Total precipitation",
                "m",
                _W,
                _SL,
                228,
                "tp",
                {ERA5_SINGLE: "total_precipitation", CAMS_FORECAST: "total_precipitation"},
                positive=True,
                time_kind=TimeKind.ACCUMULATED,
                standard_name="lwe_thickness_of_precipitation_amount",
            ),
            _v(
                "blh",
                "Boundary layer height",
                "m",
                _W,
                _SL,
                159,
                "blh",
                {ERA5_SINGLE: "boundary_layer_height", CAMS_FORECAST: "boundary_layer_height"},
                positive=True,
                standard_name="atmosphere_boundary_layer_thickness",
            ),
            _v(
                "tcwv",
                "Total column vertically-integrated water vapour",
                "kg m-2",
                _W,
                _SL,
                137,
                "tcwv",
                _all4("total_column_water_vapour"),
                positive=True,
                standard_name="atmosphere_mass_content_of_water_vapor",
            ),
            # ---- static fields
            _v(
                "lsm",
                "Land-sea mask",
                "1",
                _S,
                _SL,
                172,
                "lsm",
                {
                    ERA5_SINGLE: "land_sea_mask",
                    CAMS_EAC4: "land_sea_mask",
                    CAMS_FORECAST: "land_sea_mask",
                },
                time_kind=TimeKind.CONSTANT,
                standard_name="land_binary_mask",
            ),
            _v(
                "z_sfc",
                "Surface geopotential (orography)",
                "m2 s-2",
                _S,
                _SL,
                129,
                "z",
                {
                    ERA5_SINGLE: "geopotential",
                    CAMS_EAC4: "surface_geopotential",
                    CAMS_FORECAST: "surface_geopotential",
                },
                time_kind=TimeKind.CONSTANT,
                standard_name="surface_geopotential",
                netcdf_key="z",
            ),
            # ---- ERA5 pressure levels
            _v(
                "z",
                "Geopotential",
                "m2 s-2",
                _W,
                _PL,
                129,
                "z",
                {ERA5_PRESSURE: "geopotential", CAMS_FORECAST: "geopotential"},
                standard_name="geopotential",
            ),
            _v(
                "t",
                "Temperature",
                "K",
                _W,
                _PL,
                130,
                "t",
                {
                    ERA5_PRESSURE: "temperature",
                    CAMS_EAC4: "temperature",
                    CAMS_FORECAST: "temperature",
                },
                standard_name="air_temperature",
            ),
            _v(
                "u",
                "U component of wind",
                "m s-1",
                _W,
                _PL,
                131,
                "u",
                {ERA5_PRESSURE: "u_component_of_wind", CAMS_FORECAST: "u_component_of_wind"},
                standard_name="eastward_wind",
            ),
            _v(
                "v",
                "V component of wind",
                "m s-1",
                _W,
                _PL,
                132,
                "v",
                {ERA5_PRESSURE: "v_component_of_wind", CAMS_FORECAST: "v_component_of_wind"},
                standard_name="northward_wind",
            ),
            _v(
                "q",
                "Specific humidity",
                "kg kg-1",
                _W,
                _PL,
                133,
                "q",
                {
                    ERA5_PRESSURE: "specific_humidity",
                    CAMS_EAC4: "specific_humidity",
                    CAMS_FORECAST: "specific_humidity",
                },
                positive=True,
                standard_name="specific_humidity",
            ),
            _v(
                "r",
                "Relative humidity",
                "%",
                _W,
                _PL,
                157,
                "r",
                {ERA5_PRESSURE: "relative_humidity", CAMS_FORECAST: "relative_humidity"},
                positive=True,
                standard_name="relative_humidity",
            ),
            # ---- CAMS particulate matter (surface), delivered in kg m-3
            _v(
                "pm1",
                "Particulate matter d <= 1 um",
                "kg m-3",
                _P,
                _SL,
                210072,
                "pm1",
                _cams("particulate_matter_1um"),
                positive=True,
                standard_name="mass_concentration_of_pm1_ambient_aerosol_particles_in_air",
            ),
            _v(
                "pm2p5",
                "Particulate matter d <= 2.5 um",
                "kg m-3",
                _P,
                _SL,
                210073,
                "pm2p5",
                _cams("particulate_matter_2.5um"),
                positive=True,
                standard_name="mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air",
            ),
            _v(
                "pm10",
                "Particulate matter d <= 10 um",
                "kg m-3",
                _P,
                _SL,
                210074,
                "pm10",
                _cams("particulate_matter_10um"),
                positive=True,
                standard_name="mass_concentration_of_pm10_ambient_aerosol_particles_in_air",
            ),
            # ---- CAMS reactive gases on pressure levels (mass mixing ratios)
            _v(
                "go3",
                "Ozone mass mixing ratio",
                "kg kg-1",
                _P,
                _PL,
                210203,
                "go3",
                _cams("ozone"),
                positive=True,
                standard_name="mass_fraction_of_ozone_in_air",
            ),
            _v(
                "no2",
                "Nitrogen dioxide mass mixing ratio",
                "kg kg-1",
                _P,
                _PL,
                210121,
                "no2",
                _cams("nitrogen_dioxide"),
                positive=True,
                standard_name="mass_fraction_of_nitrogen_dioxide_in_air",
            ),
            _v(
                "no",
                "Nitrogen monoxide mass mixing ratio",
                "kg kg-1",
                _P,
                _PL,
                217027,
                "no",
                _cams("nitrogen_monoxide"),
                positive=True,
                standard_name="mass_fraction_of_nitrogen_monoxide_in_air",
            ),
            _v(
                "so2",
                "Sulphur dioxide mass mixing ratio",
                "kg kg-1",
                _P,
                _PL,
                210122,
                "so2",
                _cams("sulphur_dioxide"),
                positive=True,
                standard_name="mass_fraction_of_sulfur_dioxide_in_air",
            ),
            _v(
                "co",
                "Carbon monoxide mass mixing ratio",
                "kg kg-1",
                _P,
                _PL,
                210123,
                "co",
                _cams("carbon_monoxide"),
                positive=True,
                standard_name="mass_fraction_of_carbon_monoxide_in_air",
            ),
            # ---- CAMS total columns
            _v(
                "tcco",
                "Total column carbon monoxide",
                "kg m-2",
                _P,
                _SL,
                210127,
                "tcco",
                _cams("total_column_carbon_monoxide"),
                positive=True,
                standard_name="atmosphere_mass_content_of_carbon_monoxide",
            ),
            _v(
                "tcno2",
                "Total column nitrogen dioxide",
                "kg m-2",
                _P,
                _SL,
                210125,
                "tcno2",
                _cams("total_column_nitrogen_dioxide"),
                positive=True,
                standard_name="atmosphere_mass_content_of_nitrogen_dioxide",
            ),
            _v(
                "tc_no",
                "Total column nitrogen monoxide",
                "kg m-2",
                _P,
                _SL,
                218027,
                "tc_no",
                _cams("total_column_nitrogen_monoxide"),
                positive=True,
                standard_name="atmosphere_mass_content_of_nitrogen_monoxide",
            ),
            _v(
                "tcso2",
                "Total column sulphur dioxide",
                "kg m-2",
                _P,
                _SL,
                210126,
                "tcso2",
                _cams("total_column_sulphur_dioxide"),
                positive=True,
                standard_name="atmosphere_mass_content_of_sulfur_dioxide",
            ),
            _v(
                "gtco3",
                "Total column ozone",
                "kg m-2",
                _P,
                _SL,
                210206,
                "gtco3",
                _cams("total_column_ozone"),
                positive=True,
                standard_name="atmosphere_mass_content_of_ozone",
            ),
        ]
    }
)

_CHANNEL = re.compile(r"^(?P<name>[a-z][a-z0-9_]*?)(?:_(?P<level>\d+))?$")


@dataclass(frozen=True, order=True)
class Channel:
    """A variable at one level: the unit the training store and the model work in.

    ``str(channel)`` is the channel name (``go3_925``, ``t2m``).
    """

    variable: str
    level: int | None = None

    @property
    def spec(self) -> Variable:
        return VARIABLES[self.variable]

    @property
    def name(self) -> str:
        return self.variable if self.level is None else f"{self.variable}_{self.level}"

    def __str__(self) -> str:
        return self.name


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``did you mean …`` hint, or an empty string when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def variable(name: str) -> Variable:
    """Look up a variable by short name, with a helpful error when it is unknown."""
    try:
        return VARIABLES[name]
    except KeyError:
        raise VocabularyError(
            f"unknown variable {name!r}{did_you_mean(name, VARIABLES)}; "
            f"known variables: {', '.join(VARIABLES)}"
        ) from None


def parse_channel(name: str) -> Channel:
    """Parse a channel name (``t2m``, ``go3_925``) into a :class:`Channel`.

    Raises
    ------
    VocabularyError
        When the variable is unknown, a pressure-level variable lacks its level, or a
        single-level variable is given one.
    """
    if name in VARIABLES:
        spec = VARIABLES[name]
        if spec.level_type is LevelType.PRESSURE:
            raise VocabularyError(
                f"channel {name!r} is a pressure-level variable and needs a level in hPa, "
                f"for example {name}_850"
            )
        return Channel(name)
    match = _CHANNEL.match(name)
    if match is None or match.group("level") is None:
        candidates = list(VARIABLES) + [
            f"{v}_850" for v, s in VARIABLES.items() if s.level_type is LevelType.PRESSURE
        ]
        raise VocabularyError(f"unknown variable {name!r}{did_you_mean(name, candidates)}")
    base, level = match.group("name"), int(match.group("level"))
    spec = variable(base)
    if spec.level_type is LevelType.SINGLE:
        raise VocabularyError(
            f"channel {name!r}: {base!r} is a single-level variable and takes no level; "
            f"write {base!r}"
        )
    return Channel(base, level)


def by_role(role: Role) -> tuple[Variable, ...]:
    """All variables with ``role``, in table order."""
    return tuple(v for v in VARIABLES.values() if v.role is role)


def by_param_id(param_id: int, level_type: LevelType | None = None) -> Variable:
    """The variable with GRIB ``param_id`` (129 is both ``z`` and ``z_sfc``: pass level_type)."""
    found = [
        v
        for v in VARIABLES.values()
        if v.param_id == param_id and (level_type is None or v.level_type is level_type)
    ]
    if len(found) != 1:
        raise VocabularyError(
            f"GRIB paramId {param_id} matches {len(found)} AirCast variables"
            + ("" if found else "; add it to aircast/vocab.py to decode it")
        )
    return found[0]

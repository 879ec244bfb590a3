"""The variable table agrees with ecCodes' parameter database and the stores' forms."""

from __future__ import annotations

import json
from pathlib import Path

import eccodes
import pytest

from aircast.errors import VocabularyError
from aircast.vocab import (
    CAMS_EAC4,
    ERA5_PRESSURE,
    ERA5_SINGLE,
    VARIABLES,
    Channel,
    LevelType,
    Role,
    by_param_id,
    parse_channel,
)


@pytest.mark.parametrize("name", list(VARIABLES))
def test_grib_parameter_matches_eccodes(name: str) -> None:
    spec = VARIABLES[name]
    sample = (
        "regular_ll_pl_grib1" if spec.level_type is LevelType.PRESSURE else "regular_ll_sfc_grib1"
    )
    handle = eccodes.codes_grib_new_from_samples(sample)
    try:
        eccodes.codes_set(handle, "paramId", spec.param_id)
        assert eccodes.codes_get(handle, "shortName") == spec.grib_short_name
        # cfgrib names variables by cfVarName: decoded files carry our short names
        expected = "z" if name == "z_sfc" else name
        assert eccodes.codes_get(handle, "cfVarName") == expected
        # ecCodes writes m**2 s**-2 where UDUNITS (and our table) writes m2 s-2
        units = eccodes.codes_get(handle, "units").replace("**", "").replace("(0 - 1)", "1")
        assert units == spec.units
    finally:
        eccodes.codes_release(handle)


def _form_variables(forms: Path, dataset: str) -> set[str]:
    """Names the form's variable widget offers AND some constraint allows."""
    allowed: set[str] = set()
    for entry in json.loads((forms / dataset / "constraints.json").read_text()):
        allowed |= set(entry.get("variable", []))
    widget = next(
        w
        for w in json.loads((forms / dataset / "form.json").read_text())
        if w["name"] == "variable"
    )
    details = widget["details"]
    offered = set(details.get("values", []))
    for group in details.get("groups", []):
        offered |= set(group.get("values", group.get("labels", {})))
    return offered & allowed


@pytest.mark.parametrize("dataset", [ERA5_SINGLE, ERA5_PRESSURE, CAMS_EAC4])
def test_request_names_are_in_the_real_forms(cds_forms: Path, dataset: str) -> None:
    offered = _form_variables(cds_forms, dataset)
    ours = {
        v.name: v.request_names[dataset] for v in VARIABLES.values() if dataset in v.request_names
    }
    assert ours, dataset
    missing = {k: v for k, v in ours.items() if v not in offered}
    assert not missing, f"request names unknown to the {dataset} form: {missing}"


def test_eac4_level_types_match_the_mapping(cds_forms: Path) -> None:
    """EAC4's mapping says which variables are multi-level: our level types agree."""
    mapping = json.loads((cds_forms / CAMS_EAC4 / "mapping.json").read_text())
    remap = mapping["remap"]["variable"]
    for spec in VARIABLES.values():
        if CAMS_EAC4 not in spec.request_names:
            continue
        archived = remap[spec.request_names[CAMS_EAC4]]
        prefix, _, param = archived.partition("_")
        assert int(param) == spec.param_id, spec.name
        assert (prefix == "multilev") == (spec.level_type is LevelType.PRESSURE), spec.name


def test_roles_and_positivity() -> None:
    assert all(v.positive for v in VARIABLES.values() if v.role is Role.POLLUTANT)
    assert VARIABLES["t2m"].role is Role.WEATHER and not VARIABLES["t2m"].positive
    assert VARIABLES["lsm"].role is Role.STATIC


def test_channels_parse() -> None:
    assert parse_channel("t2m") == Channel("t2m")
    assert parse_channel("go3_925") == Channel("go3", 925)
    assert str(parse_channel("t_850")) == "t_850"
    assert parse_channel("z_sfc") == Channel("z_sfc")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("pm25", "did you mean 'pm2p5'"),
        ("go3", "needs a level"),
        ("t2m_850", "takes no level"),
        ("banana", "unknown variable"),
    ],
)
def test_bad_channels_say_what_to_do(name: str, fragment: str) -> None:
    with pytest.raises(VocabularyError, match=fragment):
        parse_channel(name)


def test_param_id_lookup_disambiguates_geopotential() -> None:
    assert by_param_id(129, LevelType.PRESSURE).name == "z"
    assert by_param_id(129, LevelType.SINGLE).name == "z_sfc"
    with pytest.raises(VocabularyError):
        by_param_id(129)

"""The canonical decode honours the four scanning flags, checked against ecCodes' own reading.

Each case writes one small GRIB message with ecCodes (5×4 points, a region crossing 0°,
distinct values in storage order) with the flags set, and compares the decode with what
ecCodes says each stored value's point is: ``codes_get_values`` beside the ``latitudes`` and
``longitudes`` arrays. ecCodes' regular latitude/longitude geometry ignores
``alternativeRowScanning`` (its iterator assumes all rows run one way), so for those cases the
values are taken after ecCodes' own ``swapScanningAlternativeRows``, which turns every second
stored row back; its coordinates then hold.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import eccodes
import numpy as np
import pytest

from aircast.sources.canonical import DecodeError
from aircast.sources.grib import verify_grib
from aircast.sources.grib_canonical import decode_grib

NI, NJ = 5, 4  # odd and even: a wrong parity of the alternate rows shows
NORTH, SOUTH, WEST, EAST = 10.0, 7.0, -2.0, 2.0
FLAGS = ("iScansNegatively", "jScansPositively", "jPointsAreConsecutive", "alternativeRowScanning")


def write_field(path: Path, edition: int, flags: dict[str, int]) -> None:
    """One message: 1° grid from the corners the flags imply, values 100, 101, … as stored."""
    handle = eccodes.codes_grib_new_from_samples(f"regular_ll_sfc_grib{edition}")
    try:
        eccodes.codes_set_long(handle, "Ni", NI)
        eccodes.codes_set_long(handle, "Nj", NJ)
        for key, value in flags.items():
            if edition == 2 or key != "alternativeRowScanning":
                eccodes.codes_set_long(handle, key, value)
        lat1, lat2 = (SOUTH, NORTH) if flags["jScansPositively"] else (NORTH, SOUTH)
        lon1, lon2 = (EAST, WEST) if flags["iScansNegatively"] else (WEST, EAST)
        eccodes.codes_set(handle, "latitudeOfFirstGridPointInDegrees", lat1)
        eccodes.codes_set(handle, "latitudeOfLastGridPointInDegrees", lat2)
        eccodes.codes_set(handle, "longitudeOfFirstGridPointInDegrees", lon1)
        eccodes.codes_set(handle, "longitudeOfLastGridPointInDegrees", lon2)
        eccodes.codes_set(handle, "iDirectionIncrementInDegrees", 1.0)
        eccodes.codes_set(handle, "jDirectionIncrementInDegrees", 1.0)
        eccodes.codes_set_long(handle, "bitsPerValue", 24)
        eccodes.codes_set_values(handle, 100.0 + np.arange(NI * NJ, dtype=np.float64))
        path.write_bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


def eccodes_points(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latitudes, longitudes, values) of every stored point, as ecCodes reads them."""
    with path.open("rb") as f:
        handle = eccodes.codes_grib_new_from_file(f)
    try:
        if eccodes.codes_get_long(handle, "alternativeRowScanning"):
            eccodes.codes_set_long(handle, "swapScanningAlternativeRows", 1)
        return (
            np.asarray(eccodes.codes_get_array(handle, "latitudes"), dtype=np.float64),
            np.asarray(eccodes.codes_get_array(handle, "longitudes"), dtype=np.float64),
            np.asarray(eccodes.codes_get_values(handle), dtype=np.float64),
        )
    finally:
        eccodes.codes_release(handle)


CASES = [
    (edition, dict(zip(FLAGS, bits, strict=True)))
    for edition in (1, 2)
    for bits in itertools.product((0, 1), repeat=4)
    if edition == 2 or not bits[3]  # GRIB1 has no alternative row scanning
]


@pytest.mark.parametrize(
    ("edition", "flags"),
    CASES,
    ids=[f"grib{e}-" + "".join(str(v) for v in f.values()) for e, f in CASES],
)
def test_decode_puts_each_value_where_eccodes_says(
    tmp_path: Path, edition: int, flags: dict[str, int]
) -> None:
    path = tmp_path / "field.grib"
    write_field(path, edition, flags)
    if flags["jPointsAreConsecutive"] and flags["alternativeRowScanning"]:
        verify_grib(path)  # a well-formed file: only its layout is refused
        with pytest.raises(DecodeError, match="refuses to guess"):
            decode_grib(path)
        return
    ds = decode_grib(path)
    field = next(iter(ds.data_vars.values())).values.reshape(NJ, NI)
    lat, lon = ds["latitude"].values, ds["longitude"].values
    np.testing.assert_allclose(lat, np.arange(NORTH, SOUTH - 0.5, -1.0))
    np.testing.assert_allclose(lon, np.arange(WEST, EAST + 0.5, 1.0))

    lats, lons, values = eccodes_points(path)
    assert values.size == NI * NJ
    rows = np.searchsorted(-lat, -np.round(lats, 6))
    cols = np.searchsorted(lon, np.round((lons + 180.0) % 360.0 - 180.0, 6))
    assert np.array_equal(lat[rows], np.round(lats, 6))  # every point found on the grid
    # every point once: the decode is a permutation of the stored values
    assert np.unique(rows * NI + cols).size == NI * NJ
    np.testing.assert_allclose(field[rows, cols], values, rtol=0, atol=1e-4)


def set_scanning_bits(path: Path, bits: int) -> None:
    """Set ``bits`` in the scanning mode octet (ecCodes will not set these flags itself)."""
    with path.open("rb") as f:
        handle = eccodes.codes_grib_new_from_file(f)
    try:
        octet = int(eccodes.codes_get_offset(handle, "scanningMode"))
    finally:
        eccodes.codes_release(handle)
    data = bytearray(path.read_bytes())
    data[octet] |= bits
    path.write_bytes(bytes(data))


def test_row_offsets_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "offset.grib"
    write_field(path, 2, dict.fromkeys(FLAGS, 0))
    set_scanning_bits(path, 0b00001000)  # bit 5: odd rows offset by half a step
    verify_grib(path)  # a well-formed file: only its layout is refused
    with pytest.raises(DecodeError, match=r"sets bit\(s\) 5 of GRIB2 flag table 3.4"):
        decode_grib(path)


def test_reserved_grib1_bits_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "reserved.grib"
    write_field(path, 1, dict.fromkeys(FLAGS, 0))
    set_scanning_bits(path, 0b00010000)  # bit 4, reserved in GRIB1
    verify_grib(path)
    with pytest.raises(DecodeError, match=r"sets bit\(s\) 4 of GRIB1 code table 8"):
        decode_grib(path)

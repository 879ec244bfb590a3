"""Physical constants and unit conversions of the toy atmosphere (SI units unless noted)."""

from __future__ import annotations

import math
from typing import Final

G: Final = 9.80665  # m s-2
RD: Final = 287.05  # J kg-1 K-1
OMEGA: Final = 7.2921e-5  # s-1
M_PER_DEG: Final = 111195.0  # metres per degree of latitude
RAD: Final = math.pi / 180.0
LAPSE: Final = 0.0065  # K m-1
YEAR_DAYS: Final = 365.2422
M_AIR: Final = 28.97  # g mol-1
KBOLTZ: Final = 1.380649e-23
DU: Final = 2.1415e-5  # kg m-2 of ozone per Dobson unit

# gases: mass mixing ratio per ppb by volume
PPB_O3: Final = 48.0 / M_AIR * 1e-9  # kg kg-1 per ppb
PPB_NO2: Final = 46.0 / M_AIR * 1e-9
PPB_NO: Final = 30.0 / M_AIR * 1e-9
PPB_CO: Final = 28.0 / M_AIR * 1e-9
PPB_SO2: Final = 64.0 / M_AIR * 1e-9

"""A county's site list as the fleet imports it (``fleet/sites/csv_import.py``): one row per grid.

:func:`county_sheet` describes one county of ``towns * villages_per_town`` villages, each with
``grids_per_village`` grids and coordinates, every id prefixed so that each call with another ``county``
describes sites that do not exist yet (an import that creates all of them, every run alike).
"""

from typing import Final

HEADER: Final = "county_id,county_name,town_id,town_name,village_id,village_name,latitude,longitude,grid_id,grid_name"


def county_sheet(county: str, *, towns: int, villages_per_town: int, grids_per_village: int) -> str:
    """The CSV text (with its header) of county ``county``; ids are ``{county}-tNN``, ``{county}-vNNNN``."""
    rows = [HEADER]
    for town in range(towns):
        town_id = f"{county}-t{town:02d}"
        for number in range(villages_per_town):
            index = town * villages_per_town + number
            village = f"{county}-v{index:04d}"
            latitude, longitude = 24.0 + index / 1000, 117.0 + index / 1000
            names = f"{county},{county} County,{town_id},Town {town},{village},Village {index}"
            rows += [
                f"{names},{latitude:.4f},{longitude:.4f},g{grid:02d},Grid {grid}" for grid in range(grids_per_village)
            ]
    return "\n".join(rows) + "\n"

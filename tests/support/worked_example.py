"""The issue's worked example as Loop-shaped CSV rows and the report it must give.

Shared by the task tests and the API tests (the ``loaded`` fixture in tests/conftest.py),
which check the same hand-computed figures through different entry points.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pymongo.database import Database

from loop.ingest import load_sources
from tests.support.csv_files import write_dataset

HEADER = (
    "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,downtime_last_hour,downtime_last_day,downtime_last_week"
)

# The worked example: Chicago store open Monday 09:00-12:00 with polls at
# 10:14 (active) and 11:15 (inactive) local on Monday 2024-10-07 (CDT = UTC-5).
# Midpoint 10:44:30 -> 1 h 44 m 30 s up (1.74 h), 1 h 15 m 30 s down (1.26 h).
# "old" polled only before the week (zeros row); "later" only after now (no row).
EXAMPLE_POLLS = [
    "mon,active,2024-10-07 15:14:00 UTC",
    "mon,inactive,2024-10-07 16:15:00 UTC",
    "old,active,2024-09-20 12:00:00 UTC",
    "later,active,2024-10-08 12:00:00 UTC",
]
EXAMPLE_HOURS = ["mon,0,09:00:00,12:00:00"]
EXAMPLE_ZONES = ["mon,America/Chicago"]
EXAMPLE_NOW = pd.Timestamp("2024-10-07 18:00:00", tz="UTC")  # 13:00 local: last hour is closed
EXAMPLE_CSV = f"{HEADER}\nmon,0.00,1.74,1.74,0.00,1.26,1.26\nold,0.00,0.00,0.00,0.00,0.00,0.00\n"
NEWEST = "2024-10-08T12:00:00+00:00"  # the newest poll in EXAMPLE_POLLS, read off by eye


def load_example(db: Database, folder: Path) -> None:
    """Write the example's three CSVs under ``folder`` and load them, as ``load_data`` would."""
    load_sources(write_dataset(folder, EXAMPLE_POLLS, EXAMPLE_HOURS, EXAMPLE_ZONES), db)

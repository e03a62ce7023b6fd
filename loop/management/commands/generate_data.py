"""`python manage.py generate_data OUT_DIR --stores N ...`: a thin wrapper of loop.datagen."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from loop.datagen import DEFAULT_END, DEFAULT_POLLS_PER_STORE_PER_DAY, LOOP_2025_STORES, generate_dataset


class Command(BaseCommand):
    help = (
        "Write a seeded, Loop-shaped data set (store_status.csv, menu_hours.csv, timezones.csv) "
        "into OUT_DIR. --scale multiplies --stores (default: the 3,678 stores of the 2025 export)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--stores", type=int, default=LOOP_2025_STORES)
        parser.add_argument("--scale", type=float, default=1.0, help="multiplies --stores")
        parser.add_argument("--days", type=int, default=60)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--end", default=str(DEFAULT_END), help="newest poll (ISO-8601, UTC)")
        parser.add_argument("--polls-per-day", type=float, default=DEFAULT_POLLS_PER_STORE_PER_DAY)
        parser.add_argument(
            "--real-dir",
            type=Path,
            default=None,
            help="folder with a real menu_hours.csv and timezones.csv to take hours and zones from",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stores = round(options["stores"] * options["scale"])
        if stores < 1 or options["days"] < 1:
            raise CommandError("--stores x --scale and --days must be at least 1")
        real_dir: Path | None = options["real_dir"]
        if real_dir is not None and not real_dir.is_dir():
            raise CommandError(f"--real-dir {real_dir} is not a folder")
        try:
            end = pd.Timestamp(options["end"])
        except ValueError as exc:
            raise CommandError(f"--end: {exc}") from exc
        summary = generate_dataset(
            options["out_dir"],
            stores=stores,
            days=options["days"],
            seed=options["seed"],
            end=end,
            real_dir=real_dir,
            polls_per_store_per_day=options["polls_per_day"],
        )
        self.stdout.write(f"{summary.out_dir}: {summary.describe()}")

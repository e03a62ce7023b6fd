"""``show_polls STORE_ID [--day YYYY-MM-DD | --from T --to T]``: print one store's stored polls (for ops)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

import pandas as pd
from django.core.management.base import CommandError

from loop import storage
from loop.management.mongo_command import MongoCommand
from loop.rules import REPORT_WEEK
from loop.timeutil import NOW_HELP, parse_now


class Command(MongoCommand):
    help = "Print one store's polls as CSV (store_id,status,timestamp_utc), oldest first."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("store_id")
        parser.add_argument("--day", help="a UTC day, YYYY-MM-DD")
        parser.add_argument("--from", dest="start", help=f"start instant ({NOW_HELP}); default: a week before --to")
        parser.add_argument("--to", dest="end", help="end instant; default: the newest stored poll")

    def handle(self, *args: Any, **options: Any) -> None:
        end: pd.Timestamp | None
        try:
            if options["day"]:
                start = parse_now(options["day"])
                end = start + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
            else:
                newest = storage.newest_poll_time(storage.get_db())
                end = parse_now(options["end"]) if options["end"] else newest
                if end is None:
                    raise CommandError("no polls are stored")
                start = parse_now(options["start"]) if options["start"] else end - REPORT_WEEK
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        polls = storage.read_store_polls(storage.get_db(), options["store_id"], start, end)
        self.stdout.write("store_id,status,timestamp_utc")
        for status, stamp in zip(polls["status"].astype(str), polls["timestamp_utc"], strict=True):
            self.stdout.write(f"{options['store_id']},{status},{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')} UTC")

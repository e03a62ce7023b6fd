"""``load_data [PATH]``: load the Loop CSVs (folder or .zip, default data/) into MongoDB.

Exit codes: 0 loaded (bad rows skipped and reported), 1 ``--strict`` with bad
rows (nothing written), 2 an unusable file (missing, empty, missing column).
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from loop.ingest import StrictModeError, load_sources
from loop.management.mongo_command import MongoCommand
from loop.services import history
from loop.services.alerts import evaluate_alerts, evaluation_line
from loop.sources.problems import InputFileError
from loop.sources.rows import DEFAULT_CHUNK_ROWS
from loop.storage.legacy import LegacyLayoutError


class Command(MongoCommand):
    help = "Load store_status, menu_hours and timezones CSVs into MongoDB (idempotent)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            default=str(settings.BASE_DIR / "data"),
            help="folder or Loop .zip with the three CSVs (default: data/)",
        )
        parser.add_argument(
            "--strict", action="store_true", help="any rejected row is an error (exit 1) and nothing is written"
        )
        parser.add_argument(
            "--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="status rows read per chunk (bounds memory)"
        )
        parser.add_argument("--progress", action="store_true", help="print a line per chunk")

    def handle(self, *args: Any, **options: Any) -> None:
        progress = self.stdout.write if options["progress"] else None
        try:
            stats = load_sources(
                options["path"], strict=options["strict"], chunk_rows=options["chunk_rows"], progress=progress
            )
        except (InputFileError, LegacyLayoutError) as exc:
            raise CommandError(str(exc), returncode=2) from exc
        except StrictModeError as exc:
            for name, problems in exc.problems.items():
                if problems.total:
                    self.stderr.write(f"rejected rows in {name}:")
                    for line in problems.summary_lines():
                        self.stderr.write(f"  {line}")
            raise CommandError(str(exc), returncode=1) from exc
        for line in stats.summary_lines():
            self.stdout.write(line)
        self.stdout.write(evaluation_line(evaluate_alerts()))
        built = history.build_after_load(tables_changed=stats.tables_changed, polls_changed_us=stats.polls_changed_us)
        if built is not None:
            self.stdout.write(history.build_line(built))

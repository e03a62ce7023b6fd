"""``generate_report``: compute the report synchronously, from CSV files or MongoDB.

With ``--csv-dir`` it needs no database, broker or network; without it, it
reads MongoDB through ``loop.utils.generate_report`` (no Celery involved).
"""

from __future__ import annotations

import gc
import sys
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

import pandas as pd
from django.core.management.base import CommandError

from loop.management.mongo_command import MongoCommand
from loop.offline import DEFAULT_MAX_MEMORY_MB, OfflineTotals, PreparedReport, prepare_offline_report
from loop.report_engine import report_to_csv
from loop.rules import DEFAULT_MAX_GAP_MINUTES, GAP_RANGE_TEXT, gap_problem
from loop.sources.problems import InputFileError
from loop.timeutil import NOW_HELP, parse_now


class Command(MongoCommand):
    help = "Compute the uptime/downtime report and write it as CSV."
    # Django's system checks import the URL conf (DRF, drf-spectacular, the views): about 0.6 s of
    # start-up that a report needs nothing of. `manage.py check` and the server commands still run them.
    requires_system_checks = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--csv-dir",
            help="folder or .zip with the three Loop CSVs and an optional special_hours.csv (omit to read MongoDB)",
        )
        parser.add_argument("--now", help=f"instant to report at, {NOW_HELP} (default: newest poll)")
        parser.add_argument("--output", required=True, help="report CSV path, or - for stdout")
        parser.add_argument(
            "--format",
            choices=["loop", "extended"],
            default="loop",
            help="loop: the 7 Loop columns (default); extended: 8 more (docs/report_rules.md)",
        )
        parser.add_argument(
            "--max-gap-minutes",
            type=int,
            default=DEFAULT_MAX_GAP_MINUTES,
            help=f"extended: farther than this from the nearest counted poll is unobserved "
            f"({GAP_RANGE_TEXT}, default {DEFAULT_MAX_GAP_MINUTES})",
        )
        parser.add_argument("--strict", action="store_true", help="fail (exit 1) if any input row is skipped")
        parser.add_argument(
            "--max-memory-mb",
            type=int,
            default=DEFAULT_MAX_MEMORY_MB,
            help="--csv-dir: memory budget; a status file whose one-pass read would need more is computed in "
            f"store chunks through temporary spill files, the same bytes out (default {DEFAULT_MAX_MEMORY_MB})",
        )
        parser.add_argument(
            "--chunk-stores",
            type=int,
            default=None,
            help="--csv-dir: always compute in store chunks of at most this many stores",
        )
        # Django adds --skip-checks only to commands that run checks; kept so command lines that pass it still work.
        parser.add_argument("--skip-checks", action="store_true", help="Skip system checks.")

    def uses_mongodb(self, options: dict[str, Any]) -> bool:
        return not options.get("csv_dir")

    def run_from_argv(self, argv: list[str]) -> None:
        super().run_from_argv(argv)
        # Run from the command line, the process ends next. Python's shutdown then collects the
        # reference cycles of every pandas, pyarrow and Django module (classes, functions) one by
        # one: about 0.2 s. Frozen, they are left to the OS. Standard streams are still flushed and
        # atexit handlers still run; call_command() (tests, other code) does not come through here.
        gc.freeze()

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        now = _parse_now(options["now"])
        extended = options["format"] == "extended"
        gap = options["max_gap_minutes"]
        problem = gap_problem(gap)
        if problem is not None:
            raise CommandError(f"--max-gap-minutes {gap}: {problem}", returncode=2)
        if options["csv_dir"]:
            totals = self._report_from_csv(options, now=now, extended=extended, gap=gap)
        else:
            from loop.storage.legacy import LegacyLayoutError  # needs Django settings and MongoDB
            from loop.utils import generate_report

            try:
                result = generate_report(now=now, extended=extended, max_gap_minutes=gap)
            except LegacyLayoutError as error:
                raise CommandError(str(error), returncode=2) from error
            for warning in result.warnings:
                self.stderr.write(f"warning: {warning}")
            _write_output(options["output"], report_to_csv(result.report))
            totals = OfflineTotals(result.stores, result.polls_counted, result.now, list(result.warnings))
        self.stderr.write(
            f"report: {totals.stores} stores, {totals.polls_counted} polls counted, "
            f"now={totals.now.isoformat() if totals.now is not None else '-'}, "
            f"{totals.skipped} rows skipped, {len(totals.warnings)} warnings, "
            f"{time.perf_counter() - started:.2f}s"
        )

    def _report_from_csv(
        self, options: dict[str, Any], *, now: pd.Timestamp | None, extended: bool, gap: int
    ) -> OfflineTotals:
        chunk_stores = options["chunk_stores"]
        if chunk_stores is not None and chunk_stores < 1:
            raise CommandError(f"--chunk-stores {chunk_stores}: must be at least 1", returncode=2)
        if options["max_memory_mb"] < 1:
            raise CommandError(f"--max-memory-mb {options['max_memory_mb']}: must be at least 1", returncode=2)
        try:
            with prepare_offline_report(
                Path(options["csv_dir"]),
                now=now,
                extended=extended,
                max_gap_minutes=gap,
                chunk_stores=chunk_stores,
                max_memory_mb=options["max_memory_mb"],
            ) as prepared:
                problems = prepared.problems
                for line in problems.summary_lines():
                    self.stderr.write(f"warning: {line}")
                if options["strict"] and problems.total:
                    raise CommandError(f"--strict: {problems.total} input row(s) were skipped", returncode=1)
                totals = _write_streamed(options["output"], prepared)
                if prepared.plan is not None:
                    plan = prepared.plan
                    self.stderr.write(
                        f"store chunks: {len(plan.ranges)} range(s) of at most {max(plan.ranges, default=0)} stores "
                        f"({plan.stores} stores, {plan.polls_in_week} polls of the week, "
                        f"{plan.spilled_polls} valid polls spilled; "
                        + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in plan.seconds.items())
                        + ")"
                    )
        except InputFileError as error:
            raise CommandError(str(error), returncode=2) from error
        for warning in totals.warnings:
            self.stderr.write(f"warning: {warning}")
        totals.skipped = problems.total
        return totals


def _parse_now(text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        return parse_now(text)
    except ValueError as error:
        raise CommandError(f"--now {text!r}: {error}", returncode=2) from error


def _write_streamed(target: str, prepared: PreparedReport) -> OfflineTotals:
    """The report written as the engine produces it (one text, or one per store chunk)."""
    if target == "-":
        return prepared.write(sys.stdout.write)
    # Write beside the target and rename, so a failed run never leaves half a report.
    path = Path(target)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            totals = prepared.write(handle.write)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return totals


def _write_output(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        return
    # Write beside the target and rename, so a failed run never leaves half a report.
    path = Path(target)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)

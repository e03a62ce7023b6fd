"""``serve_demo``: load data/ and serve the API on :8000 in one process (`make run`).

Meant for ``MONGO_URL=mongomock:// CELERY_BROKER_URL=memory://``: the store is
in memory and reports run on the in-process worker, so nothing else needs to
be installed or running. With real servers configured it loads into them and
serves the API the same way (reports then need a running worker).
"""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from loop import storage
from loop.backends import uses_embedded_broker, uses_mongomock
from loop.embedded_worker import start_schedule_ticker
from loop.ingest import load_sources
from loop.management.mongo_command import MongoCommand
from loop.services import history
from loop.services.alerts import evaluate_alerts, evaluation_line
from loop.sources.problems import InputFileError

# data/timezones.csv carries two bad rows on purpose (lines 4 and 15), so the first run shows how a
# bad row is reported; their stores fall back to America/Chicago, as the report rules say.
SAMPLE_DATA_REJECTS_NOTE = (
    "the rejected rows are on purpose: data/timezones.csv carries two bad zones ('Mars/Olympus_Mons' and the misspelt "
    "'America/Chicgo') to show how bad rows are reported; those stores use America/Chicago"
)


def is_sample_data(path: str) -> bool:
    return Path(path).resolve() == (Path(settings.BASE_DIR) / "data").resolve()


class Command(MongoCommand):
    help = "Load the sample data and serve the API with an in-process worker (the demo behind `make run`)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--data", default=str(settings.BASE_DIR / "data"), help="folder or Loop .zip to load first (default: data/)"
        )
        parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")

    def handle(self, *args: Any, **options: Any) -> None:
        # Django's own tables (users, keys, sessions; SQLite unless DATABASE_URL), before anything
        # can ask for them: quiet, and a no-op when they are up to date.
        call_command("migrate", verbosity=0, interactive=False)
        embedded_store = uses_mongomock()
        self.stdout.write(
            f"store: {'in-memory (mongomock)' if embedded_store else settings.MONGO_URL} "
            f"db={settings.MONGO_DB}; worker: "
            f"{'in-process' if uses_embedded_broker() else 'celery via ' + settings.CELERY_BROKER_URL}"
        )
        self.stdout.write(f"loading {options['data']} ...")
        try:
            stats = load_sources(options["data"])
        except InputFileError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        for line in stats.summary_lines():
            self.stdout.write(f"  {line}")
        self.stdout.write(f"  {evaluation_line(evaluate_alerts())}")
        built = history.build_after_load(tables_changed=stats.tables_changed, polls_changed_us=stats.polls_changed_us)
        if built is not None:
            self.stdout.write(f"  {history.build_line(built)}")
        if stats.rejected and is_sample_data(options["data"]):
            self.stdout.write(f"  {SAMPLE_DATA_REJECTS_NOTE}")

        base = f"http://localhost:{options['port']}"
        self.stdout.write(
            f"\nDashboard (open in a browser): {base}/\n"
            "\nTry it:\n"
            f"  curl -s -X POST {base}/trigger_report/\n"
            f"  curl -s {base}/get_report/<report_id>/        # Running, then Complete with csv_data\n"
            f"  curl -s -OJ {base}/get_report/<report_id>/csv/  # the CSV as a download\n"
            f"  curl -s -X POST -H 'Content-Type: application/json' -d '{{\"now\": \"{stats_now()}\"}}' "
            f"{base}/trigger_report/\n"
            f"  curl -s {base}/health/\n"
            f"  API docs: {base}/api/docs/   schema: {base}/api/schema/\n"
            "More examples: README.md and docs/api.md.\n"
        )
        if uses_embedded_broker():
            start_schedule_ticker()  # no beat here: report schedules are ticked in this process
        # runserver is threaded; the reloader would start a second process
        # with an empty in-memory store, so it is off.
        call_command("runserver", f"{options['host']}:{options['port']}", use_reloader=False)


def stats_now() -> str:
    newest = storage.newest_poll_time(storage.get_db())
    return newest.isoformat().replace("+00:00", "Z") if newest is not None else "2024-10-14T12:00:00Z"

"""``create_key USERNAME --name NAME --scope read|ingest|operate|admin [--expires-at ISO]``: print a new key once.

Only the key goes to stdout (``KEY=$(manage.py create_key ...)``); what it is goes to stderr. The key is
not stored: lose it and create another (and revoke the lost one).
"""

from __future__ import annotations

import datetime as dt
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from loop import errors
from loop.accounts.capabilities import ALL, Principal, Scope
from loop.accounts.selectors import key_summary
from loop.accounts.services import create_key
from loop.audit.actions import Action
from loop.audit.services import record_command_audit


class Command(BaseCommand):
    help = "Create an API key for a user and print it (once)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username", help="the key's owner (create_account makes one)")
        parser.add_argument("--name", required=True, help="what the key is for, e.g. 'poller eu-1'")
        parser.add_argument("--scope", required=True, choices=[scope.value for scope in Scope])
        parser.add_argument("--expires-at", help="when it stops working, ISO 8601 (no zone: UTC); default never")

    def handle(self, *args: Any, **options: Any) -> None:
        expires_at = None
        if options["expires_at"]:
            expires_at = parse_datetime(options["expires_at"])
            if expires_at is None:
                raise CommandError(f"--expires-at: not an ISO 8601 instant: {options['expires_at']!r}")
            if timezone.is_naive(expires_at):
                expires_at = expires_at.replace(tzinfo=dt.UTC)
        # Whoever runs manage.py holds the server's secrets already: the command acts with every capability,
        # but the scope is still held to the owner's role.
        caller = Principal(kind="command", name="command:create_key", capabilities=ALL)
        try:
            created = create_key(
                caller=caller,
                name=options["name"],
                scope=Scope(options["scope"]),
                expires_at=expires_at,
                owner_username=options["username"],
                now=timezone.now(),
            )
        except errors.ServiceError as exc:
            field = f"{exc.field}: " if isinstance(exc, errors.InvalidInput) else ""
            raise CommandError(f"{field}{exc}") from None
        row = created.api_key
        record_command_audit(action=Action.KEY_CREATE, target=row.id, detail=key_summary(api_key=row))
        expiry = row.expires_at.isoformat() if row.expires_at else "never"
        self.stderr.write(
            f"Key {row.prefix} ({row.scope}) for {options['username']}, expires {expiry}. "
            "It is shown once; keep it secret."
        )
        self.stdout.write(created.key)

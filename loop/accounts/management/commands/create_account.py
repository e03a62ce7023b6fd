"""``create_account USERNAME --role viewer|operator|admin [--password-from-env VAR | --no-password]``.

Creates the account or updates it (its role, and its password when one is given). An account without a
password (a service account, e.g. for a poller) signs in with nothing: it uses API keys
(``create_key``). ``createsuperuser`` works too: a superuser is an admin.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from loop import errors
from loop.accounts.capabilities import Role
from loop.accounts.services import save_account


class Command(BaseCommand):
    help = "Create or update an account with one role (viewer, operator, admin)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[role.value for role in Role])
        password = parser.add_mutually_exclusive_group()
        password.add_argument(
            "--password-from-env",
            metavar="VAR",
            help="read the password from this environment variable (never from the command line: shell history)",
        )
        password.add_argument(
            "--no-password", action="store_true", help="no password: a service account that only uses API keys"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = None
        if options["password_from_env"]:
            variable = options["password_from_env"]
            password = os.environ.get(variable, "")
            if not password:
                raise CommandError(f"The environment variable {variable} is unset or empty.")
        try:
            user, created = save_account(
                username=options["username"],
                role=Role(options["role"]),
                password=password,
                clear_password=options["no_password"],
            )
        except errors.InvalidInput as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from None
        login = "password set" if user.has_usable_password() else "no password (API keys only)"
        self.stdout.write(f"{'Created' if created else 'Updated'} {user.get_username()}: {options['role']}, {login}.")

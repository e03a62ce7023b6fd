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
from loop.accounts.selectors import account_summary, find_user
from loop.accounts.services import save_account
from loop.audit.actions import Action
from loop.audit.services import record_command_audit


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
        existing = find_user(username=options["username"])
        before = account_summary(user=existing) if existing is not None else None
        try:
            user, created = save_account(
                username=options["username"],
                role=Role(options["role"]),
                password=password,
                clear_password=options["no_password"],
            )
        except errors.InvalidInput as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from None
        _record(user=user, before=before, password=password is not None, cleared=options["no_password"])
        login = "password set" if user.has_usable_password() else "no password (API keys only)"
        self.stdout.write(f"{'Created' if created else 'Updated'} {user.get_username()}: {options['role']}, {login}.")


def _record(*, user: Any, before: dict[str, Any] | None, password: bool, cleared: bool) -> None:
    """The audit entries of the command: the account made or changed, and a password change (never the password)."""
    after = account_summary(user=user)
    username = user.get_username()
    if before is None:
        state = "set" if user.has_usable_password() else "unusable"
        record_command_audit(action=Action.USER_CREATE, target=username, detail={**after, "password": state})
        return
    record_command_audit(action=Action.USER_UPDATE, target=username, detail={"before": before, "after": after})
    if password or cleared:
        state = "set" if password else "unusable"
        record_command_audit(action=Action.USER_PASSWORD, target=username, detail={"password": state})

"""``AuditEntry``: one row per successful write, in Django's own database (SQLite, or PostgreSQL by
DATABASE_URL), not in MongoDB: the log is read by actor, action and time, which a relational index
answers directly, while the MongoDB-wire server used here (FerretDB) scans a whole collection per filter.

Append-only: an entry is inserted once and never changed or removed through the ORM (``save`` of an
existing row, ``delete`` and the queryset's ``update``/``delete`` raise). Retention, if ever wanted, is an
operator's SQL (docs/audit.md).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models

ACTOR_MAX_LENGTH = 150  # Django's username length
ACTION_MAX_LENGTH = 64
TARGET_MAX_LENGTH = 256
ADDRESS_MAX_LENGTH = 64  # an IPv6 text is at most 45
REQUEST_ID_MAX_LENGTH = 64  # loop.request_ids.MAX_LENGTH


class AppendOnlyError(Exception):
    """Something tried to change or remove an audit entry."""


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit entries cannot be changed")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("audit entries cannot be deleted")


class AuditEntry(models.Model):
    at = models.DateTimeField(db_index=True, help_text="Server time of the write (UTC).")
    actor = models.CharField(
        max_length=ACTOR_MAX_LENGTH,
        help_text="A username, key:<prefix>, token:API_TOKEN, token:API_READ_TOKEN or anonymous.",
    )
    actor_kind = models.CharField(max_length=16, help_text="user, key, token or anonymous.")
    action = models.CharField(max_length=ACTION_MAX_LENGTH, help_text="e.g. hours.update.")
    target = models.CharField(max_length=TARGET_MAX_LENGTH, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    address = models.CharField(max_length=ADDRESS_MAX_LENGTH, blank=True, default="")
    request_id = models.CharField(max_length=REQUEST_ID_MAX_LENGTH, blank=True, default="")

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        # Newest first by id (insertion order): a page's cursor is the last id seen.
        ordering = ["-id"]
        # The filters of GET /audit/ (actor, action, exact or a prefix), each read newest first.
        indexes = [
            models.Index(fields=["actor", "-id"], name="audit_actor_id"),
            models.Index(fields=["action", "-id"], name="audit_action_id"),
        ]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}".rstrip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None or not self._state.adding:
            raise AppendOnlyError("audit entries cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit entries cannot be deleted")

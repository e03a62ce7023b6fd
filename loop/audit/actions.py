"""The audit log's action names (dotted: ``<what>.<verb>``): the one list, also in docs/audit.md.

``GET /audit/?action=hours.`` (ending in a dot) selects every action of that family.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    POLLS_INGEST = "polls.ingest"
    HOURS_UPDATE = "hours.update"
    SPECIAL_HOURS_UPDATE = "special_hours.update"
    ZONE_UPDATE = "zone.update"
    PROFILE_UPDATE = "profile.update"
    PROFILE_DELETE = "profile.delete"
    REPORT_TRIGGER = "report.trigger"
    REPORT_DELETE = "report.delete"
    IMPORT_CREATE = "import.create"
    IMPORT_DELETE = "import.delete"  # reserved: the API has no DELETE /imports/<id>/ yet
    ALERT_ACK = "alert.ack"
    MAINTENANCE_CREATE = "maintenance.create"
    MAINTENANCE_DELETE = "maintenance.delete"
    CHANNEL_CREATE = "channel.create"
    CHANNEL_UPDATE = "channel.update"
    CHANNEL_DELETE = "channel.delete"
    CHANNEL_TEST = "channel.test"
    DELIVERY_RETRY = "delivery.retry"

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
    SCHEDULE_CREATE = "schedule.create"
    SCHEDULE_UPDATE = "schedule.update"
    SCHEDULE_DELETE = "schedule.delete"
    SCHEDULE_RUN = "schedule.run"  # POST /schedules/<id>/run/ (the beat's runs are not requests: not audited)
    KEY_CREATE = "key.create"  # POST /keys/, manage.py create_key
    KEY_REVOKE = "key.revoke"  # DELETE /keys/<id>/, the admin's revoke action
    KEY_UPDATE = "key.update"  # the admin's key page (name, expiry)
    KEY_DELETE = "key.delete"  # the admin's delete of a key row
    USER_CREATE = "user.create"  # the admin, manage.py create_account
    USER_UPDATE = "user.update"  # the admin (active, staff, superuser, groups...), manage.py create_account
    USER_PASSWORD = "user.password"  # a password set or made unusable; never the password
    USER_DELETE = "user.delete"  # the admin (the user's keys go with it)
    GROUP_CREATE = "group.create"  # the admin's group pages
    GROUP_UPDATE = "group.update"  # name, permissions (the role groups keep their names)
    GROUP_DELETE = "group.delete"  # not the role groups
    SESSION_LOGIN = "session.login"  # a sign-in over HTTP: the dashboard's /accounts/login/, /admin/login/
    SESSION_LOGOUT = "session.logout"
    SESSION_LOGIN_FAILED = "session.login_failed"  # the username tried, never the password
    SESSION_LOCKED_OUT = "session.locked_out"  # django-axes locked a username or an address
    SESSION_UNLOCK = "session.unlock"  # an axes access attempt deleted in the admin

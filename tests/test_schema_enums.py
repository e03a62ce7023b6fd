"""The schema's enum names: the lists in settings match the homes of the rules, and the schema has no warnings."""

from __future__ import annotations

import io

from django.conf import settings
from django.core.management import call_command

from loop.delivery_rules import DeliveryStatus
from loop.rules import POLL_STATUSES
from loop.services.channels import ChannelKind
from loop.storage import ImportPhase, ReportFormat, ReportPhase, ReportStatus


def test_enum_overrides_match_the_rule_homes() -> None:
    overrides = settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]
    assert overrides["ReportStatusEnum"] == [s.value for s in ReportStatus]
    assert overrides["PollStatusEnum"] == list(POLL_STATUSES)
    assert overrides["ReportFormatEnum"] == [f.value for f in ReportFormat]
    assert overrides["HealthStatusEnum"] == ["ok", "unavailable"]
    assert overrides["ReportPhaseEnum"] == [p.value for p in ReportPhase]
    assert overrides["ImportPhaseEnum"] == [p.value for p in ImportPhase]
    assert overrides["DeliveryStatusEnum"] == [s.value for s in DeliveryStatus]
    assert overrides["ChannelKindEnum"] == [k.value for k in ChannelKind]
    assert "worker lost" in overrides["ReportPhaseEnum"] and "worker lost" in overrides["ImportPhaseEnum"]


def test_the_schema_validates_without_warnings() -> None:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=io.StringIO())
    assert "openapi: 3" in out.getvalue()

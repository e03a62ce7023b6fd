"""A store's attributes: weekly hours, holiday hours, zone and directory profile (GET reads, PUT replaces;
DELETE clears the profile)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import (
    JSON_WRITE_ERRORS,
    READ_ERRORS,
    STORE_ID_PARAM,
    WRITE_ERRORS,
    StrictSerializer,
    refuse_chunked,
    store_id_param,
)
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.services import directory, stores
from loop.sources.validate import MAX_PROFILE_TEXT_LENGTH

# --- serializers ------------------------------------------------------------------------------------


class HoursItemSerializer(serializers.Serializer):
    """One weekly interval (schema; the CSV reader's row check validates the values)."""

    dayOfWeek = serializers.IntegerField(min_value=0, max_value=6, help_text="0 = Monday ... 6 = Sunday.")  # noqa: N815
    start_time_local = serializers.CharField(help_text="HH:MM[:SS], the store's local time.")
    end_time_local = serializers.CharField(help_text="HH:MM[:SS]; before the start: the interval runs past midnight.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "dayOfWeek": instance.day_of_week,
            "start_time_local": instance.start_time_local,
            "end_time_local": instance.end_time_local,
        }


class SpecialHoursItemSerializer(serializers.Serializer):
    """One holiday-hours interval (schema; the CSV reader's row check validates the values)."""

    date_local = serializers.CharField(help_text="YYYY-MM-DD, the store's local date the interval starts on.")
    start_time_local = serializers.CharField(
        allow_null=True, help_text="HH:MM[:SS] local; null (with end_time_local null): closed all day."
    )
    end_time_local = serializers.CharField(
        allow_null=True, help_text="HH:MM[:SS]; before the start: the interval runs past midnight."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "date_local": instance.date_local,
            "start_time_local": instance.start_time_local,
            "end_time_local": instance.end_time_local,
        }


class TimezoneRequestSerializer(StrictSerializer):
    timezone_str = serializers.CharField(max_length=64, help_text="An IANA zone name, e.g. America/New_York.")


class TimezoneSerializer(serializers.Serializer):
    store_id = serializers.CharField()
    timezone_str = serializers.CharField()
    is_default = serializers.BooleanField(help_text="True: no zone is stored and the report uses America/Chicago.")


class ProfileRequestSerializer(StrictSerializer):
    """PUT /stores/<id>/profile/ (schema and types; the CSV reader's row check validates the text)."""

    # Lengths and characters are checked after trimming by the row check: not here, so both paths agree.
    name = serializers.CharField(
        allow_blank=True, trim_whitespace=False, help_text=f"Required, 1-{MAX_PROFILE_TEXT_LENGTH} characters."
    )
    brand = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False, help_text="Empty or null: unknown."
    )
    region = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False, help_text="Empty or null: unknown."
    )


class ProfileSerializer(serializers.Serializer):
    """A ``loop.services.directory.StoreProfile``."""

    store_id = serializers.CharField()
    name = serializers.CharField(allow_null=True, help_text="null: the store has no profile.")
    brand = serializers.CharField(allow_null=True)
    region = serializers.CharField(allow_null=True)


# --- views ------------------------------------------------------------------------------------------


def _change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """An audit detail of one object's PUT or DELETE, without the store id (the entry's target)."""
    return {
        "before": {key: value for key, value in before.items() if key != "store_id"},
        "after": {key: value for key, value in after.items() if key != "store_id"},
    }


def replace_rows(
    request: Request,
    store_id: str,
    *,
    read: Callable[..., list[Any]],
    replace: Callable[..., list[Any]],
    rows: type[Serializer],
    shape: str,
    action: Action,
) -> Response:
    """A store attribute's PUT of rows (weekly or holiday hours): a JSON list the service checks and stores;
    audited with the rows before and after, as the API shows them."""
    store_id = store_id_param(store_id)
    refuse_chunked(request)
    if not isinstance(request.data, list):
        raise ValidationError({"body": f"send a JSON list of {shape}"})
    before = rows(read(store_id=store_id), many=True).data
    after = rows(replace(store_id=store_id, items=request.data), many=True).data
    record_audit(request=request, action=action, target=store_id, detail={"before": before, "after": after})
    return Response(after)


class BusinessHoursView(APIView):
    """One store's weekly hours; an empty list means open 24x7 (the report's rule for a store without rows)."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ, "PUT": Capability.OPERATE}

    @extend_schema(
        operation_id="get_business_hours",
        summary="Read a store's weekly hours ([] = open 24x7, also for a store never seen)",
        parameters=[STORE_ID_PARAM],
        responses={200: HoursItemSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        rows = stores.get_business_hours(store_id=store_id_param(store_id))
        return Response(HoursItemSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="set_business_hours",
        summary="Replace a store's weekly hours ([] removes them: open 24x7)",
        parameters=[STORE_ID_PARAM],
        request=HoursItemSerializer(many=True),
        responses={200: HoursItemSerializer(many=True), **JSON_WRITE_ERRORS},
    )
    def put(self, request: Request, store_id: str) -> Response:
        return replace_rows(
            request,
            store_id,
            read=stores.get_business_hours,
            replace=stores.set_business_hours,
            rows=HoursItemSerializer,
            shape="{dayOfWeek, start_time_local, end_time_local}",
            action=Action.HOURS_UPDATE,
        )


class SpecialHoursView(APIView):
    """One store's holiday hours: for a local date listed here, the store's intervals that start on it come
    only from these rows."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ, "PUT": Capability.OPERATE}

    @extend_schema(
        operation_id="get_special_hours",
        summary="Read a store's holiday hours ([] = none, also for a store never seen)",
        parameters=[STORE_ID_PARAM],
        responses={200: SpecialHoursItemSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        rows = stores.get_special_hours(store_id=store_id_param(store_id))
        return Response(SpecialHoursItemSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="set_special_hours",
        summary="Replace a store's holiday hours ([] removes them; both times null = closed all day)",
        parameters=[STORE_ID_PARAM],
        request=SpecialHoursItemSerializer(many=True),
        responses={200: SpecialHoursItemSerializer(many=True), **JSON_WRITE_ERRORS},
    )
    def put(self, request: Request, store_id: str) -> Response:
        return replace_rows(
            request,
            store_id,
            read=stores.get_special_hours,
            replace=stores.set_special_hours,
            rows=SpecialHoursItemSerializer,
            shape="{date_local, start_time_local, end_time_local}",
            action=Action.SPECIAL_HOURS_UPDATE,
        )


class TimezoneView(APIView):
    """One store's time zone; without one the report uses America/Chicago (``is_default``)."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ, "PUT": Capability.OPERATE}

    @extend_schema(
        operation_id="get_timezone",
        summary="Read a store's time zone (the default one when none is stored)",
        parameters=[STORE_ID_PARAM],
        responses={200: TimezoneSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        zone = stores.get_timezone(store_id=store_id_param(store_id))
        return Response(TimezoneSerializer(zone).data)

    @extend_schema(
        operation_id="set_timezone",
        summary="Set a store's time zone (an IANA name)",
        parameters=[STORE_ID_PARAM],
        request=TimezoneRequestSerializer,
        responses={200: TimezoneSerializer, **JSON_WRITE_ERRORS},
    )
    def put(self, request: Request, store_id: str) -> Response:
        store_id = store_id_param(store_id)
        refuse_chunked(request)
        serializer = TimezoneRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        before = TimezoneSerializer(stores.get_timezone(store_id=store_id)).data
        zone = stores.set_timezone(store_id=store_id, timezone_str=serializer.validated_data["timezone_str"])
        after = TimezoneSerializer(zone).data
        record_audit(request=request, action=Action.ZONE_UPDATE, target=store_id, detail=_change(before, after))
        return Response(after)


class ProfileView(APIView):
    """One store's entry of the store directory: name, brand, region (text, trimmed; brand and region optional)."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {
        "GET": Capability.READ,
        "PUT": Capability.OPERATE,
        "DELETE": Capability.OPERATE,
    }

    @extend_schema(
        operation_id="get_store_profile",
        summary="Read a store's name, brand and region (all null when it has no profile, also for a store never seen)",
        parameters=[STORE_ID_PARAM],
        responses={200: ProfileSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        profile = directory.get_profile(store_id=store_id_param(store_id))
        return Response(ProfileSerializer(profile).data)

    @extend_schema(
        operation_id="set_store_profile",
        summary="Set a store's name, brand and region (replaces its profile)",
        parameters=[STORE_ID_PARAM],
        request=ProfileRequestSerializer,
        responses={200: ProfileSerializer, **JSON_WRITE_ERRORS},
    )
    def put(self, request: Request, store_id: str) -> Response:
        store_id = store_id_param(store_id)
        refuse_chunked(request)
        serializer = ProfileRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        before = ProfileSerializer(directory.get_profile(store_id=store_id)).data
        profile = directory.set_profile(
            store_id=store_id, name=params["name"], brand=params.get("brand"), region=params.get("region")
        )
        after = ProfileSerializer(profile).data
        record_audit(request=request, action=Action.PROFILE_UPDATE, target=store_id, detail=_change(before, after))
        return Response(after)

    @extend_schema(
        operation_id="delete_store_profile",
        summary="Remove a store's profile (204 also when it had none)",
        parameters=[STORE_ID_PARAM],
        request=None,
        responses={204: None, **WRITE_ERRORS},
    )
    def delete(self, request: Request, store_id: str) -> Response:
        store_id = store_id_param(store_id)
        before = ProfileSerializer(directory.get_profile(store_id=store_id)).data
        directory.delete_profile(store_id=store_id)
        after = {**before, "name": None, "brand": None, "region": None}
        record_audit(request=request, action=Action.PROFILE_DELETE, target=store_id, detail=_change(before, after))
        return Response(status=204)

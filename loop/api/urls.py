"""API routes. The trailing slash is optional so `curl .../trigger_report` works too."""

from django.urls import re_path

from loop.api import (
    accounts,
    alerts,
    audit,
    channels,
    deliveries,
    imports,
    ingestion,
    maintenance,
    metrics,
    overview,
    reports,
    schedules,
    trends,
)
from loop.api.stores import attributes, catalog, history, timeline

urlpatterns = [
    re_path(r"^trigger_report/?$", reports.TriggerReportView.as_view(), name="trigger-report"),
    re_path(r"^get_report/?$", reports.GetReportQueryView.as_view(), name="get-report-query"),
    re_path(r"^get_report/(?P<report_id>[^/]+)/csv/?$", reports.ReportCsvView.as_view(), name="get-report-csv"),
    re_path(r"^get_report/(?P<report_id>[^/]+)/?$", reports.GetReportView.as_view(), name="get-report"),
    re_path(r"^reports/?$", reports.ReportListView.as_view(), name="reports"),
    re_path(r"^reports/(?P<report_id>[^/]+)/?$", reports.ReportDetailView.as_view(), name="report"),
    re_path(r"^reports/(?P<report_id>[^/]+)/stores/?$", reports.ReportStoresView.as_view(), name="report-stores"),
    re_path(
        r"^reports/(?P<report_id>[^/]+)/download/?$", schedules.ReportDownloadView.as_view(), name="report-download"
    ),
    re_path(r"^schedules/?$", schedules.ScheduleListView.as_view(), name="schedules"),
    re_path(r"^schedules/(?P<schedule_id>[^/]+)/?$", schedules.ScheduleDetailView.as_view(), name="schedule"),
    re_path(r"^schedules/(?P<schedule_id>[^/]+)/run/?$", schedules.ScheduleRunView.as_view(), name="schedule-run"),
    re_path(r"^store_status/?$", ingestion.StoreStatusView.as_view(), name="store-status"),
    re_path(r"^stores/?$", catalog.StoreListView.as_view(), name="stores"),
    re_path(r"^stores/(?P<store_id>[^/]+)/?$", catalog.StoreDetailView.as_view(), name="store"),
    re_path(
        r"^stores/(?P<store_id>[^/]+)/special_hours/?$", attributes.SpecialHoursView.as_view(), name="special-hours"
    ),
    re_path(r"^stores/(?P<store_id>[^/]+)/timeline/?$", timeline.StoreTimelineView.as_view(), name="timeline"),
    re_path(r"^stores/(?P<store_id>[^/]+)/history/?$", history.StoreHistoryView.as_view(), name="store-history"),
    re_path(r"^trends/?$", trends.TrendView.as_view(), name="trends"),
    re_path(r"^trends/movers/?$", trends.MoversView.as_view(), name="trend-movers"),
    re_path(
        r"^stores/(?P<store_id>[^/]+)/business_hours/?$", attributes.BusinessHoursView.as_view(), name="business-hours"
    ),
    re_path(r"^stores/(?P<store_id>[^/]+)/timezone/?$", attributes.TimezoneView.as_view(), name="timezone"),
    re_path(r"^stores/(?P<store_id>[^/]+)/profile/?$", attributes.ProfileView.as_view(), name="store-profile"),
    re_path(r"^imports/?$", imports.ImportListView.as_view(), name="imports"),
    re_path(r"^imports/(?P<import_id>[^/]+)/?$", imports.ImportDetailView.as_view(), name="import"),
    re_path(r"^alerts/?$", alerts.AlertListView.as_view(), name="alerts"),
    re_path(r"^alerts/stores/?$", alerts.StoreAlertStatesView.as_view(), name="alert-store-states"),
    re_path(r"^alerts/(?P<alert_id>[^/]+)/?$", alerts.AlertDetailView.as_view(), name="alert"),
    re_path(r"^alerts/(?P<alert_id>[^/]+)/ack/?$", alerts.AlertAckView.as_view(), name="alert-ack"),
    re_path(r"^maintenance/?$", maintenance.WindowListView.as_view(), name="maintenance"),
    re_path(r"^maintenance/(?P<window_id>[^/]+)/?$", maintenance.WindowDetailView.as_view(), name="maintenance-window"),
    re_path(r"^channels/?$", channels.ChannelListView.as_view(), name="channels"),
    re_path(r"^channels/(?P<channel_id>[^/]+)/?$", channels.ChannelDetailView.as_view(), name="channel"),
    re_path(r"^channels/(?P<channel_id>[^/]+)/test/?$", channels.ChannelTestView.as_view(), name="channel-test"),
    re_path(r"^deliveries/?$", deliveries.DeliveryListView.as_view(), name="deliveries"),
    re_path(r"^deliveries/(?P<delivery_id>[^/]+)/?$", deliveries.DeliveryDetailView.as_view(), name="delivery"),
    re_path(
        r"^deliveries/(?P<delivery_id>[^/]+)/retry/?$", deliveries.DeliveryRetryView.as_view(), name="delivery-retry"
    ),
    re_path(r"^audit/?$", audit.AuditListView.as_view(), name="audit"),
    re_path(r"^me/?$", accounts.MeView.as_view(), name="me"),
    re_path(r"^keys/?$", accounts.KeyListView.as_view(), name="keys"),
    re_path(r"^keys/(?P<key_id>[^/]+)/?$", accounts.KeyDetailView.as_view(), name="key"),
    re_path(r"^overview/?$", overview.OverviewView.as_view(), name="overview"),
    re_path(r"^health/?$", overview.HealthView.as_view(), name="health"),
    re_path(r"^metrics/?$", metrics.MetricsView.as_view(), name="metrics"),
]

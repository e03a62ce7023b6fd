"""API routes. The trailing slash is optional so `curl .../trigger_report` works too."""

from django.urls import re_path

from loop import store_views, views

urlpatterns = [
    re_path(r"^trigger_report/?$", views.TriggerReportView.as_view(), name="trigger-report"),
    re_path(r"^get_report/?$", views.GetReportQueryView.as_view(), name="get-report-query"),
    re_path(r"^get_report/(?P<report_id>[^/]+)/csv/?$", views.ReportCsvView.as_view(), name="get-report-csv"),
    re_path(r"^get_report/(?P<report_id>[^/]+)/?$", views.GetReportView.as_view(), name="get-report"),
    re_path(r"^reports/?$", views.ReportListView.as_view(), name="reports"),
    re_path(r"^reports/(?P<report_id>[^/]+)/?$", views.ReportDetailView.as_view(), name="report"),
    re_path(r"^store_status/?$", views.StoreStatusView.as_view(), name="store-status"),
    re_path(r"^stores/?$", store_views.StoreListView.as_view(), name="stores"),
    re_path(r"^stores/(?P<store_id>[^/]+)/?$", store_views.StoreDetailView.as_view(), name="store"),
    re_path(
        r"^stores/(?P<store_id>[^/]+)/special_hours/?$", store_views.SpecialHoursView.as_view(), name="special-hours"
    ),
    re_path(r"^stores/(?P<store_id>[^/]+)/timeline/?$", store_views.StoreTimelineView.as_view(), name="timeline"),
    re_path(r"^stores/(?P<store_id>[^/]+)/business_hours/?$", views.BusinessHoursView.as_view(), name="business-hours"),
    re_path(r"^stores/(?P<store_id>[^/]+)/timezone/?$", views.TimezoneView.as_view(), name="timezone"),
    re_path(r"^imports/?$", views.ImportListView.as_view(), name="imports"),
    re_path(r"^imports/(?P<import_id>[^/]+)/?$", views.ImportDetailView.as_view(), name="import"),
    re_path(r"^overview/?$", views.OverviewView.as_view(), name="overview"),
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
]

"""API routes. The trailing slash is optional so `curl .../trigger_report` works too."""

from django.urls import re_path

from loop import views

urlpatterns = [
    re_path(r"^trigger_report/?$", views.TriggerReportView.as_view(), name="trigger-report"),
    re_path(r"^get_report/?$", views.GetReportQueryView.as_view(), name="get-report-query"),
    re_path(r"^get_report/(?P<report_id>[^/]+)/csv/?$", views.ReportCsvView.as_view(), name="get-report-csv"),
    re_path(r"^get_report/(?P<report_id>[^/]+)/?$", views.GetReportView.as_view(), name="get-report"),
    re_path(r"^reports/?$", views.ReportListView.as_view(), name="reports"),
    re_path(r"^reports/(?P<report_id>[^/]+)/?$", views.ReportDetailView.as_view(), name="report"),
    re_path(r"^store_status/?$", views.StoreStatusView.as_view(), name="store-status"),
    re_path(r"^stores/(?P<store_id>[^/]+)/business_hours/?$", views.BusinessHoursView.as_view(), name="business-hours"),
    re_path(r"^stores/(?P<store_id>[^/]+)/timezone/?$", views.TimezoneView.as_view(), name="timezone"),
    re_path(r"^overview/?$", views.OverviewView.as_view(), name="overview"),
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
]

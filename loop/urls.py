"""API routes. The trailing slash is optional so `curl .../trigger_report` works too."""

from django.urls import re_path

from loop import views

urlpatterns = [
    re_path(r"^trigger_report/?$", views.TriggerReportView.as_view(), name="trigger-report"),
    re_path(r"^get_report/?$", views.GetReportQueryView.as_view(), name="get-report-query"),
    re_path(r"^get_report/(?P<report_id>[^/]+)/csv/?$", views.ReportCsvView.as_view(), name="get-report-csv"),
    re_path(r"^get_report/(?P<report_id>[^/]+)/?$", views.GetReportView.as_view(), name="get-report"),
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
]

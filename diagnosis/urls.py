from django.urls import path

from . import views

app_name = "diagnosis"

urlpatterns = [
    path("", views.home, name="home"),
    path("worklist/rows/", views.worklist_rows, name="worklist_rows"),
    path("agreement/", views.agreement, name="agreement"),
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:pk>/edit/", views.patient_edit, name="patient_edit"),
    path("patients/<int:pk>/scans/", views.scan_upload, name="scan_upload"),
    path("scans/<int:pk>/", views.scan_detail, name="scan_detail"),
    path("scans/<int:pk>/image", views.scan_image, name="scan_image"),
    path("scans/<int:pk>/heatmap.png", views.scan_heatmap, name="scan_heatmap"),
    path("scans/<int:pk>/report.pdf", views.scan_report, name="scan_report"),
    path("scans/<int:pk>/review/", views.scan_review, name="scan_review"),
    path("scans/<int:pk>/status.json", views.scan_status, name="scan_status"),
    path("scans/<int:pk>/item/", views.scan_item, name="scan_item"),
    path("scans/<int:pk>/rerun/", views.scan_rerun, name="scan_rerun"),
    path("scans/<int:pk>/withdraw/", views.scan_withdraw, name="scan_withdraw"),
    path("scans/<int:pk>/restore/", views.scan_restore, name="scan_restore"),
    path("scans/<int:pk>/refile/", views.scan_refile, name="scan_refile"),
    path("staff/", views.staff_list, name="staff_list"),
    path("staff/new/", views.staff_create, name="staff_create"),
    path("staff/policy/", views.staff_policy, name="staff_policy"),
    path("staff/notifications/", views.staff_webhook, name="staff_webhook"),
    path("staff/notifications/events/", views.staff_webhook_events, name="staff_webhook_events"),
    path("staff/notifications/test/", views.staff_webhook_test, name="staff_webhook_test"),
    path("staff/notifications/<int:pk>/send-again/", views.staff_webhook_send_again, name="staff_webhook_send_again"),
    path("staff/access-log.csv", views.staff_access_log, name="staff_access_log"),
    path("staff/<int:user_id>/", views.staff_member, name="staff_member"),
    path("staff/<int:user_id>/role/", views.staff_role, name="staff_role"),
    path("staff/<int:user_id>/deactivate/", views.staff_deactivate, name="staff_deactivate"),
    path("staff/<int:user_id>/reactivate/", views.staff_reactivate, name="staff_reactivate"),
    path("staff/<int:user_id>/password/", views.staff_password, name="staff_password"),
    path("staff/<int:user_id>/unlock/", views.staff_unlock, name="staff_unlock"),
    path("staff/<int:user_id>/two-factor/reset/", views.staff_two_factor_reset, name="staff_two_factor_reset"),
    path("staff/<int:user_id>/token/", views.staff_token, name="staff_token"),
    path("staff/<int:user_id>/token/revoke/", views.staff_token_revoke, name="staff_token_revoke"),
]

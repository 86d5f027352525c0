from django.urls import path

from . import views

app_name = "training"

urlpatterns = [
    path("", views.index, name="index"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/status.json", views.run_status, name="run_status"),
    path("runs/<int:pk>/log.txt", views.run_log, name="run_log"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("models/", views.model_list, name="model_list"),
    path("models/<int:pk>/", views.model_detail, name="model_detail"),
    path("models/<int:pk>/promote/", views.model_promote, name="model_promote"),
    path("models/<int:pk>/rollback/", views.model_rollback, name="model_rollback"),
    path("models/<int:pk>/evaluate/", views.model_evaluate, name="model_evaluate"),
]

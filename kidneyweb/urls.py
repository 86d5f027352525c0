from django.contrib import admin
from django.urls import include, path

from diagnosis.api.views.docs import DocsView, SchemaView
from diagnosis.views import accounts
from diagnosis.views import sso as sso_views
from diagnosis.views.accounts import PasswordChangeView

from .health import healthz
from .metrics import metrics

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("accounts/login/", sso_views.LoginView.as_view(), name="login"),
    path("accounts/sso/", sso_views.sso_start, name="sso_start"),
    path("accounts/sso/callback/", sso_views.sso_callback, name="sso_callback"),
    path("accounts/logout/", sso_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", PasswordChangeView.as_view(), name="password_change"),
    path("accounts/", accounts.account, name="account"),
    path("accounts/two-factor/setup/", accounts.two_factor_setup, name="two_factor_setup"),
    path("accounts/two-factor/confirm/", accounts.two_factor_confirm, name="two_factor_confirm"),
    path("accounts/two-factor/disable/", accounts.two_factor_disable, name="two_factor_disable"),
    path("accounts/two-factor/verify/", accounts.two_factor_verify, name="two_factor_verify"),
    path("accounts/two-factor/recover/", accounts.two_factor_recover, name="two_factor_recover"),
    path("accounts/two-factor/recovery-codes/", accounts.recovery_codes_renew, name="recovery_codes_renew"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("diagnosis.api.urls")),
    path("api/v1/", include("training.api.urls")),
    path("scim/v2/", include("diagnosis.api.scim_urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, which the Content-Security-Policy allows.
    path("api/docs/", DocsView.as_view(url_name="schema"), name="api-docs"),
    path("training/", include("training.urls")),
    path("", include("diagnosis.urls")),
]

handler400 = "kidneyweb.errors.bad_request"

"""Logging in through the hospital's identity provider (``diagnosis.sso``), and the login page that offers it."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import services, sso
from ..auth import LoginForm
from ..middleware import SIGNED_ON
from .accounts import safe_next_url

logger = logging.getLogger(__name__)

PENDING = "kidneyweb_sign_on"  # the session's record of a sign-on on its way: state, nonce, PKCE verifier, next
ID_TOKEN = "kidneyweb_sign_on_id_token"  # the provider's ID token of this session's sign-on, for the logout


class LoginView(auth_views.LoginView):
    """Django's login page, offering the hospital's sign-on above the password form where it is set up."""

    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        if not settings.KIDNEYWEB_PASSWORD_LOGIN:
            form.fields["username"].widget.attrs.pop("autofocus", None)  # folded away: the sign-on is the way in
        return form

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sign_on_label"] = settings.KIDNEYWEB_OIDC_LABEL if sso.enabled() else ""
        context["password_login"] = settings.KIDNEYWEB_PASSWORD_LOGIN
        return context


class LogoutView(auth_views.LogoutView):
    """Django's logout; after a sign-on, the browser then goes on to the provider to end its session there too
    (KIDNEYWEB_OIDC_END_SESSION), which sends it back to the login page. An idle session that expired ends
    kidneyweb's session only."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        id_token = request.session.get(ID_TOKEN) if request.session.get(SIGNED_ON) else None
        response = super().post(request, *args, **kwargs)  # the session is flushed here
        if id_token and sso.enabled() and settings.KIDNEYWEB_OIDC_END_SESSION:
            url = sso.end_session_url(id_token=id_token,
                                      post_logout_redirect_uri=request.build_absolute_uri(reverse("login")))
            if url:
                # A page that goes on by itself, not a redirect: a form's redirect to another site is blocked by the
                # Content-Security-Policy's form-action 'self'.
                page = render(request, "registration/logged_out_sign_on.html", {"end_session_url": url})
                add_never_cache_headers(page)
                page["Cache-Control"] += ", no-store"
                page["Referrer-Policy"] = "no-referrer"
                return page
        return response


def _refused(request: HttpRequest, message: str) -> HttpResponse:
    messages.error(request, message)
    return redirect("login")


def _callback_uri(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("sso_callback"))


@never_cache
@require_GET
def sso_start(request: HttpRequest) -> HttpResponse:
    if not sso.enabled():
        raise Http404("Single sign-on is not set up here.")
    try:
        started = sso.start(redirect_uri=_callback_uri(request))
    except sso.SignOnFailed as exc:
        return _refused(request, str(exc))
    request.session[PENDING] = {"state": started.state, "nonce": started.nonce, "verifier": started.verifier,
                                "at": started.at, "next": safe_next_url(request)}
    return redirect(started.url)


@never_cache
@require_GET
def sso_callback(request: HttpRequest) -> HttpResponse:
    if not sso.enabled():
        raise Http404("Single sign-on is not set up here.")
    pending = request.session.pop(PENDING, None)
    if request.GET.get("error"):
        said = request.GET.get("error_description") or request.GET["error"]
        return _refused(request, f"The hospital's sign-on service did not log you in: {said[:200]}")
    if not pending or not request.GET.get("state") or request.GET["state"] != pending["state"]:
        # A callback this browser did not ask for (or one used already): a forged login must not succeed.
        return _refused(request, "This sign-on was not started here, or was used already: log in again.")
    try:
        signed_on = sso.finish(code=request.GET.get("code", ""), redirect_uri=_callback_uri(request),
                               nonce=pending["nonce"], verifier=pending["verifier"], started_at=pending["at"])
    except sso.SignOnFailed as exc:
        return _refused(request, str(exc))
    try:
        user = services.sign_on_user(signed_on=signed_on)
    except services.SignOnRefused as exc:
        logger.warning("Sign-on: %r not logged in: %s", signed_on.username, exc)
        return _refused(request, str(exc))
    login(request, user, backend="diagnosis.auth.ThrottledModelBackend")
    request.session[SIGNED_ON] = True
    request.session[ID_TOKEN] = signed_on.id_token
    logger.info("Sign-on: %s logged in through the hospital's identity provider", user.get_username())
    return redirect(pending.get("next") or settings.LOGIN_REDIRECT_URL)

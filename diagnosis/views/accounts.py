"""The signed-in user's own account: changing the password."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.messages.views import SuccessMessageMixin
from django.urls import reverse_lazy

from .. import selectors, services
from ..auth import ThrottledPasswordChangeForm


class PasswordChangeView(SuccessMessageMixin, auth_views.PasswordChangeView):
    """Django's password change, which keeps this session and ends the others that used the old password."""

    form_class = ThrottledPasswordChangeForm
    template_name = "registration/password_change.html"
    success_url = reverse_lazy("diagnosis:home")
    success_message = "Your password was changed. Anywhere else you were logged in, you are logged out."

    def get_context_data(self, **kwargs):
        membership = selectors.membership_of(self.request.user)
        return super().get_context_data(**kwargs, required=bool(membership and membership.password_change_required))

    def form_valid(self, form):
        response = super().form_valid(form)
        services.member_password_changed(user=form.user)
        return response

"""Who may log in, for which organization, and what was changed about their accounts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Organization(models.Model):
    """A hospital. Every patient belongs to exactly one; users see only their own organization's data."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    require_two_factor = models.BooleanField(
        default=False,
        help_text="Every member must confirm logins with a code from an authenticator app.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        CLINICIAN = "clinician", "Clinician"
        ADMIN = "admin", "Administrator"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CLINICIAN)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    password_change_required = models.BooleanField(
        default=False,
        help_text="An administrator set a temporary password: the member must choose their own before anything else.",
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}, {self.organization})"


class StaffChange(models.Model):
    """An organization administrator changed a member's account: who, whose, what, when.

    Who could open patient records, and since when, is the other half of an access review.
    """

    class Action(models.TextChoices):
        ADDED = "added", "Added"
        ROLE_CHANGED = "role_changed", "Role changed"
        DEACTIVATED = "deactivated", "Deactivated"
        REACTIVATED = "reactivated", "Reactivated"
        PASSWORD_RESET = "password_reset", "Temporary password set"
        UNLOCKED = "unlocked", "Login lock lifted"
        TOKEN_ISSUED = "token_issued", "API token issued"
        TOKEN_REVOKED = "token_revoked", "API token revoked"
        TWO_FACTOR_RESET = "two_factor_reset", "Two-factor authentication reset"
        POLICY_CHANGED = "policy_changed", "Organization policy changed"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="staff_changes")
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_changes")
    # None: made on the server's command line (create_organization_admin), where no one is logged in.
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_changes_made",
                           null=True, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    detail = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["organization", "-at"], name="staff_change_org_at_idx")]

    def __str__(self) -> str:
        return f"{self.by or 'command line'}: {self.get_action_display().lower()} for {self.member} at {self.at:%Y-%m-%d %H:%M}"


class LoginFailure(models.Model):
    """A failed password login for a username: enough of them in a row lock that username for a while.

    Kept in the database, not a per-process cache, so that every web worker counts the same attempts.
    """

    username = models.CharField(max_length=150)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["username", "at"], name="login_failure_username_at_idx")]

    def __str__(self) -> str:
        return f"failed login as {self.username!r} at {self.at:%Y-%m-%d %H:%M:%S}"


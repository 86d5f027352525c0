"""Who may log in, for which organization, and what was changed about their accounts."""

from __future__ import annotations

import binascii
import datetime
import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from ..sealed import SealedTextField, Unreadable


# What a hospital system can be notified of, with what the Members page calls it.
WEBHOOK_EVENTS: dict[str, str] = {
    "diagnosis.finished": "Finished diagnoses (done or failed)",
    "review.saved": "Clinician reviews (the AI result confirmed or corrected)",
    "scan.withdrawn": "Withdrawn scans",
    "scan.restored": "Restored scans (a withdrawal undone)",
    "patient.merged": "Merged patient records (a person registered twice)",
    "patient.unmerged": "Patient merges undone",
    "patient.erased": "Erased patient records (consent withdrawn, the end of a pilot)",
    "erasure.archive_given_up": "Erased records whose AI results the archive may still hold (asking it given up)",
    "model.below_card": "The active model doing worse on your reviewed slices than its card promised",
    "model.recovered": "The active model no longer below its card",
    "model.inputs_unusual": "More uploads unlike the active model's training data than its card expects",
    "model.inputs_usual": "Uploads back to what the active model's card expects",
    "api_token.expiring": "API tokens about to expire (14 days before, under the organization's token lifetime)",
}


def all_webhook_events() -> list[str]:
    return list(WEBHOOK_EVENTS)


class Organization(models.Model):
    """A hospital. Every patient belongs to exactly one; users see only their own organization's data."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    require_two_factor = models.BooleanField(
        default=False,
        help_text="Every member must confirm logins with a code from an authenticator app.",
    )
    # How long an API token works after it was issued; None: until replaced or revoked.
    api_token_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="API tokens stop working this many days after they were issued; empty: never.")
    # Result notifications for a hospital system: each finished diagnosis is POSTed here, signed with the secret.
    # Checked by services.webhooks.webhook_set (https only unless allowed), not by a form field of its own.
    webhook_url = models.CharField("notification URL", max_length=500, blank=True)
    webhook_secret = SealedTextField(blank=True, label="notification secret")
    # Which of WEBHOOK_EVENTS are sent (a test, "ping", always is).
    webhook_events = models.JSONField(default=all_webhook_events, blank=True)
    # The archive (PACS) each finished AI result of a DICOM slice is sent to as a capture: the DICOMweb service's
    # base address (STOW-RS posts to its /studies). Set by services.pacs.pacs_set; the credentials are sent as HTTP
    # Basic authentication, so the password, like the notification secret, is kept sealed (diagnosis.sealed), not
    # hashed, and never shown again.
    pacs_url = models.CharField("archive (PACS) DICOMweb address", max_length=500, blank=True)
    pacs_username = models.CharField(max_length=150, blank=True)
    pacs_password = SealedTextField(blank=True, label="archive password")
    # Each result also as a structured report (dicom_report, IHE AI Results), for archives and viewers that read
    # coded findings; off by default, as some viewers list an SR they cannot show.
    pacs_send_reports = models.BooleanField(
        "also send structured reports", default=False,
        help_text="Send each AI result to the archive as a DICOM Structured Report (TID 1500) too.")
    # OAuth 2.0 client credentials for a DICOMweb archive behind an authorization server (services.archive_oauth):
    # a bearer token from pacs_token_url instead of the user name and password; the secret sealed.
    pacs_token_url = models.CharField("archive's token address (OAuth 2.0)", max_length=500, blank=True)
    pacs_client_id = models.CharField(max_length=200, blank=True)
    pacs_client_secret = SealedTextField(blank=True, label="archive OAuth client secret",
                                         remedy="set the client secret anew on the Members page")
    pacs_scope = models.CharField(max_length=500, blank=True)
    # kidneyweb's TLS client certificate, for archives that admit only certificates of the hospital's CA (mutual
    # TLS; services.client_certificates): the chain in PEM, public; its private key sealed.
    pacs_client_certificate = models.TextField(blank=True)
    pacs_client_key = SealedTextField(blank=True, label="archive client key",
                                      remedy="upload kidneyweb's client certificate and key anew on the Members page")
    # The interface engine (or record system) each change of a scan's result is sent to as an HL7 v2 ORU^R01 message
    # over MLLP (services.hl7_feed): mllp://host:port, or mllps:// over TLS. The receiving application and facility
    # fill MSH-5 and MSH-6, for an engine that routes by them.
    hl7_address = models.CharField("record system's HL7 address (MLLP)", max_length=300, blank=True)
    hl7_receiving_application = models.CharField(max_length=20, blank=True)
    hl7_receiving_facility = models.CharField(max_length=20, blank=True)

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
    # Added at their first sign-on because the hospital's groups named them (services.sign_on): their role follows
    # those groups at each sign-on, and leaving them closes the account. Members an administrator added never do.
    by_groups = models.BooleanField("managed by the hospital's groups", default=False)
    # The hospital's directory provisions this member by SCIM (services.scim): since it added or first changed them,
    # its own id for them, and when it removed them (DELETE): the account is then closed and, for the directory, gone.
    by_directory = models.BooleanField("managed by the hospital's directory", default=False)
    scim_external_id = models.CharField(max_length=255, blank=True)
    scim_removed_at = models.DateTimeField(null=True, blank=True)

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
        RENAMED = "renamed", "Username changed"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="staff_changes")
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_changes")
    # None: made on the server's command line (create_organization_admin), where no one is logged in.
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_changes_made",
                           null=True, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    detail = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(default=timezone.now, editable=False)

    # How the detail of a change the hospital's directory made over SCIM names it (services.scim); it has no ``by``.
    BY_DIRECTORY = "by the hospital's directory (SCIM)"

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["organization", "-at"], name="staff_change_org_at_idx")]

    def made_by(self) -> str:
        """Who made it, as the Members page and the access review name them."""
        if self.by_id:
            return self.by.get_username()
        return "the hospital's directory" if self.BY_DIRECTORY in self.detail else "command line"

    def __str__(self) -> str:
        return f"{self.by or 'command line'}: {self.get_action_display().lower()} for {self.member} at {self.at:%Y-%m-%d %H:%M}"


def token_digest(key: str) -> str:
    """What is kept of an API or SCIM token: a plain SHA-256, not a slow password hash, as the token is random
    enough to be beyond guessing and every request checks one."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ScimToken(models.Model):
    """The bearer token with which the hospital's directory (Entra ID, Okta, ...) provisions an organization's members
    over SCIM 2.0, kept only as its SHA-256 digest, as API tokens are. One per organization; replacing it ends the
    old one."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="scim_token")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)

    PREFIX_LENGTH = 8
    digest_of = staticmethod(token_digest)

    def __str__(self) -> str:
        return f"SCIM token {self.prefix}… of {self.organization}"


class ApiToken(models.Model):
    """A member's token for the REST API, kept only as its SHA-256 digest.

    The token is shown once, when issued; a copy of the database or of a backup then opens nobody's API
    access. A plain digest, not a slow password hash: the token is 160 random bits, beyond guessing, and
    every API request checks one. ``prefix`` (its first characters) tells an administrator which token a
    hospital system holds without showing the rest.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created = models.DateTimeField(default=timezone.now)
    # Written at most every few minutes (api.authentication), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    # When its holder's system was told it is about to expire (services.webhooks), so that it is told once.
    expiry_notified_at = models.DateTimeField(null=True, blank=True)

    PREFIX_LENGTH = 8
    # How long before it stops working its holder is told (services.webhooks) and monitoring counts it (/metrics).
    EXPIRY_NOTICE = datetime.timedelta(days=14)

    digest_of = staticmethod(token_digest)

    def expires_at(self, days: int | None) -> datetime.datetime | None:
        """When the token stops working under a lifetime of ``days`` (None: never)."""
        return self.created + datetime.timedelta(days=days) if days else None

    def __str__(self) -> str:
        return f"API token {self.prefix}… of {self.user}"


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


def authenticator_secret() -> str:
    return random_hex(20)  # 160 bits, as RFC 4226 recommends and authenticator apps expect


class Authenticator(TimestampMixin, ThrottlingMixin, Device):
    """A member's authenticator app (TOTP, RFC 6238): django-otp's TOTP device, with its secret sealed.

    django-otp's own ``TOTPDevice`` keeps the shared secret in clear, so a copy of the database would let its
    holder compute everyone's codes. Here it is sealed (diagnosis.sealed) like the archive's password; the
    checking itself (time steps, tolerance, drift, no code twice, throttling) is django-otp's, unchanged.
    """

    secret = SealedTextField(default=authenticator_secret, label="authenticator secret",
                             remedy="reset the member's two-factor authentication on the Members page")
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    @property
    def readable(self) -> bool:
        return not isinstance(self.secret, Unreadable)

    @property
    def bin_key(self) -> bytes:
        if not self.readable:
            raise ValueError(self.secret.reason)
        return binascii.unhexlify(self.secret.encode())

    verify_token = TOTPDevice.verify_token
    get_throttle_factor = TOTPDevice.get_throttle_factor
    config_url = TOTPDevice.config_url
    _read_str_from_settings = TOTPDevice._read_str_from_settings


class RecoveryCodes(ThrottlingMixin, Device):
    """One-time codes that finish a login when the authenticator app's phone is lost.

    A django-otp device, so a login confirmed with one is verified like one confirmed with the app.
    Codes are stored only as salted SHA-256 digests (django-otp's own static tokens are kept in
    clear): a copy of the database does not open anyone's second factor.
    """

    salt = models.CharField(max_length=32)

    class Meta:
        verbose_name = "recovery codes"
        verbose_name_plural = "recovery codes"

    def get_throttle_factor(self) -> int:
        return 1

    def digest(self, code: str) -> str:
        # Codes are shown in groups ("k7qm-x2pd-9fre") and typed in any case, with or without the dashes.
        typed = "".join(ch for ch in str(code).lower() if ch.isalnum())
        return hashlib.sha256(f"{self.salt}:{typed}".encode()).hexdigest()

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        used = self.codes.filter(digest=self.digest(token), used_at=None).update(used_at=timezone.now())
        if used:
            self.throttle_reset()
        else:
            self.throttle_increment()
        return bool(used)


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodes, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64, db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"recovery code of {self.device.user} ({'used' if self.used_at else 'unused'})"

"""An organization's members as its administrators manage them: accounts, locks, API tokens, changes; and the
client certificate kidneyweb presents to its archive."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import (Count, DateTimeField, Exists, ExpressionWrapper, F, IntegerField, OuterRef, Q,
                              QuerySet, Subquery, Value)
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from ..models import (ApiToken, Authenticator, DicomStoreRefusal, Hl7Delivery, LoginFailure, Membership, Organization, PacsDelivery,
                      PatientAccess, Prediction, RecoveryCode, RecoveryCodes, Scan, ScimToken, StaffChange,
                      WebhookDelivery)


# A client certificate this close to its expiry is pointed out on the Members page and in the API.
CERTIFICATE_EXPIRY_WARNING = datetime.timedelta(days=30)


@dataclass(frozen=True)
class CertificateSummary:
    """What an administrator needs to know of the certificate: whose, by whom, until when."""

    subject: str
    issuer: str
    not_after: datetime.datetime
    sha256: str

    def expires_soon(self, now: datetime.datetime | None = None) -> bool:
        return self.not_after - (now or timezone.now()) < CERTIFICATE_EXPIRY_WARNING

    def expired(self, now: datetime.datetime | None = None) -> bool:
        return self.not_after <= (now or timezone.now())


def _name(name: x509.Name) -> str:
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else name.rfc4514_string()


def certificate_summary(chain: str) -> CertificateSummary | None:
    """What the first certificate of a PEM chain says; None for no chain."""
    if not chain:
        return None
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    return CertificateSummary(subject=_name(leaf.subject), issuer=_name(leaf.issuer), not_after=leaf.not_valid_after_utc,
                              sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest())


def archive_client_certificate(*, organization: Organization) -> CertificateSummary | None:
    """What the organization's client certificate for its archive says, or None."""
    return certificate_summary(organization.pacs_client_certificate)


def user_for_sign_on(*, username: str) -> AbstractBaseUser | None:
    """The active account a sign-on's username names (identity providers differ in case: it is set aside), or None;
    None too when two accounts differ only in case, rather than guess."""
    User = get_user_model()
    found = list(User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}, is_active=True)[:2])
    return found[0] if len(found) == 1 else None


def scim_token_of(*, organization: Organization) -> ScimToken | None:
    """The token with which the hospital's directory provisions the organization's members, or None."""
    return ScimToken.objects.select_related("created_by").filter(organization=organization).first()


def api_token_of(*, user: AbstractBaseUser) -> ApiToken | None:
    return ApiToken.objects.filter(user=user).first()


def api_tokens_with_lifetime() -> QuerySet[ApiToken]:
    """The members' API tokens in organizations with a token lifetime, with its ``lifetime_days``, ``organization_pk``
    and ``organization_slug`` (their expiry: ``token.expires_at(token.lifetime_days)``)."""
    organization = "user__membership__organization"
    return (ApiToken.objects.filter(**{f"{organization}__api_token_days__isnull": False})
            .annotate(lifetime_days=F(f"{organization}__api_token_days"), organization_pk=F(organization),
                      organization_slug=F(f"{organization}__slug")))


def organization_members(*, organization: Organization) -> QuerySet[Membership]:
    """The members, by username, with ``has_api_token``, ``token_created``, ``token_expires`` (under the organization's
    token lifetime; None: never), ``token_prefix``, ``token_last_used``,
    ``has_two_factor``, ``recovery_codes_left``
    and ``login_failures`` (recent
    failed logins; ``login_locked`` is true when they lock the username)."""
    window = timezone.now() - datetime.timedelta(minutes=settings.KIDNEYWEB_LOGIN_LOCK_MINUTES)
    # Failures are stored under the lower-cased username (services.logins).
    failures = (
        LoginFailure.objects.filter(username=Lower(OuterRef("user__username")), at__gt=window)
        .order_by().values("username").annotate(n=Count("id")).values("n")
    )
    tokens = ApiToken.objects.filter(user=OuterRef("user"))
    authenticators = Authenticator.objects.filter(user=OuterRef("user"), confirmed=True)
    unused_codes = (
        RecoveryCode.objects.filter(device__user=OuterRef("user"), used_at=None)
        .order_by().values("device__user").annotate(n=Count("id")).values("n")
    )
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .annotate(
            has_api_token=Exists(tokens),
            has_two_factor=Exists(authenticators),
            token_created=Subquery(tokens.values("created")[:1]),
            token_prefix=Subquery(tokens.values("prefix")[:1]),
            token_last_used=Subquery(tokens.values("last_used_at")[:1]),
            login_failures=Coalesce(Subquery(failures, output_field=IntegerField()), Value(0)),
            recovery_codes_left=Coalesce(Subquery(unused_codes, output_field=IntegerField()), Value(0)),
        )
        .annotate(token_expires=(
            ExpressionWrapper(F("token_created") + Value(datetime.timedelta(days=organization.api_token_days)),
                              output_field=DateTimeField())
            if organization.api_token_days else Value(None, output_field=DateTimeField())))
        .order_by("user__username")
    )


def organization_member_get(*, organization: Organization, user_id: int) -> Membership | None:
    """One member of the organization by user id; None for anyone else, as for no one."""
    return organization_members(organization=organization).filter(user_id=user_id).first()


def member_login_locked(membership: Membership) -> bool:
    return getattr(membership, "login_failures", 0) >= settings.KIDNEYWEB_LOGIN_MAX_FAILURES


def staff_changes(*, organization: Organization, member_id: int | None = None) -> QuerySet[StaffChange]:
    changes = StaffChange.objects.filter(organization=organization).select_related("member", "by")
    return changes.filter(member_id=member_id) if member_id is not None else changes


def staff_changes_between(*, organization: Organization, since: datetime.date | None = None,
                          until: datetime.date | None = None) -> QuerySet[StaffChange]:
    """Every change to the organization's members and settings, oldest first (how an access review reads it), for
    days ``since`` to ``until``, both included."""
    return _days(staff_changes(organization=organization), since, until).order_by("at", "id")


def _days(rows: QuerySet, since: datetime.date | None, until: datetime.date | None) -> QuerySet:
    """The rows whose ``at`` falls on days ``since`` to ``until``, both included; either may be None."""
    if since:
        rows = rows.filter(at__date__gte=since)
    if until:
        rows = rows.filter(at__date__lte=until)
    return rows


def member_accesses(*, organization: Organization, member_id: int) -> QuerySet[PatientAccess]:
    """What the member opened of the organization's patients, newest first: a privacy officer's other
    question, after "who looked at this patient?"."""
    return (PatientAccess.objects.filter(_of_organization(organization), user_id=member_id)
            .select_related("patient", "erasure").order_by("-at", "-id"))


def _of_organization(organization: Organization) -> Q:
    # An erased record's entries name its erasure instead.
    return Q(patient__organization=organization) | Q(erasure__organization=organization)


def two_factor_device(*, user: AbstractBaseUser) -> Authenticator | None:
    """The user's confirmed authenticator app, if any."""
    return Authenticator.objects.filter(user=user, confirmed=True).first()


def two_factor_setup_pending(*, user: AbstractBaseUser) -> Authenticator | None:
    """A new authenticator waiting for its first code."""
    return Authenticator.objects.filter(user=user, confirmed=False).order_by("-id").first()


def organization_accesses(*, organization: Organization, since: datetime.date | None = None,
                          until: datetime.date | None = None) -> QuerySet[PatientAccess]:
    """The organization's whole access log, oldest first (how an audit reads it), for days ``since`` to
    ``until``, both included."""
    accesses = _days(PatientAccess.objects.filter(_of_organization(organization)), since, until)
    return accesses.select_related("user", "patient", "erasure").order_by("at", "id")


def recovery_codes_left(*, user: AbstractBaseUser) -> int | None:
    """How many unused recovery codes the user has; None if they have no set."""
    device = RecoveryCodes.objects.filter(user=user).first()
    return None if device is None else device.codes.filter(used_at=None).count()


def webhook_deliveries(*, organization: Organization) -> QuerySet[WebhookDelivery]:
    """The organization's result notifications, newest first."""
    return WebhookDelivery.objects.filter(organization=organization).order_by("-created_at", "-id")


def dicom_store_refusals(*, organization: Organization) -> QuerySet[DicomStoreRefusal]:
    """The instances the organization's archive sent that were refused, newest first, with who sent them."""
    return (DicomStoreRefusal.objects.filter(organization=organization).select_related("sent_by")
            .order_by("-refused_at", "-id"))


def webhook_delivery_get(*, organization: Organization, pk: int) -> WebhookDelivery | None:
    """One of the organization's notifications; None for another organization's."""
    return webhook_deliveries(organization=organization).filter(pk=pk).first()


def hl7_deliveries(*, organization: Organization) -> QuerySet[Hl7Delivery]:
    """The results sent (or being sent) to the organization's record system as HL7 messages, newest first."""
    return (Hl7Delivery.objects.filter(organization=organization).select_related("sent_again_by")
            .order_by("-created_at", "-id"))


def hl7_delivery_get(*, organization: Organization, pk: int) -> Hl7Delivery | None:
    """One of the organization's HL7 messages; None for another organization's."""
    return hl7_deliveries(organization=organization).filter(pk=pk).first()


def pacs_deliveries(*, organization: Organization) -> QuerySet[PacsDelivery]:
    """The AI results sent (or being sent) to the organization's archive, newest first."""
    return (PacsDelivery.objects.filter(organization=organization).select_related("sent_again_by")
            .order_by("-created_at", "-id"))


def pacs_delivery_get(*, organization: Organization, pk: int) -> PacsDelivery | None:
    """One of the organization's results sent to the archive; None for another organization's."""
    return pacs_deliveries(organization=organization).filter(pk=pk).first()


def pacs_sent_of(*, prediction: Prediction | None) -> dict[str, PacsDelivery]:
    """How the result (or the newest review of it) was last sent to the archive, by kind: its capture, and its
    structured report where the organization sends those; empty when it was not sent (no archive set, no DICOM
    study)."""
    sent: dict[str, PacsDelivery] = {}
    if prediction is None:
        return sent
    # Newest first (PacsDelivery's ordering), from a prefetch where the scan list made one: one pass for both kinds.
    for delivery in prediction.pacs_deliveries.all():
        sent.setdefault(delivery.kind, delivery)
    return sent


def hl7_sent_of(*, scan: Scan) -> Hl7Delivery | None:
    """The scan's latest message to the record system (HL7 v2): how its newest change went; None when none was
    sent (no record system set)."""
    return Hl7Delivery.objects.filter(scan=scan).order_by("-created_at", "-id").first()


def pacs_stored_of(*, scan: Scan) -> list[PacsDelivery]:
    """The scan's results (captures and reports) the archive stored, oldest first: what it holds of a scan withdrawn
    since."""
    return list(PacsDelivery.objects.filter(scan=scan, kind__in=PacsDelivery.RESULTS,
                                            status=PacsDelivery.Status.DELIVERED).order_by("created_at", "id"))


def pacs_rejection_of(*, scan: Scan) -> PacsDelivery | None:
    """The rejection note of the scan's current withdrawal, as sent to the archive; None when the scan is not
    withdrawn or no note was sent (no archive set, or it was sent nothing of the scan)."""
    if not scan.is_withdrawn:
        return None
    rejections = getattr(scan, "pacs_rejections", None)  # the scan list's prefetch
    if rejections is None:
        rejections = list(PacsDelivery.objects.filter(scan=scan, kind=PacsDelivery.Kind.REJECTION,
                                                      withdrawal__isnull=False, withdrawal__restored_at=None)
                          .order_by("-created_at", "-id"))
    return rejections[0] if rejections else None

"""Each finished AI result of a DICOM slice sent to the organization's archive (PACS), where radiologists read: the
result as a DICOM capture (``dicom_export``) stored beside the scanner's images through DICOMweb STOW-RS, the way
AI products file their results, instead of waiting for an integration engine to fetch it. Each clinician's review
of it is sent too, as a new capture that states the reading, so the archive holds what was finally read. Where the
organization asks for them, each also goes as a structured report (``dicom_report``, IHE AI Results), its own
delivery. Captures (and reports) the archive should no longer show are rejected there (``pacs_rejections``).

Each result (and review) is a delivery row per form (which result, as which instance, how the archive answered) sent
by a Celery task that retries with backoff. Sending again is harmless: the capture of one result is always the same
instance, which an archive stores once. A refusal the archive gave for the instance itself (its failure reason) or
for the request (a 4xx) is final at once, since sending it again cannot change the answer; an administrator fixes
the cause and sends it again.
"""

from __future__ import annotations

import base64
import datetime
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, Q
from django.utils import timezone

from ..dicom_uids import capture_uids, report_uids
from ..models import Organization, PacsDelivery, Prediction, Review, Scan
from ..sealed import Unreadable
from . import archive_oauth, client_certificates, dimse, outbound, stow
from .staff import policy_change_record
from .outbound import NotDelivered as PacsNotDelivered  # noqa: F401 (re-exported for the task)


@transaction.atomic
def pacs_set(*, organization: Organization, url: str, username: str = "", password: str = "",
             send_reports: bool | None = None, by: AbstractBaseUser) -> Organization:
    """Send AI results to the archive whose DICOMweb base address is ``url`` (blank: stop sending), as ``username``
    with ``password`` (HTTP Basic; no user name: no authentication), each also as a structured report when
    ``send_reports`` (None: as before). A blank password keeps the one set for the same user name, so the address
    can be changed without typing it again. The change is recorded."""
    url = (url or "").strip().rstrip("/").removesuffix("/studies")
    username = (username or "").strip()
    dicom = dimse.parse(url)
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if not url:
        if organization.pacs_url:
            organization.pacs_url = organization.pacs_username = organization.pacs_password = ""
            organization.save(update_fields=["pacs_url", "pacs_username", "pacs_password"])
            policy_change_record(organization=organization, by=by, detail="AI results to the archive off")
        return organization
    if dicom is not None:
        if not dicom.tls and not settings.KIDNEYWEB_PACS_ALLOW_HTTP:
            raise ValidationError({"url": [
                "dicom:// sends the capture, with the patient's name, unencrypted: it is allowed only where the "
                "deployment sets KIDNEYWEB_PACS_ALLOW_HTTP=1 (an archive on a closed network). Enter dicoms:// for "
                "DICOM over TLS, or the archive's DICOMweb address starting with https://."]})
        if username or password:
            raise ValidationError({"username": [
                "A DICOM (DIMSE) archive takes no user name or password: it knows kidneyweb by its AE title, "
                f"{settings.KIDNEYWEB_DICOM_AE_TITLE}. Leave both empty."]})
    else:
        outbound.address_check(url, allow_http=settings.KIDNEYWEB_PACS_ALLOW_HTTP,
                               what="the archive's DICOMweb address,", example="https://pacs.example.org/dicom-web")
    if ":" in username:
        raise ValidationError({"username": ["A user name for HTTP Basic authentication cannot contain a colon."]})
    if not password and username and username == organization.pacs_username:
        password = organization.pacs_password
    if username and not password:
        raise ValidationError({"password": ["Enter the password of this user on the archive."]})
    organization.pacs_url, organization.pacs_username = url, username
    organization.pacs_password = password if username else ""
    if send_reports is not None:
        organization.pacs_send_reports = send_reports
    organization.save(update_fields=["pacs_url", "pacs_username", "pacs_password", "pacs_send_reports"])
    as_whom = (f" as {settings.KIDNEYWEB_DICOM_AE_TITLE} (DIMSE)" if dicom else f" as {username}" if username
               else " without authentication")
    forms = " with structured reports" if organization.pacs_send_reports else ""
    policy_change_record(organization=organization, by=by,
                         detail=f"AI results{forms} to the archive at {urlsplit(url).netloc}{as_whom}")
    return organization


def _unreadable_credential(organization: Organization, *, dicom: bool) -> str:
    """Why a credential the archive needs cannot be used here (its seal does not open), or ""."""
    for value in (organization.pacs_client_key, *(() if dicom else (organization.pacs_password,))):
        if isinstance(value, Unreadable):
            return value.reason
    return ""


def _headers(organization: Organization, **more: str) -> dict[str, str]:
    """The request's headers with kidneyweb's credentials: an OAuth 2.0 bearer token where one is set up (raises
    archive_oauth.TokenUnavailable), else the user name and password."""
    headers = {"User-Agent": "kidneyweb-pacs/1", **more}
    if organization.pacs_token_url:
        headers["Authorization"] = "Bearer " + archive_oauth.access_token(organization)
    elif organization.pacs_username:
        credentials = f"{organization.pacs_username}:{organization.pacs_password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
    return headers


def pacs_check(*, organization: Organization) -> str:
    """Ask the archive set for one study (DICOMweb QIDO-RS), as kidneyweb's user, so that an administrator knows at
    once whether the address and the credentials work, before a result depends on them. Returns what it answered in
    words; raises ValidationError with what went wrong."""
    if not organization.pacs_url:
        raise ValidationError("Set the archive's address first.")
    dicom = dimse.parse(organization.pacs_url)
    unreadable = _unreadable_credential(organization, dicom=dicom is not None)
    if unreadable:
        raise ValidationError(unreadable)
    client = client_certificates.of(organization)
    if dicom is not None:
        return dimse.echo(dicom, calling=settings.KIDNEYWEB_DICOM_AE_TITLE, client=client)
    try:
        headers = _headers(organization, Accept="application/dicom+json")
    except archive_oauth.TokenUnavailable as exc:
        raise ValidationError(exc.reason) from None
    answer = outbound.get(f"{organization.pacs_url}/studies?limit=1", receiver="archive",
                          context=client_certificates.https_context(client), headers=headers)
    if answer.ok:
        as_whom = (f" to OAuth 2.0 client {organization.pacs_client_id}" if organization.pacs_token_url else
                   f" as {organization.pacs_username}" if organization.pacs_username else "")
        return f"The archive answered{as_whom}: its DICOMweb service is reached ({answer.status})."
    refusal = client_certificates.https_refusal(organization.pacs_url, client) if answer.status is None else ""
    if refusal:
        raise ValidationError(refusal)
    raise ValidationError(" ".join(filter(None, [answer.error, stow.HINTS.get(answer.status or 0, "")])))


def enqueue_delivery(delivery_id: int) -> None:
    from ..tasks import deliver_to_pacs

    outbound.enqueue(deliver_to_pacs, PacsDelivery, delivery_id)


def pacs_result_send(*, prediction: Prediction, review: Review | None = None) -> PacsDelivery | None:
    """Queue the capture of a finished result (with the clinician's ``review`` of it) for the organization's archive,
    when it has one and the slice came with a DICOM study to file it in, and its structured report where the
    organization sends those. Called in the transaction that finished (or reviewed) it; sent once that commits.
    Returns the capture's delivery."""
    scan = prediction.scan
    if prediction.status != Prediction.Status.DONE or scan.is_withdrawn:
        return None
    organization = archive_of(scan)
    return _queue(organization=organization, prediction=prediction, review=review) if organization else None


def archive_of(scan: Scan) -> Organization | None:
    """The scan's organization when it sends results to an archive and the slice came with a study to file them in."""
    if not scan.dicom_study_uid:
        return None
    organization = (Organization.objects.filter(pk=scan.patient.organization_id).only("pacs_url", "pacs_send_reports")
                    .first())
    return organization if organization is not None and organization.pacs_url else None


def result_kinds(organization: Organization, scan: Scan) -> list[str]:
    """The forms the organization's archive is sent a result of the scan in: the capture, and the structured report
    where it asked for those and the slice's header named the image a report must point to."""
    report = organization.pacs_send_reports and scan.dicom_series_uid and scan.dicom_instance_uid
    return [PacsDelivery.Kind.CAPTURE, PacsDelivery.Kind.REPORT] if report else [PacsDelivery.Kind.CAPTURE]


def _queue(*, organization: Organization, prediction: Prediction, review: Review | None) -> PacsDelivery:
    scan = prediction.scan
    deliveries = []
    for kind in result_kinds(organization, scan):
        uids = capture_uids if kind == PacsDelivery.Kind.CAPTURE else report_uids
        delivery, created = PacsDelivery.objects.get_or_create(
            prediction=prediction, review=review, generation=scan.capture_generation, kind=kind,
            defaults={"organization": organization, "scan": scan, "url": organization.pacs_url,
                      "sop_instance_uid": uids(scan, prediction, review)[1]})
        if created:
            transaction.on_commit(partial(enqueue_delivery, delivery.pk))
        deliveries.append(delivery)
    return deliveries[0]


def _replaced_by(delivery: PacsDelivery) -> str | None:
    """What replaced the delivery's capture since it was queued, in words; None while it is the scan's current one
    (and for a rejection note, which nothing replaces)."""
    from ..dicom_export import current_review

    scan = delivery.scan
    if delivery.kind == PacsDelivery.Kind.REJECTION:
        return None
    if delivery.generation != scan.capture_generation:
        return "a new instance of the scan's result (its withdrawal was undone, or the patient's details changed)"
    latest = scan.latest_prediction
    if latest != delivery.prediction:
        return "a newer result of the scan"
    # A review judges the scan's latest result, so a newer one of this result is the only other reading there is.
    return "a newer review of the result" if current_review(scan, latest) != delivery.review else None


def _fail(delivery: PacsDelivery, reason: str) -> PacsDelivery:
    delivery.status, delivery.last_error = PacsDelivery.Status.FAILED, reason[:300]
    delivery.save(update_fields=["status", "last_error"])
    return delivery


def pacs_deliver(*, delivery_id: int) -> PacsDelivery | None:
    """Send one result's capture or report (or a rejection note) to the archive. Safe to call twice: a delivered or
    failed one is left alone. Raises PacsNotDelivered when this attempt failed and another is allowed."""
    from ..dicom_export import NotExportable, capture_patient, scan_result_capture
    from ..dicom_rejection import delivery_note
    from ..dicom_report import scan_result_report

    with transaction.atomic():
        delivery = (PacsDelivery.objects.select_for_update(of=("self",)).select_related("organization")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status != PacsDelivery.Status.PENDING:
            return delivery
        organization = delivery.organization
        if not organization.pacs_url:
            return _fail(delivery, "Not sent: sending results to the archive was turned off before it left.")
        scan = delivery.scan  # None for the note of an erasure
        if delivery.kind in PacsDelivery.RESULTS and scan.is_withdrawn:
            return _fail(delivery, "Not sent: the scan was withdrawn as entered in error.")
        replaced = _replaced_by(delivery)
        if replaced:
            return _fail(delivery, f"Not sent: {replaced} replaced it, and is sent on its own.")
        # To the archive set now, with the credentials set now.
        delivery.url = organization.pacs_url
        delivery.attempts += 1
        delivery.save(update_fields=["url", "attempts"])
    dicom = dimse.parse(delivery.url)
    unreadable = _unreadable_credential(organization, dicom=dicom is not None)
    if unreadable:
        return outbound.attempt_record(delivery, answer=outbound.Answer(None, b"", ""), delivered=False,
                                       error=f"Not sent: {unreadable}", final=True)
    client = client_certificates.of(organization)
    # No lock or transaction while the archive takes its time to answer.
    try:
        if delivery.kind == PacsDelivery.Kind.REJECTION:
            instance = delivery_note(delivery)
        else:
            build = scan_result_report if delivery.kind == PacsDelivery.Kind.REPORT else scan_result_capture
            instance = build(scan=scan, prediction=delivery.prediction, review=delivery.review)
            # As the archive is given the patient: a later change to the record replaces it (pacs_rejections).
            PacsDelivery.objects.filter(pk=delivery.pk).update(filed_as=list(capture_patient(scan)))
    except NotExportable as exc:
        return outbound.attempt_record(delivery, answer=outbound.Answer(None, b"", ""), delivered=False,
                                       error=f"Not sent: {exc}", final=True)
    if dicom is not None:
        outcome = dimse.store(dicom, instance, calling=settings.KIDNEYWEB_DICOM_AE_TITLE, client=client)
        return _forget_erased(outbound.attempt_record(delivery, answer=outbound.Answer(None, b"", ""), **outcome))
    body, content_type = stow.multipart(instance)
    more = {"Content-Type": content_type, "Accept": "application/dicom+json"}
    try:
        answer = outbound.post(f"{delivery.url}/studies", body=body, headers=_headers(organization, **more),
                               receiver="archive", context=client_certificates.https_context(client))
        if answer.status == 401 and organization.pacs_token_url:
            # A token revoked before its time: one more try with a new one.
            archive_oauth.forget(organization)
            answer = outbound.post(f"{delivery.url}/studies", body=body, headers=_headers(organization, **more),
                                   receiver="archive", context=client_certificates.https_context(client))
    except archive_oauth.TokenUnavailable as exc:
        return outbound.attempt_record(delivery, answer=outbound.Answer(None, b"", ""), delivered=False,
                                       error=exc.reason, final=exc.final)
    refusal = client_certificates.https_refusal(delivery.url, client) if answer.status is None else ""
    if refusal:
        return outbound.attempt_record(delivery, answer=answer, delivered=False, error=refusal, final=True)
    return _forget_erased(outbound.attempt_record(delivery, answer=answer,
                                                  **stow.outcome(answer, delivery.sop_instance_uid)))


def _forget_erased(delivery: PacsDelivery) -> PacsDelivery:
    """Once the archive stored an erasure's note, forget the patient's details and study it named: nothing sends
    it again, and kidneyweb keeps nothing of the person (the UIDs of its own results stay, to say what was asked)."""
    if delivery.erasure_id is not None and delivery.status == PacsDelivery.Status.DELIVERED:
        delivery.filed_as, delivery.filed_in = [], {}
        PacsDelivery.objects.filter(pk=delivery.pk).update(filed_as=[], filed_in={})
    return delivery


@transaction.atomic
def pacs_send_again(*, delivery: PacsDelivery, by: AbstractBaseUser) -> PacsDelivery:
    """Send a result the archive did not store again (its cause fixed: the archive back, the credentials right),
    with a fresh round of attempts, to the archive set now."""
    delivery = PacsDelivery.objects.select_for_update(of=("self",)).select_related("organization").get(pk=delivery.pk)
    if delivery.status != PacsDelivery.Status.FAILED:
        raise ValidationError(f"Only a result the archive did not store can be sent again; this one is "
                              f"{delivery.get_status_display().lower()}.")
    if delivery.erasure_id is not None and not delivery.filed_in:
        raise ValidationError("Asking the archive to delete this erased record's results was given up, and the "
                              "patient's details the note needs were forgotten: it cannot be sent again.")
    if not delivery.organization.pacs_url:
        raise ValidationError("Set the archive's address first.")
    outbound.send_again_reset(delivery, by=by)
    transaction.on_commit(partial(enqueue_delivery, delivery.pk))
    return delivery


MAX_BACKFILL = 5000  # results per request: a longer history is sent a period at a time


@transaction.atomic
def pacs_send_since(*, organization: Organization, since: datetime.date, by: AbstractBaseUser) -> int:
    """Send the results that finished on or after ``since`` and were never sent (they finished before the archive was
    set): for each DICOM slice not withdrawn, its current capture (the newest result, with its current review).
    Returns how many are queued; refused for a date in the future or more than MAX_BACKFILL results at once."""
    from ..dicom_export import current_review

    if not organization.pacs_url:
        raise ValidationError("Set the archive's address first.")
    if since > timezone.localdate():
        raise ValidationError({"since": ["Choose a day that has passed."]})
    start = timezone.make_aware(datetime.datetime.combine(since, datetime.time.min))
    scans = (Scan.objects.filter(patient__organization=organization, withdrawn_at=None)
             .exclude(dicom_study_uid="").filter(predictions__status=Prediction.Status.DONE,
                                                  predictions__finished_at__gte=start)
             .distinct().prefetch_related(Prefetch("predictions", queryset=Prediction.objects.select_related(
                 "model_version").prefetch_related("pacs_deliveries")), "reviews"))
    queued = []
    for scan in scans:
        prediction = scan.latest_prediction
        if prediction is None or prediction.status != Prediction.Status.DONE or prediction.finished_at < start:
            continue
        review = current_review(scan, prediction)
        sent = {delivery.kind for delivery in prediction.pacs_deliveries.all()
                if delivery.review_id == (review.pk if review else None)
                and delivery.generation == scan.capture_generation}
        if sent >= set(result_kinds(organization, scan)):
            continue  # sent already (or being sent): "Send again" is for those
        queued.append((prediction, review))
        if len(queued) > MAX_BACKFILL:
            raise ValidationError({"since": [f"More than {MAX_BACKFILL} results finished since {since:%Y-%m-%d}: "
                                             "choose a later day, and send the earlier ones after."]})
    for prediction, review in queued:
        _queue(organization=organization, prediction=prediction, review=review)
    if queued:
        policy_change_record(organization=organization, by=by,
                             detail=f"{len(queued)} earlier AI results to the archive (since {since:%Y-%m-%d})")
    return len(queued)


def pacs_send_failed_again(*, organization: Organization, by: AbstractBaseUser) -> int:
    """Send every result (and rejection note) the archive did not store again, for after an outage: results of
    withdrawn scans and replaced results (or reviews) are left as they are. Returns how many are sent."""
    failed = PacsDelivery.objects.filter(
        Q(scan__withdrawn_at=None) | Q(kind=PacsDelivery.Kind.REJECTION),
        organization=organization, status=PacsDelivery.Status.FAILED).exclude(
        erasure__archive_given_up_at__isnull=False)
    sent = 0
    for delivery in failed.select_related("scan"):
        if _replaced_by(delivery) is None:
            pacs_send_again(delivery=delivery, by=by)
            sent += 1
    return sent


def pacs_resend_lost(*, now=None) -> list[int]:
    """Send again the results whose task was lost; give up on those a day old (outbound.resend_lost)."""
    return outbound.resend_lost(PacsDelivery.objects.filter(status=PacsDelivery.Status.PENDING),
                                now=now or timezone.now(), enqueue=enqueue_delivery)

"""Where the organization's AI results are sent in its archive (PACS), and how each went."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ...models import PacsDelivery


class ArchiveClientCertificateSerializer(serializers.Serializer):
    """kidneyweb's TLS client certificate for archives that admit only certificates of the hospital's CA."""

    certificate = serializers.CharField(
        write_only=True, max_length=64 * 1024,
        help_text="PEM: kidneyweb's certificate, then any intermediate CAs' certificates.")
    key = serializers.CharField(write_only=True, max_length=64 * 1024, trim_whitespace=False,
                                help_text="PEM, without a passphrase. Kept sealed; never answered.")
    subject = serializers.CharField(read_only=True, help_text="Whom the certificate names (its common name).")
    issuer = serializers.CharField(read_only=True, help_text="The CA that issued it.")
    not_after = serializers.DateTimeField(read_only=True, help_text="Valid until then: upload its successor before.")
    sha256 = serializers.CharField(read_only=True, help_text="The certificate's SHA-256 fingerprint (of its DER form).")
    expires_soon = serializers.SerializerMethodField(help_text="Within 30 days of expiry (or expired).")

    def get_expires_soon(self, summary) -> bool:
        return summary.expires_soon()


class ArchiveOAuthSerializer(serializers.Serializer):
    """OAuth 2.0 client credentials for a DICOMweb archive behind an authorization server."""

    token_url = serializers.CharField(max_length=500, help_text="The authorization server's token endpoint; kidneyweb "
                                      "then sends a bearer token instead of the user name and password.")
    client_id = serializers.CharField(max_length=200)
    client_secret = serializers.CharField(max_length=500, required=False, default="", allow_blank=True,
                                          write_only=True, trim_whitespace=False,
                                          help_text="Never answered. Empty or absent keeps the one set for the same "
                                                    "client id.")
    scope = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)
    secret_set = serializers.BooleanField(read_only=True, help_text="Whether a secret is kept for the client.")


class ArchiveSettingsSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, allow_blank=True,
                                help_text="The archive's DICOMweb base address (results are POSTed to its /studies, "
                                          "STOW-RS), https unless the deployment allows http; or dicoms://AE_TITLE@"
                                          "host:port for DICOM's own protocol over TLS (C-STORE; dicom:// without TLS "
                                          "where the deployment allows it; no user name or password). Empty: none are "
                                          "sent.")
    username = serializers.CharField(max_length=150, allow_blank=True, required=False, default="",
                                     help_text="The archive's user, for HTTP Basic authentication; empty: none.")
    password = serializers.CharField(max_length=200, allow_blank=True, required=False, default="", write_only=True,
                                     trim_whitespace=False,
                                     help_text="Never answered. Empty or absent keeps the one set for the same user.")
    password_set = serializers.BooleanField(read_only=True, help_text="Whether a password is kept for the user.")
    send_reports = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="Whether each result is also sent as a DICOM Structured Report (TID 1500, IHE AI Results; "
                  "scans/{id}/dicom-sr/) beside its capture. Absent or null keeps the setting.")
    oauth = ArchiveOAuthSerializer(read_only=True, allow_null=True,
                                   help_text="OAuth 2.0 client credentials used instead of the user name and "
                                             "password; null: none (set at oauth/).")
    client_certificate = ArchiveClientCertificateSerializer(
        read_only=True, allow_null=True,
        help_text="The TLS client certificate kidneyweb presents to the archive; null: none "
                  "(set at client-certificate/).")


class ArchiveDeliverySerializer(serializers.ModelSerializer):
    """One AI result (or rejection note) sent to the archive, and how it went."""

    kind = serializers.ChoiceField(
        choices=PacsDelivery.Kind.choices, read_only=True,
        help_text="capture: an AI result (with its review); report: the same as a structured report, where they "
                  "are sent; rejection: the note (IHE IOCM) rejecting the captures (and reports) the archive was "
                  "sent of the scan, when it was withdrawn or they named the patient as no longer recorded (details "
                  "corrected, records merged: new captures follow), or asking the archive to delete them when the "
                  "patient's data was erased (then scan is null and erasure set)")
    scan = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True,
                                              help_text="The scan; null for the note of an erased record.")
    erasure = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True,
        help_text="The erasure (erasures/) whose captures a note asks the archive to delete; null otherwise.")
    description = serializers.CharField(read_only=True, help_text="Why a rejection note rejects them; \"\" for a capture.")
    instance_uid = serializers.CharField(source="sop_instance_uid", read_only=True,
                                         help_text="The SOPInstanceUID of the instance sent: the same for every try.")
    prediction = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True,
                                                    help_text="The result sent; null for a rejection note.")
    review = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The clinician's review the capture states; null: the AI result alone.")
    rejected_instance_uids = serializers.SerializerMethodField(
        help_text="What a rejection note rejects: the captures of the scan the archive was sent; [] for a capture.")
    sent_again_by = serializers.SerializerMethodField(help_text="Who sent it again after it was not stored.")

    class Meta:
        model = PacsDelivery
        fields = ["id", "kind", "scan", "erasure", "prediction", "review", "instance_uid", "rejected_instance_uids", "description", "url",
                  "status", "attempts", "response_status", "last_error", "created_at", "delivered_at", "sent_again_at",
                  "sent_again_by"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_rejected_instance_uids(self, delivery: PacsDelivery) -> list[str]:
        return [capture["instance"] for capture in delivery.rejected]

    def get_sent_again_by(self, delivery: PacsDelivery) -> str | None:
        return delivery.sent_again_by.get_username() if delivery.sent_again_by_id else None


class ArchiveCheckSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What the archive answered, in words.")


class ArchiveSinceSerializer(serializers.Serializer):
    since = serializers.DateField(help_text="Send the results that finished on or after this day and were never sent.")


class ArchiveSentSerializer(serializers.Serializer):
    sent = serializers.IntegerField(help_text="How many results are being sent (again).")

"""Where the organization's results go as HL7 v2 messages (its record system, over MLLP), and how each went."""

from __future__ import annotations

from rest_framework import serializers

from ...models import Hl7Delivery


class RecordSystemSettingsSerializer(serializers.Serializer):
    address = serializers.CharField(
        max_length=300, allow_blank=True,
        help_text="The record system's (or interface engine's) HL7 listener: mllps://host:port, MLLP over TLS; "
                  "mllp:// unencrypted only where the deployment allows it. Empty: no messages are sent.")
    receiving_application = serializers.CharField(max_length=20, allow_blank=True, required=False, default="",
                                                  help_text="MSH-5, for an engine that routes by it.")
    receiving_facility = serializers.CharField(max_length=20, allow_blank=True, required=False, default="",
                                               help_text="MSH-6, for an engine that routes by it.")


class RecordSystemSinceSerializer(serializers.Serializer):
    since = serializers.DateField(help_text="Send the results of scans diagnosed on or after this day of which the "
                                            "record system was sent nothing.")


class RecordSystemDeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(read_only=True, help_text="The change that sent it: diagnosis.finished, "
                                  "review.saved, scan.withdrawn or scan.restored; earlier.result for a result sent "
                                  "with send-since.")
    address = serializers.CharField(source="url", read_only=True, help_text="Where it was (last) sent.")
    control_id = serializers.CharField(read_only=True, help_text="MSH-10 of the message as last sent: a digest of "
                                       "its content (GET scans/{id}/hl7/ gives the same state's message).")
    ack_code = serializers.CharField(read_only=True, help_text="MSA-1 of the record system's last answer: AA "
                                     "accepted, AE error (tried again), AR rejected (not tried again); empty: none.")
    sent_again_by = serializers.CharField(source="sent_again_by.username", read_only=True, allow_null=True,
                                          default=None)

    class Meta:
        model = Hl7Delivery
        fields = ["id", "scan", "event", "address", "status", "attempts", "control_id", "ack_code", "last_error",
                  "created_at", "delivered_at", "sent_again_at", "sent_again_by"]
        read_only_fields = fields

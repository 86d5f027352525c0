"""Members of the organization, the record of staff changes, and result notifications."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ... import selectors
from ...models import WEBHOOK_EVENTS, Membership, StaffChange, WebhookDelivery


class MemberSerializer(serializers.Serializer):
    """A member as the Members page shows them (from ``selectors.organization_members``)."""

    id = serializers.IntegerField(source="user_id", read_only=True, help_text="The user's id: the member's address in the API.")
    username = serializers.CharField(source="user.username", read_only=True)
    first_name = serializers.CharField(source="user.first_name", read_only=True)
    last_name = serializers.CharField(source="user.last_name", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    role = serializers.ChoiceField(choices=Membership.Role.choices, read_only=True)
    is_active = serializers.BooleanField(source="user.is_active", read_only=True,
                                         help_text="False once deactivated: no login, no API token.")
    by_groups = serializers.BooleanField(read_only=True, help_text="Added at a sign-on because the hospital's groups "
                                         "named them: role and access follow those groups at each sign-on.")
    by_directory = serializers.BooleanField(read_only=True, help_text="Added or managed by the hospital's directory "
                                            "over SCIM (/scim/v2/): it changes their names, role and access.")
    must_change_password = serializers.BooleanField(source="password_change_required", read_only=True,
                                                    help_text="Holds a temporary password, to be replaced at the next login.")
    two_factor = serializers.BooleanField(source="has_two_factor", read_only=True,
                                          help_text="Has an authenticator app set up.")
    recovery_codes_left = serializers.IntegerField(read_only=True,
                                                   help_text="Unused recovery codes; with none, a lost phone needs a reset.")
    login_locked = serializers.SerializerMethodField(help_text="Too many wrong passwords lately: logins are refused for now.")
    has_api_token = serializers.BooleanField(read_only=True)
    api_token_prefix = serializers.CharField(
        source="token_prefix", read_only=True, allow_null=True,
        help_text="The API token's first characters, to tell which one a hospital system holds; null: no token. "
        "The rest is shown only when issued.")
    api_token_expires = serializers.DateTimeField(
        source="token_expires", read_only=True, allow_null=True,
        help_text="When the API token stops working, under the organization's token lifetime; null: no token, or "
                  "tokens that do not expire.")
    api_token_last_used = serializers.DateTimeField(
        source="token_last_used", read_only=True, allow_null=True,
        help_text="When the API token last authenticated a request (to within 5 minutes); null: never, or no token.")
    last_login = serializers.DateTimeField(source="user.last_login", read_only=True, allow_null=True)
    member_since = serializers.DateTimeField(source="created_at", read_only=True)

    def get_login_locked(self, membership: Membership) -> bool:
        return selectors.member_login_locked(membership)


class MemberCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    first_name = serializers.CharField(max_length=150, required=False, default="", allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, default="", allow_blank=True)
    email = serializers.EmailField(required=False, default="", allow_blank=True)
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.CLINICIAN)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices, required=False)
    is_active = serializers.BooleanField(required=False, help_text="False deactivates the member (a leaver), true reactivates.")
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True,
                                   help_text="Why the member is deactivated; recorded with the change.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "role" not in attrs and "is_active" not in attrs:
            raise serializers.ValidationError({"non_field_errors": ["Send role, is_active or both."]})
        return attrs


class MemberWithPasswordSerializer(serializers.Serializer):
    member = MemberSerializer(read_only=True)
    temporary_password = serializers.CharField(
        read_only=True, allow_null=True, help_text="Shown only in this answer, to hand over in person: it opens "
        "nothing but choosing the member's own password at their first login. null where members log in through "
        "the hospital's sign-on only.")


class StaffChangeSerializer(serializers.ModelSerializer):
    member = serializers.CharField(source="member.get_username", read_only=True)
    by = serializers.SerializerMethodField(help_text="Who made the change; null when made on the server's command line.")

    class Meta:
        model = StaffChange
        fields = ["at", "member", "by", "action", "detail"]
        read_only_fields = fields

    def get_by(self, change: StaffChange) -> str | None:
        return change.by.get_username() if change.by_id else None


class NotificationSettingsSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, allow_blank=True,
                                help_text="Where result notifications are POSTed (https); empty: none are sent.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(WEBHOOK_EVENTS)), required=False,
        help_text="The events sent; absent: unchanged (all, until chosen). A test (ping) is always sent.")


class NotificationEventsSerializer(serializers.Serializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=list(WEBHOOK_EVENTS)),
                                   help_text="The events sent. The address and its secret stay.")


class NotificationSettingsWithSecretSerializer(NotificationSettingsSerializer):
    secret = serializers.CharField(
        read_only=True, allow_null=True, help_text="The new signing secret, shown only in this answer: each new "
        "address gets one. Null when notifications were turned off.")


class NotificationSerializer(serializers.ModelSerializer):
    """One result notification and how its delivery went."""

    delivery = serializers.UUIDField(source="uuid", read_only=True,
                                     help_text="Sent as X-Kidneyweb-Delivery: the same for every try and for a resend.")
    scan = serializers.SerializerMethodField(help_text="The scan it is about; null for a test notification.")
    sent_again_by = serializers.SerializerMethodField(help_text="Who sent it again after it was given up on.")

    class Meta:
        model = WebhookDelivery
        fields = ["id", "delivery", "event", "scan", "status", "attempts", "response_status", "last_error",
                  "created_at", "delivered_at", "sent_again_at", "sent_again_by", "payload"]
        read_only_fields = fields

    def get_scan(self, delivery: WebhookDelivery) -> int | None:
        return (delivery.payload.get("scan") or {}).get("id")

    def get_sent_again_by(self, delivery: WebhookDelivery) -> str | None:
        return delivery.sent_again_by.get_username() if delivery.sent_again_by_id else None


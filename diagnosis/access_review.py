"""The organization's members and the changes made to them as CSV, for a periodic access review: who can open patient
records now, with what role, managed by whom and how they log in; and who was given, changed or lost that access in a
period, by whom. Every cell is safe to open in a spreadsheet (``access_log.cell``)."""

from __future__ import annotations

import datetime

from .access_log import cell
from .models import Membership, StaffChange

MEMBER_HEADER = ["username", "name", "email", "role", "status", "managed by", "two-factor", "member since",
                 "last login", "API token issued", "API token last used", "API token expires"]
CHANGE_HEADER = ["time", "member", "by", "change", "detail"]


def _time(value: datetime.datetime | None, zone: datetime.tzinfo) -> str:
    return value.astimezone(zone).isoformat(timespec="seconds") if value else ""


def _managed_by(membership: Membership) -> str:
    if membership.by_groups:
        return "the hospital's groups"
    if membership.by_directory:
        return "the hospital's directory (SCIM)"
    return "administrators"


def member_row(membership: Membership, *, zone: datetime.tzinfo) -> list[str]:
    """One member as ``selectors.organization_members`` gives them (with their token and two-factor state)."""
    user = membership.user
    return [cell(value) for value in (
        user.get_username(), user.get_full_name(), user.email, membership.get_role_display(),
        "active" if user.is_active else "deactivated", _managed_by(membership),
        "on" if membership.has_two_factor else "off", _time(membership.created_at, zone), _time(user.last_login, zone),
        _time(membership.token_created, zone), _time(membership.token_last_used, zone),
        _time(membership.token_expires, zone))]


def change_row(change: StaffChange, *, zone: datetime.tzinfo) -> list[str]:
    return [cell(value) for value in (
        _time(change.at, zone), change.member.get_username(), change.made_by(), change.get_action_display(),
        change.detail)]

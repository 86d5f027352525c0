"""SCIM 2.0 (RFC 7643) users as kidneyweb keeps them, and what a directory's request says of a person (RFC 7644: a
POST's or PUT's resource, a PATCH's operations), read into services.scim.ScimUser.

Read as the directories write them: Entra ID sends ``"Replace"`` and booleans as the strings ``"True"``/``"False"``,
and paths such as ``emails[type eq "work"].value`` and ``roles[primary eq "True"].value``; Okta sends a PATCH
without paths. Attributes kidneyweb does not keep (a title, a department, a phone number) are accepted and not
stored, so a directory's attribute mapping need not be cut to kidneyweb's."""

from __future__ import annotations

import re
from typing import Any

from ...models import Membership
from ...services.scim import ScimUser

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ROLES = {"admin": Membership.Role.ADMIN, "administrator": Membership.Role.ADMIN,
         "clinician": Membership.Role.CLINICIAN}


class ScimInvalid(ValueError):
    """A request kidneyweb cannot read; ``scim_type`` is RFC 7644's (invalidValue, invalidSyntax, invalidPath...)."""

    def __init__(self, detail: str, scim_type: str = "invalidValue") -> None:
        super().__init__(detail)
        self.scim_type = scim_type


def user_resource(membership: Membership, *, location: str) -> dict[str, Any]:
    user = membership.user
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "id": str(user.pk),
        "userName": user.get_username(),
        "name": {"givenName": user.first_name, "familyName": user.last_name,
                 "formatted": user.get_full_name() or user.get_username()},
        "displayName": user.get_full_name() or user.get_username(),
        "active": user.is_active,
        "roles": [{"value": membership.role, "display": membership.get_role_display(), "primary": True}],
        "meta": {"resourceType": "User", "created": membership.created_at.isoformat(), "location": location},
    }
    if membership.scim_external_id:
        resource["externalId"] = membership.scim_external_id
    if user.email:
        resource["emails"] = [{"value": user.email, "type": "work", "primary": True}]
    return resource


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ScimInvalid(f"active must be true or false, not {value!r}.")


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ScimInvalid(f"{name} must be a string.")
    return value


def _role(value: Any) -> str | None:
    """The role of a ``roles`` value: a list of {value, primary}, one such object, or the value itself."""
    if value in (None, [], ""):
        return None
    if isinstance(value, list):
        chosen = next((each for each in value if isinstance(each, dict) and _primary(each)), value[0])
        return _role(chosen)
    if isinstance(value, dict):
        return _role(value.get("value"))
    role = ROLES.get(str(value).strip().lower())
    if role is None:
        raise ScimInvalid(f"Unknown role {value!r}: kidneyweb's roles are clinician and admin.")
    return role


def _primary(entry: dict) -> bool:
    try:
        return _boolean(entry.get("primary", False))
    except ScimInvalid:
        return False


def _email(value: Any) -> str | None:
    if value in (None, []):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _text(value.get("value"), "emails.value")
    if isinstance(value, list):
        entries = [each for each in value if isinstance(each, dict)]
        chosen = (next((each for each in entries if _primary(each)), None)
                  or next((each for each in entries if each.get("type") == "work"), None)
                  or (entries[0] if entries else None))
        return _text(chosen.get("value"), "emails.value") if chosen else ""
    raise ScimInvalid("emails must be a list of {value, type, primary}.")


def person_from_resource(data: Any) -> ScimUser:
    """The person a POST or PUT body describes. A PUT replaces: what it leaves out is emptied, except the role,
    which a directory that does not map roles never sends and would otherwise demote everyone it updates."""
    if not isinstance(data, dict):
        raise ScimInvalid("The body must be a SCIM User resource (a JSON object).", "invalidSyntax")
    name = data.get("name") or {}
    if not isinstance(name, dict):
        raise ScimInvalid("name must be an object with givenName and familyName.")
    active = data.get("active", True)
    return ScimUser(
        user_name=_text(data.get("userName"), "userName"),
        given_name=_text(name.get("givenName"), "name.givenName"),
        family_name=_text(name.get("familyName"), "name.familyName"),
        email=_email(data.get("emails")) or "",
        external_id=_text(data.get("externalId"), "externalId"),
        active=_boolean(active),
        role=_role(data.get("roles")),
    )


_FILTERED = re.compile(r'^(?P<attribute>\w+)\[(?P<filter>[^\]]*)\](?:\.(?P<sub>\w+))?$')


def _apply(values: dict[str, Any], path: str, value: Any, remove: bool) -> None:
    """One attribute of a PATCH into ``values`` (ScimUser's fields); attributes not kept here are passed over."""
    path = path.strip()
    if path.startswith(USER_SCHEMA + ":"):
        path = path[len(USER_SCHEMA) + 1:]
    lowered = path.lower()
    match = _FILTERED.match(path)
    if match:  # emails[type eq "work"].value, roles[primary eq "True"].value: the one kind kidneyweb keeps
        attribute = match["attribute"].lower()
        if attribute == "emails":
            values["email"] = "" if remove else _text(value, "emails.value")
        elif attribute == "roles":
            values["role"] = Membership.Role.CLINICIAN if remove else _role(value)
        return
    if lowered == "active":
        if remove:
            raise ScimInvalid("active cannot be removed: replace it with true or false.", "mutability")
        values["active"] = _boolean(value)
    elif lowered == "username":
        if remove or not _text(value, "userName").strip():
            raise ScimInvalid("userName cannot be removed.", "mutability")
        values["user_name"] = value
    elif lowered == "externalid":
        values["external_id"] = "" if remove else _text(value, "externalId")
    elif lowered == "name.givenname":
        values["given_name"] = "" if remove else _text(value, "name.givenName")
    elif lowered == "name.familyname":
        values["family_name"] = "" if remove else _text(value, "name.familyName")
    elif lowered == "name":
        name = {} if remove else value
        if not isinstance(name, dict):
            raise ScimInvalid("name must be an object with givenName and familyName.")
        for key, field in (("givenName", "given_name"), ("familyName", "family_name")):
            if remove or key in name:
                values[field] = _text(name.get(key), f"name.{key}")
    elif lowered == "emails":
        values["email"] = "" if remove else (_email(value) or "")
    elif lowered == "roles":
        values["role"] = Membership.Role.CLINICIAN if remove else (_role(value) or Membership.Role.CLINICIAN)


def person_from_patch(data: Any) -> ScimUser:
    """The changes a PATCH body's operations make (RFC 7644 3.5.2): add and replace set, remove empties."""
    if not isinstance(data, dict) or not isinstance(data.get("Operations"), list):
        raise ScimInvalid("The body must be a PatchOp with a list of Operations.", "invalidSyntax")
    values: dict[str, Any] = {}
    for operation in data["Operations"]:
        if not isinstance(operation, dict):
            raise ScimInvalid("Each operation must be an object with op, path and value.", "invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise ScimInvalid(f"Unknown op {operation.get('op')!r}: add, replace or remove.", "invalidSyntax")
        path, value = operation.get("path"), operation.get("value")
        if path:
            _apply(values, str(path), value, remove=op == "remove")
        elif op == "remove":
            raise ScimInvalid("A remove needs a path.", "noTarget")
        elif isinstance(value, dict):  # no path: the value names the attributes (Okta)
            for attribute, each in value.items():
                _apply(values, attribute, each, remove=False)
        else:
            raise ScimInvalid("Without a path, the value must be an object of attributes.", "invalidSyntax")
    return ScimUser(**values)

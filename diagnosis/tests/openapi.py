"""Check an API answer against the OpenAPI schema the API itself publishes (what integrators code against)."""

from __future__ import annotations

from typing import Any

import jsonschema


def _as_json_schema(node: Any) -> Any:
    # OpenAPI 3.0 marks null with "nullable"; JSON Schema spells it as a second type.
    if isinstance(node, dict):
        node = {key: _as_json_schema(value) for key, value in node.items() if key not in ("readOnly", "writeOnly")}
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
        if "$ref" in node:
            node["$ref"] = node["$ref"].replace("#/components/schemas/", "#/$defs/")
        return node
    if isinstance(node, list):
        return [_as_json_schema(value) for value in node]
    return node


def load(client) -> dict[str, Any]:
    from django.test import override_settings

    # Published for this read whoever the client is signed in as (the schema is for signed-in users).
    with override_settings(KIDNEYWEB_API_DOCS_PUBLIC=True):
        return client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def mismatches(schema: dict[str, Any], path: str, method: str, response) -> list[str]:
    """What is wrong with ``response`` for ``method path`` by the schema: an undocumented status, or
    a JSON body that does not match the documented one. Empty when it conforms."""
    operation = schema["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    where = f"{method.upper()} {path} {response.status_code}"
    if documented is None:
        return [f"{where}: status not documented ({response.content[:200]!r})"]
    content = (documented.get("content") or {}).get("application/json")
    if content is None:
        return []
    body_schema = _as_json_schema(content["schema"])
    body_schema["$defs"] = {name: _as_json_schema(s) for name, s in schema["components"]["schemas"].items()}
    errors = jsonschema.Draft202012Validator(body_schema).iter_errors(response.json())
    return [f"{where}: {list(error.absolute_path)}: {error.message[:200]}" for error in errors]

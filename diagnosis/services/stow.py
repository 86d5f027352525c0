"""DICOMweb's store (STOW-RS, PS3.18 10.5) as the archive speaks it: one instance as a multipart request body, and
how the archive's answer counts: stored, refused for good (with the archive's failure reason in words) or worth
another attempt. The DIMSE counterpart is ``dimse``."""

from __future__ import annotations

import json
import secrets
from typing import Any

from . import outbound

# PS3.4 Annex GG and PS3.18 (Failure Reason, 0008,1197): what the archive's codes mean, for the administrator.
FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0122: "it does not store this kind of instance (Secondary Capture)",
    0x0124: "not authorized",
    0xA700: "out of resources",
    0xA900: "the data set does not match its SOP class",
    0xC000: "it could not understand the instance",
    0xC122: "it does not take the instance's transfer syntax",
}
_FAILED_SOP_SEQUENCE, _REFERENCED_SOP_INSTANCE, _FAILURE_REASON = "00081198", "00081155", "00081197"
# Answers that may change when asked again: a timeout, too early, too many requests.
_RETRYABLE_4XX = {408, 425, 429}
HINTS = {
    401: "Check the credentials set for the archive (its user name and password, or its OAuth 2.0 client).",
    403: "Check that the archive lets this user store instances.",
    404: "Check the archive's DICOMweb address.",
    413: "The archive takes no instances this large.",
    415: "The archive does not take DICOM here: check its DICOMweb address.",
}



def multipart(instance: bytes) -> tuple[bytes, str]:
    """A STOW-RS request body of one instance, and its Content-Type."""
    boundary = "kidneyweb-" + secrets.token_hex(16)
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + instance
            + f"\r\n--{boundary}--\r\n".encode())
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def _failure_reason(body: bytes, instance_uid: str) -> str | None:
    """The archive's reason for refusing ``instance_uid``, from a STOW-RS answer (PS3.18 10.5.3): None when the
    answer names no failure of it (or is not the DICOM JSON it should be)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if isinstance(answer, list):  # some archives wrap the one data set in an array
        answer = answer[0] if answer else {}
    if not isinstance(answer, dict):
        return None
    for item in (answer.get(_FAILED_SOP_SEQUENCE) or {}).get("Value") or []:
        uids = (item.get(_REFERENCED_SOP_INSTANCE) or {}).get("Value") or []
        if uids and instance_uid not in uids:
            continue
        codes = (item.get(_FAILURE_REASON) or {}).get("Value") or []
        if not codes:
            return "The archive refused the instance and gave no reason."
        code = int(codes[0])
        meaning = FAILURE_REASONS.get(code) or ("out of resources" if 0xA700 <= code <= 0xA7FF else
                                                 "it could not understand the instance" if 0xC000 <= code <= 0xCFFF else
                                                 "no reason kidneyweb knows")
        return f"The archive refused the instance: failure reason {code:#06x} ({meaning})."
    return None


def outcome(answer: outbound.Answer, instance_uid: str) -> dict[str, Any]:
    """How one STOW-RS answer counts: delivered, refused for good (final) or worth another attempt."""
    if answer.status is None:
        return {"delivered": False, "error": answer.error}
    refused = _failure_reason(answer.body, instance_uid) if answer.body else None
    if answer.ok:
        # 200: stored; 202: stored with warnings, or some instances refused (ours among them or not).
        return {"delivered": True, "error": ""} if refused is None else {"delivered": False, "final": True,
                                                                         "error": refused}
    if answer.status == 409 or (400 <= answer.status < 500 and answer.status not in _RETRYABLE_4XX):
        hint = HINTS.get(answer.status, "")
        return {"delivered": False, "final": True, "error": " ".join(filter(None, [answer.error, refused, hint]))}
    return {"delivered": False, "error": answer.error}

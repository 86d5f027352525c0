"""What an authenticator app computes (RFC 6238, SHA-1, 30 s, 6 digits), written apart from the library
the app uses, so that tests check the codes a phone would show."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time


def totp(key: bytes, at: float | None = None, *, step: int = 30, digits: int = 6) -> str:
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 10 ** digits
    return f"{code:0{digits}d}"


def key_from_page(html: str) -> bytes:
    """The key the setup page shows for typing into an app (base32, in groups of four)."""
    shown = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', html).group(1).replace(" ", "")
    return base64.b32decode(shown + "=" * (-len(shown) % 8))


def settled_totp(key: bytes, *, step: int = 30, margin: float = 5.0) -> str:
    """The current code, after waiting out the last seconds of a step: a code checked in the step after
    the one it was made in makes django-otp record a clock drift of -1 step, and the next step's code
    is then refused."""
    left = step - time.time() % step
    if left < margin:
        time.sleep(left + 0.5)
    return totp(key)


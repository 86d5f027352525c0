"""The 400 page: say what was wrong where Django knows it, instead of a bare "Bad Request"."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, TooManyFilesSent):
        reason = (f"At most {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files can be sent in one upload, and this one "
                  "had more. Nothing was uploaded: go back and choose fewer files, or send the rest in a second upload.")
    elif isinstance(exception, TooManyFieldsSent):
        reason = "The form had too many fields to be read. Nothing was saved."
    else:
        reason = "The request could not be read. Nothing was saved; go back, reload the page and try again."
    return render(request, "400.html", {"reason": reason}, status=400)

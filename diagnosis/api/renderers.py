"""Renderers for endpoints that answer with a file or text, so clients may ask for that type in Accept.

Errors on those endpoints still arrive as JSON, and their Content-Type says so.
"""

from __future__ import annotations

from rest_framework.renderers import BaseRenderer, JSONRenderer


class FileRenderer(BaseRenderer):
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, str):
            return data.encode(self.charset or "utf-8")
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return JSONRenderer().render(data)


class PDFRenderer(FileRenderer):
    media_type = "application/pdf"
    format = "pdf"


class PNGRenderer(FileRenderer):
    media_type = "image/png"
    format = "png"


class JPEGRenderer(FileRenderer):
    media_type = "image/jpeg"
    format = "jpeg"


class ZipRenderer(FileRenderer):
    media_type = "application/zip"
    format = "zip"


class DicomRenderer(FileRenderer):
    media_type = "application/dicom"
    format = "dcm"


class PlainTextRenderer(FileRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"


class HL7Renderer(FileRenderer):
    media_type = "x-application/hl7-v2+er7"
    format = "hl7"
    charset = "utf-8"


class FHIRRenderer(FileRenderer):
    """FHIR resources as ``application/fhir+json``; anything else (an error) as plain JSON."""

    media_type = "application/fhir+json"
    format = "fhir"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, dict) and "resourceType" in data:
            return JSONRenderer().render(data)
        return super().render(data, accepted_media_type, renderer_context)


class DicomJSONRenderer(JSONRenderer):
    """DICOM's JSON model (PS3.18 F.2), as a DICOMweb client asks for it."""

    media_type = "application/dicom+json"
    format = "dicom-json"

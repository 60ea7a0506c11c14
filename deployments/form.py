"""The ``POST /v1/tryon`` multipart form: its fields, their OpenAPI description, and reading them with clear errors."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from deployments.errors import RequestError
from kgi.preprocess import Uploads

RESPONSE_KINDS = ("image", "json")
MAX_SEED = 2**32 - 1
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off", ""})

# Field name -> OpenAPI schema. Files first (a text value is accepted where "or text" is said).
TRYON_FIELDS: dict[str, dict] = {
    "person": {"type": "string", "format": "binary", "description": "Photo of the person (JPEG, PNG, WebP...)."},
    "garment": {"type": "string", "format": "binary",
                "description": "Flat product photo of the upper garment, ideally on a plain background."},
    "pose": {"type": "string", "format": "binary",
             "description": "OpenPose BODY_25 JSON of the person photo, as a file or text; estimated if left out "
                            "and the service has a pose estimator (else required)."},
    "parse": {"type": "string", "format": "binary",
              "description": "CIHP label PNG of the person photo, as VITON-HD's image-parse-v3; computed if left "
                             "out and the service has a human parser (else required)."},
    "cloth_mask": {"type": "string", "format": "binary",
                   "description": "Garment silhouette (white = garment); computed from a plain background if "
                                  "left out."},
    "garment_keypoints": {"type": "string",
                          "description": "JSON list of 32 [x, y] garment-graph keypoints in garment-photo pixels, "
                                         "as a file or text; extracted if left out."},
    "steps": {"type": "integer", "minimum": 1, "description": "Sampler steps; default: the version's."},
    "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED,
             "description": "Random seed; the same seed gives the same image. Default: random (returned)."},
    "version": {"type": "string", "description": "Model version (GET /v1/models); default: A/B routing."},
    "response": {"type": "string", "enum": list(RESPONSE_KINDS), "default": "image",
                 "description": "'image': PNG bytes; 'json': base64 PNG with version and timings."},
    "stages": {"type": "boolean", "default": False,
               "description": "With response=json: every intermediate image too."},
}
FILE_FIELDS = ("person", "garment", "parse", "cloth_mask")
FILE_OR_TEXT_FIELDS = ("pose", "garment_keypoints")
# Parser limits: generous, so that an unknown field is answered as such rather than as "too many fields".
MAX_FORM_PARTS = 32
TEXT_FIELDS_BYTES = 1 << 20  # allowance for the non-file fields in the request-size check

TRYON_OPENAPI = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["person", "garment"], "properties": TRYON_FIELDS}}}}}


@dataclass
class TryOnForm:
    """A read and checked try-on form.

    Attributes:
        uploads: the files and texts for ``Preprocess``.
        version: the version asked for by name, or None (routing decides).
        steps: sampler steps asked for, or None (the version's default).
        seed: the seed (drawn at random when the form has none).
        response: "image" or "json".
        stages: whether a json response carries every intermediate image.
    """

    uploads: Uploads
    version: str | None
    steps: int | None
    seed: int
    response: str
    stages: bool


def _single(form: FormData, name: str) -> UploadFile | str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise RequestError(f"{name}: sent {len(values)} times; send it once")
    return values[0] if values else None


async def _read_bytes(form: FormData, name: str, max_bytes: int, text_allowed: bool) -> tuple[bytes | None, str]:
    """A field's bytes (a file, or a text where allowed) and its file name; (None, name) when absent."""
    value = _single(form, name)
    if value is None:
        return None, name
    if isinstance(value, str):
        if not text_allowed:
            raise RequestError(f"{name}: expected a file upload, got a text field")
        data, filename = value.encode("utf-8"), name
    else:
        data, filename = await value.read(max_bytes + 1), value.filename or name
    if len(data) > max_bytes:
        raise RequestError(f"{name}: larger than the limit of {max_bytes} bytes", status=413,
                           code="payload_too_large")
    return data, filename


def _integer(form: FormData, name: str, low: int, high: int) -> int | None:
    value = _single(form, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name}: expected a text field, got a file")
    try:
        number = int(value.strip())
    except ValueError:
        raise RequestError(f"{name}: expected an integer, got {value[:40]!r}") from None
    if not low <= number <= high:
        raise RequestError(f"{name}: must be between {low} and {high}, got {number}")
    return number


def _text(form: FormData, name: str) -> str | None:
    value = _single(form, name)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{name}: expected a text field, got a file")
    return value.strip() if value is not None else None


async def _limited(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """``stream`` passed through, refused (413) as soon as more than ``max_bytes`` have arrived.

    What bounds a body that declares no length (chunked transfer encoding), before it is spooled anywhere.
    """
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > max_bytes:
            raise RequestError(f"body: more than the limit of {max_bytes} bytes", status=413,
                               code="payload_too_large")
        yield chunk


async def _parse_multipart(request: Request, max_body: int, max_part: int) -> FormData:
    """The request's multipart form, read through :func:`_limited`; 400 for a malformed one."""
    async with aclosing(_limited(request.stream(), max_body)) as stream:
        parser = MultiPartParser(request.headers, stream, max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS,
                                 max_part_size=max_part)
        try:
            return await parser.parse()
        except MultiPartException as exc:
            raise RequestError(f"body: not a valid multipart form ({exc.message})", status=400,
                               code="bad_request") from None


async def read_tryon_form(request: Request, *, max_upload_bytes: int, max_steps: int) -> TryOnForm:
    """Read and check the multipart form of ``POST /v1/tryon``.

    Args:
        request: the HTTP request.
        max_upload_bytes: largest accepted file, per field (413 above it).
        max_steps: largest ``steps`` accepted.

    Raises ``RequestError`` naming the field: unknown or repeated fields, a text where a file belongs,
    numbers out of range, unknown option values, missing person or garment. The body may hold at most every
    file field at its limit plus ``TEXT_FIELDS_BYTES``: one declaring more (``Content-Length``) is refused
    before it is read (413), one without a length as soon as it passes the limit; a malformed form is a 400.
    """
    max_body = (len(FILE_FIELDS) + len(FILE_OR_TEXT_FIELDS)) * max_upload_bytes + TEXT_FIELDS_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise RequestError(f"body: {declared} bytes exceeds the limit of {max_body} bytes", status=413,
                           code="payload_too_large")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise RequestError(f"body: expected multipart/form-data, got {content_type or 'no content type'!r}",
                           status=415, code="unsupported_media_type")
    form = await _parse_multipart(request, max_body, max_upload_bytes)
    try:
        return await _check_form(form, max_upload_bytes, max_steps)
    finally:
        await form.close()  # the spooled upload files


async def _check_form(form: FormData, max_upload_bytes: int, max_steps: int) -> TryOnForm:
    unknown = sorted(set(form.keys()) - set(TRYON_FIELDS))
    if unknown:
        raise RequestError(f"unknown form field(s) {unknown}; accepted fields are {list(TRYON_FIELDS)}",
                           code="unknown_field")
    files = {name: await _read_bytes(form, name, max_upload_bytes, text_allowed=name in FILE_OR_TEXT_FIELDS)
             for name in (*FILE_FIELDS, *FILE_OR_TEXT_FIELDS)}
    for name in ("person", "garment"):
        if files[name][0] is None:
            raise RequestError(f"{name}: required (a file upload)", code="missing_input")
    uploads = Uploads(**{name: data for name, (data, _) in files.items()},
                      person_name=files["person"][1], garment_name=files["garment"][1])

    response = _text(form, "response") or "image"
    if response not in RESPONSE_KINDS:
        raise RequestError(f"response: expected one of {list(RESPONSE_KINDS)}, got {response[:40]!r}")
    stages_text = (_text(form, "stages") or "").lower()
    if stages_text not in _TRUE | _FALSE:
        raise RequestError(f"stages: expected true or false, got {stages_text[:40]!r}")
    stages = stages_text in _TRUE
    if stages and response != "json":
        raise RequestError("stages: intermediate images come only with response=json")
    seed = _integer(form, "seed", 0, MAX_SEED)
    return TryOnForm(uploads=uploads, version=_text(form, "version") or None,
                     steps=_integer(form, "steps", 1, max_steps),
                     seed=secrets.randbelow(MAX_SEED + 1) if seed is None else seed,
                     response=response, stages=stages)

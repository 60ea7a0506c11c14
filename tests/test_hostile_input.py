"""Hostile input: every bad request gets a clear 4xx JSON error, never a 500 or a traceback, and the service
still answers a good request afterwards; what must be handled (photo modes, EXIF rotation) is.

The HTTP tests share one service (``serving_support``: ``platform/serve/local.yaml`` on a local Ray cluster
with a random-weights model) and send the bundled example (``examples/``) with one thing broken at a time.
The property-based tests (hypothesis) drive the parsers a request goes through in plain Python, no cluster:
the multipart form reader, image headers, label maps and garment keypoints.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.requests import Request

from deployments.errors import RequestError
from deployments.form import FILE_FIELDS, TRYON_FIELDS, TryOnForm, read_tryon_form
from kgi.data.images import DEFAULT_MAX_ASPECT_RATIO, ImageError, decode_labels, decode_rgb, encode_palette_png, \
    encode_png
from kgi.data.labels import CIHP_PALETTE
from kgi.graphs import NUM_GARMENT_NODES
from kgi.pipeline import TryOnPipeline
from kgi.preprocess import read_garment_keypoints

from image_bytes import png_header_only  # tests/ helpers
from serving_support import ADMIN_TOKEN, REPO

EXAMPLES = REPO / "examples"
TRACEBACK_MARKERS = ("Traceback", 'File "', ".py\"", ".py:", "site-packages")  # what a leaked stack trace shows


# ---------------------------------------------------------------- inputs


def save(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def example_files() -> dict[str, bytes]:
    """The bundled example request: a synthetic person (with pose and parse) and a garment."""
    return {"person": (EXAMPLES / "person.jpg").read_bytes(), "garment": (EXAMPLES / "garment.jpg").read_bytes(),
            "pose": (EXAMPLES / "person_keypoints.json").read_bytes(),
            "parse": (EXAMPLES / "person_parse.png").read_bytes()}


def example_person() -> Image.Image:
    return Image.open(EXAMPLES / "person.jpg").convert("RGB")


def pose_json(keypoints: list) -> bytes:
    return json.dumps({"people": [{"pose_keypoints_2d": keypoints}]}).encode()


def example_pose() -> list[float]:
    return json.loads((EXAMPLES / "person_keypoints.json").read_bytes())["people"][0]["pose_keypoints_2d"]


def with_value(index: int, value) -> list:
    keypoints = example_pose()
    keypoints[index] = value
    return keypoints


def tiny_person() -> dict[str, bytes]:
    """A consistent 1x1 person: photo, parse and a pose whose neck and shoulders lie inside it."""
    keypoints = [0.0] * 75
    for joint in (1, 2, 5):
        keypoints[3 * joint: 3 * joint + 3] = [0.5, 0.5, 0.9]
    return {"person": encode_png(np.full((1, 1, 3), 128, np.uint8)),
            "parse": encode_palette_png(np.full((1, 1), 5, np.uint8), CIHP_PALETTE), "pose": pose_json(keypoints)}


def mask_like_garment(value: int) -> bytes:
    width, height = Image.open(EXAMPLES / "garment.jpg").size
    return encode_png(np.full((height, width), value, np.uint8))


def parse_with_label(label: int) -> bytes:
    parse = np.asarray(Image.open(EXAMPLES / "person_parse.png")).copy()
    parse[:10, :10] = label
    return encode_png(parse)  # a grayscale PNG: any value 0..255 can be stored


# Each case: the fields that replace (or, as None, remove) the example's, the extra form data, and what the
# service must answer: status, error code, and a fragment of the message (it names the input).
CASES = {
    "non-image bytes": ({"person": b"just some text, not a photo"}, {}, 422, "invalid_image", "person"),
    "empty person file": ({"person": b""}, {}, 422, "invalid_image", "person"),
    "truncated jpeg": ({"person": (EXAMPLES / "person.jpg").read_bytes()[:30_000]}, {}, 422, "invalid_image",
                       "person"),
    "truncated png": ({"parse": (EXAMPLES / "person_parse.png").read_bytes()[:1_500]}, {}, 422, "invalid_image",
                      "parse"),
    "decompression bomb": ({"person": png_header_only(20_000, 20_000)}, {}, 422, "invalid_image", "person"),
    "upload over the size limit": ({"person": bytes(15_000_001)}, {}, 413, "payload_too_large", "person"),
    "1x1 person": (tiny_person(), {}, 422, "invalid_image", "person"),
    "1x1 garment": ({"garment": encode_png(np.full((1, 1, 3), 60, np.uint8))}, {}, 422, None, "garment"),
    "elongated garment": ({"garment": encode_png(np.full((10, 400, 3), 60, np.uint8))}, {}, 422, "invalid_image",
                          "garment"),
    "elongated person": ({"person": encode_png(np.full((2000, 30, 3), 60, np.uint8))}, {}, 422, "invalid_image",
                         "person"),
    "no person in the pose": ({"pose": pose_json([0.0] * 75)}, {}, 422, "invalid_pose", "pose"),
    "empty cloth mask": ({"cloth_mask": mask_like_garment(0)}, {}, 422, None, "cloth_mask"),
    "all-white cloth mask": ({"cloth_mask": mask_like_garment(255)}, {}, 422, None, "cloth_mask"),
    "malformed pose json": ({"pose": b'{"people": [{"pose_keypoints_2d": [1, 2,'}, {}, 422, "invalid_pose", "pose"),
    "truncated pose json": ({"pose": (EXAMPLES / "person_keypoints.json").read_bytes()[:200]}, {}, 422,
                            "invalid_pose", "pose"),
    "pose of the wrong length": ({"pose": pose_json(example_pose()[:74])}, {}, 422, "invalid_pose", "pose"),
    "NaN keypoint": ({"pose": pose_json(with_value(3, float("nan")))}, {}, 422, "invalid_pose", "pose"),
    "infinite keypoint": ({"pose": pose_json(with_value(4, float("inf")))}, {}, 422, "invalid_pose", "pose"),
    "negative keypoint": ({"pose": pose_json(with_value(3, -5.0))}, {}, 422, "invalid_pose", "pose"),
    "parse label above 19": ({"parse": parse_with_label(25)}, {}, 422, None, "parse"),
    "garment keypoints with NaN": ({"garment_keypoints": json.dumps([[1, 2]] * 31 + [[None, 2]]).encode()}, {},
                                   422, None, "garment_keypoints"),
    "steps 0": ({}, {"steps": "0"}, 422, "invalid_input", "steps"),
    "steps negative": ({}, {"steps": "-3"}, 422, "invalid_input", "steps"),
    "steps above the maximum": ({}, {"steps": "101"}, 422, "invalid_input", "steps"),
    "steps not a number": ({}, {"steps": "1e9"}, 422, "invalid_input", "steps"),
    "seed out of range": ({}, {"seed": str(2**32)}, 422, "invalid_input", "seed"),
    "unknown model version": ({}, {"version": "slow"}, 422, "unknown_version", "version"),
    "version as a path": ({}, {"version": "../default"}, 422, "unknown_version", "version"),
    "unknown field": ({}, {"colour": "red"}, 422, "unknown_field", "colour"),
    "field sent twice": ({}, {"steps": ["1", "2"]}, 422, "invalid_input", "steps"),
    "person as a text field": ({"person": None}, {"person": "a person"}, 422, "invalid_input", "person"),
    "missing garment": ({"garment": None}, {}, 422, "missing_input", "garment"),
}


def multipart(files: dict[str, bytes | None]) -> list[tuple[str, tuple[str, bytes]]]:
    return [(name, (f"{name}.bin", data)) for name, data in files.items() if data is not None]


def assert_json_error(response: httpx.Response, status: int, code: str | None, says: str) -> None:
    """The answer is ``status`` with exactly ``{"error": {"code", "message"}}``, naming ``says``, no traceback."""
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert says in body["error"]["message"], body
    assert not any(marker in response.text for marker in TRACEBACK_MARKERS), response.text


# ---------------------------------------------------------------- the service over HTTP


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_request_gets_a_clear_4xx(service, case):
    replaced, data, status, code, says = CASES[case]
    files = {**example_files(), **replaced}
    response = httpx.post(f"{service}/v1/tryon", files=multipart(files), data=data, timeout=120)
    assert_json_error(response, status, code, says)


def raw_http(url: str, request: bytes) -> bytes:
    """Send raw request bytes to the service and return the whole raw answer (the server closes or answers)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _content_length(answer):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _content_length(answer: bytes) -> int:
    found = re.search(rb"(?i)content-length: *(\d+)", answer.split(b"\r\n\r\n", 1)[0])
    return int(found.group(1)) if found else 0


@pytest.mark.slow
@pytest.mark.parametrize("headers, status, code, says", [
    ({}, 415, "unsupported_media_type", "body"),  # an empty body without a content type
    ({"Content-Type": "multipart/form-data; boundary=xyz"}, 422, "missing_input", "person"),  # an empty form
    ({"Content-Type": "multipart/form-data"}, 400, "bad_request", "body"),  # no boundary
    ({"Content-Type": "application/json"}, 415, "unsupported_media_type", "body"),
])
def test_empty_or_malformed_bodies(service, headers, status, code, says):
    response = httpx.post(f"{service}/v1/tryon", content=b"", headers=headers, timeout=60)
    assert_json_error(response, status, code, says)


@pytest.mark.slow
def test_a_body_declaring_more_than_the_limit_is_refused_unread(service):
    head = (b"POST /v1/tryon HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
            b"Content-Length: 1000000000\r\nConnection: close\r\n\r\n")
    answer = raw_http(service, head)  # not one byte of the announced gigabyte follows
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line, answer[:300]
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "payload_too_large"


@pytest.mark.slow
def test_photo_modes_and_exif_rotation_are_handled(service):
    """Grayscale, RGBA, CMYK, 16-bit and EXIF-rotated person photos are converted, not refused. Each keeps
    the size of the parse; a rotated photo matches it only once its EXIF orientation is applied."""
    person = example_person()
    rgba = person.convert("RGBA")
    rgba.putalpha(200)
    sixteen_bit = Image.fromarray(np.asarray(person.convert("L")).astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the stored pixels are turned the other way
    photos = {"grayscale": save(person.convert("L"), "JPEG"), "rgba": save(rgba, "PNG"),
              "cmyk": save(person.convert("CMYK"), "JPEG"), "16-bit": save(sixteen_bit, "PNG"),
              "exif-rotated": save(person.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif)}
    assert Image.open(io.BytesIO(photos["16-bit"])).mode.startswith("I;16")

    async def post_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=300) as client:
            return await asyncio.gather(*(
                client.post(f"{service}/v1/tryon", files=multipart({**example_files(), "person": photo}),
                            data={"steps": "1", "response": "json"}) for photo in photos.values()))

    width, height = person.size  # the answer has the (upright) photo's size
    for name, response in zip(photos, asyncio.run(post_all())):
        assert response.status_code == 200, (name, response.text[:300])
        assert response.json()["size"] == {"height": height, "width": width}, name


@pytest.mark.slow
def test_paths_in_requests_never_reach_the_file_system(service):
    for name in ("../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/pyproject.toml", "/etc/passwd"):
        response = httpx.get(f"{service}/web/{name}")
        assert response.status_code == 404 and "root:" not in response.text, (name, response.text[:200])
    # Uploaded file names are only names: nothing is read or written under them.
    files = [(field, (f"../../../tmp/kgi-{field}", data)) for field, data in example_files().items()]
    response = httpx.post(f"{service}/v1/tryon", files=files, data={"steps": "1"}, timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert not any(Path("/tmp", f"kgi-{field}").exists() for field in example_files())


@pytest.mark.slow
def test_admin_token_is_never_logged(service):
    url = f"{service}/v1/ab/weights"
    wrong_token = "wrong-token-" + ADMIN_TOKEN[::-1]
    assert httpx.put(url, json={"weights": {"default": 1}},
                     headers={"Authorization": f"Bearer {wrong_token}"}).status_code == 401
    assert httpx.put(url, json={"weights": {"nope": 1}},
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 422
    ok = httpx.put(url, json={"weights": {"default": 0.5, "fast": 0.5}},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200
    import ray

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())  # this cluster's session only
    files = [path for path in logs.rglob("*") if path.is_file()]
    assert any("Ingress" in path.name for path in files)  # the ingress replica's log is among them
    for path in files:
        text = path.read_bytes()
        assert ADMIN_TOKEN.encode() not in text and wrong_token.encode() not in text, path


@pytest.mark.slow
def test_the_service_still_answers_a_good_request(service):
    """Runs after every bad request above (pytest keeps file order): the service is unharmed."""
    response = httpx.post(f"{service}/v1/tryon", files=multipart(example_files()), data={"steps": "1"},
                          timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert Image.open(io.BytesIO(response.content)).size == example_person().size  # the photo's own size
    assert httpx.get(f"{service}/healthz").json()["status"] == "ok"


# ---------------------------------------------------------------- model files (no cluster)


class PlantedPayload:
    """Pickled, it makes unpickling create ``marker``: proof that loading ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("plant", ["pickle as keypoints.safetensors", "pickled inpainter .bin, no safetensors"])
def test_model_loading_never_unpickles(model_root, tmp_path, plant):
    version = tmp_path / "version"
    shutil.copytree(model_root / "default", version)
    marker = tmp_path / "payload-ran"
    if plant.startswith("pickle as"):
        torch.save({"weight": PlantedPayload(marker)}, version / "keypoints.safetensors")
        refusal = "deserializing header"  # safetensors reads a header, never a pickle
    else:
        inpainter = version / "inpainter"
        weights = safetensors.torch.load_file(inpainter / "diffusion_pytorch_model.safetensors")
        (inpainter / "diffusion_pytorch_model.safetensors").unlink()
        torch.save({**weights, "extra": PlantedPayload(marker)}, inpainter / "diffusion_pytorch_model.bin")
        refusal = "diffusion_pytorch_model.safetensors"  # asked for, the .bin beside it ignored
    with pytest.raises(Exception, match=refusal):
        TryOnPipeline.from_pretrained(version)
    assert not marker.exists()


# ---------------------------------------------------------------- parsers, property-based (no cluster)


def form_request(body: bytes, content_type: str, chunk_sizes: list[int]) -> Request:
    """A Starlette request whose body arrives in chunks of the given sizes (the rest in one)."""
    chunks, start = [], 0
    for size in chunk_sizes:
        chunks.append(body[start:start + size])
        start += size
    chunks.append(body[start:])

    async def receive() -> dict:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {"type": "http", "method": "POST", "path": "/v1/tryon", "query_string": b"",
             "headers": [(b"content-type", content_type.encode())]}
    return Request(scope, receive)


def encode_multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "hyp0thesis") -> bytes:
    """(field name, file name or None for a text field, value) -> multipart/form-data body."""
    lines = []
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        lines.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n")
    return b"".join(lines) + f"--{boundary}--\r\n".encode()


field_names = st.sampled_from([*TRYON_FIELDS, "colour"]) | st.text("abcxyz_", min_size=1, max_size=6)
field_values = st.binary(max_size=40) | st.sampled_from([b"1", b"-1", b"0", b"100", b"json", b"image", b"true",
                                                          b"default", b"fast", b"nope", b"", b"1e3"])
parts = st.lists(st.tuples(field_names, st.none() | st.just("file.bin"), field_values), max_size=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts, st.lists(st.integers(1, 64), max_size=4), st.booleans())
def test_form_reader_answers_a_form_or_a_4xx(form_parts, chunk_sizes, garbled):
    body = encode_multipart(form_parts)
    if garbled:  # cut the body short and drop its closing boundary
        body = body[: len(body) // 2]
    request = form_request(body, "multipart/form-data; boundary=hyp0thesis", chunk_sizes)
    try:
        form = asyncio.run(read_tryon_form(request, max_upload_bytes=1024, max_steps=100))
    except RequestError as exc:
        assert 400 <= exc.status < 500 and str(exc)
    else:
        assert isinstance(form, TryOnForm)
        assert form.uploads.person is not None and form.uploads.garment is not None
        assert form.steps is None or 1 <= form.steps <= 100


def test_form_reader_stops_reading_a_body_without_length_at_the_limit():
    """A chunked body (no Content-Length) is refused as soon as it passes the limit, not read to its end."""
    max_upload_bytes = 1024
    limit = (len(FILE_FIELDS) + 2) * max_upload_bytes + (1 << 20)  # what read_tryon_form allows
    opening = b'--xyz\r\nContent-Disposition: form-data; name="person"; filename="person.jpg"\r\n\r\n'
    chunk = b"x" * 65536  # the person file, never ending
    received = []

    async def endless_body() -> dict:
        body = chunk if received else opening
        received.append(len(body))
        assert sum(received) < 4 * limit, "the reader kept reading past the limit"
        return {"type": "http.request", "body": body, "more_body": True}

    scope = {"type": "http", "method": "POST", "path": "/v1/tryon", "query_string": b"",
             "headers": [(b"content-type", b"multipart/form-data; boundary=xyz")]}
    with pytest.raises(RequestError) as refused:
        asyncio.run(read_tryon_form(Request(scope, endless_body), max_upload_bytes=max_upload_bytes,
                                    max_steps=10))
    assert refused.value.status == 413 and refused.value.code == "payload_too_large"
    assert sum(received) <= limit + len(chunk)


def expected_refusal(width: int, height: int, max_pixels: int, min_side: int) -> str:
    """What the decoder must say about a header declaring ``width x height`` with no pixel data behind it."""
    if width * height > max_pixels:
        return "exceeds the limit"
    if min(width, height) < min_side:
        return "too small"
    if max(width, height) > DEFAULT_MAX_ASPECT_RATIO * min(width, height):
        return "too elongated"
    return "truncated|corrupt"  # within every limit: decoding starts and finds no pixels


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000))
@example(21, 8)  # the 64 bytes of pixel data are exactly one row: Pillow alone decoded it, seven rows black
def test_image_headers_outside_the_shape_limits_are_refused_before_decoding(width, height):
    with pytest.raises(ImageError) as refused:
        decode_rgb(png_header_only(width, height), source="photo", max_pixels=10_000_000, min_side=8)
    assert re.search(expected_refusal(width, height, 10_000_000, 8), str(refused.value)), (width, height)


@st.composite
def label_maps(draw) -> np.ndarray:
    """(H, W) uint8 label maps of any values, within the decoders' default aspect-ratio limit."""
    height = draw(st.integers(1, 12))
    width = draw(st.integers(max(1, int(np.ceil(height / DEFAULT_MAX_ASPECT_RATIO))),
                             int(height * DEFAULT_MAX_ASPECT_RATIO)))
    values = draw(st.lists(st.integers(0, 255), min_size=height * width, max_size=height * width))
    return np.array(values, np.uint8).reshape(height, width)


@settings(max_examples=60, deadline=None)
@given(label_maps(), st.booleans())
def test_label_maps_round_trip_exactly(labels, palette):
    data = encode_palette_png(labels, [(i, i, i) for i in range(256)]) if palette else encode_png(labels)
    np.testing.assert_array_equal(decode_labels(data, source="parse"), labels)


keypoint_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6), st.none(),
                            st.text(max_size=2), st.booleans())
garment_keypoint_documents = st.one_of(
    st.lists(st.lists(keypoint_values, min_size=1, max_size=3), min_size=30, max_size=33),
    st.lists(st.tuples(st.floats(0, 300), st.floats(0, 400)), min_size=NUM_GARMENT_NODES,
             max_size=NUM_GARMENT_NODES),
    st.dictionaries(st.text(max_size=8), keypoint_values, max_size=3),
    keypoint_values)


@settings(max_examples=200, deadline=None)
@given(garment_keypoint_documents.map(json.dumps) | st.text(max_size=30).map(str.encode))
def test_garment_keypoints_parse_or_raise_a_clear_value_error(document):
    try:
        points = read_garment_keypoints(document, width=300, height=400)
    except ValueError as exc:
        assert "garment_keypoints" in str(exc)
    else:
        assert points.shape == (NUM_GARMENT_NODES, 2) and points.dtype == np.float32
        assert np.isfinite(points).all() and (points >= 0).all()
        assert (points[:, 0] <= 300).all() and (points[:, 1] <= 400).all()

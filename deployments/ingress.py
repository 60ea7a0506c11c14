"""The HTTP front of the try-on service: FastAPI routes, A/B routing between model versions, and the DAG calls.

    POST /v1/tryon        multipart form (``deployments.form``) -> PNG, or JSON with base64 PNGs
    POST /v1/feedback     {"request_id", "event", "value"?}: an outcome of an answered try-on
    GET  /v1/models       the served versions and their current weights
    GET  /v1/ab           the experiment, its weights, and per version requests, errors, rejections, p50/p95 latency
    GET  /v1/ab/report    per version traffic and outcome rates, and the significance of their differences
    PUT  /v1/ab/weights   {"weights": {version: weight}} with ``Authorization: Bearer $KGI_ADMIN_TOKEN``
    PUT  /v1/ab/experiment  a whole experiment (id, weights, shadow), same token
    GET  /healthz         liveness
    GET  /docs            OpenAPI documentation
    GET  /                the web page (``deployments/web/``); its files and bundled examples under ``/web/``

A try-on request goes ``Preprocess -> Keypoints -> ParseWarp -> Inpaint`` through deployment handles, with the
weights of the version :class:`~deployments.routing.VersionRouter` picks as the stages' multiplexed model id
(``deployments.stages``). The ingress awaits Preprocess, then hands each model stage's response straight to the
next stage's call, so the intermediate results (keypoints, the 1.8 MB stage-two tensors) go from stage to stage
and only Inpaint's answer comes back. Every response says which version served it (``X-KGI-Version``), its
request id (``X-KGI-Request-Id``; feedback names it) and what each stage took (``X-KGI-Timings``, seconds as JSON).

The served versions and the experiment (id, weights, shadow) are this deployment's ``user_config``, applied in
``reconfigure``: every replica runs the same one, so the Ingress scales like any deployment, and a version added
there is served without restarting any replica. ``PUT /v1/ab/...`` writes it through Serve
(``deployments.experiments``); every request's assignment and outcome go to the one ``ExperimentStore``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route methods' annotations at run time
# (``request: Request``), and Serve's class-based ingress re-creates those methods outside this module.

import asyncio
import hmac
import json
import logging
import mimetypes
import os
import time
import uuid
from dataclasses import replace

import numpy as np
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve import metrics
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException

from deployments.config import AppArgs, ModelVersion
from deployments.encoding import parse13_png, png_base64
from deployments.errors import RETRY_AFTER_S, RequestError, error_body, error_response, error_responses
from deployments.form import TRYON_OPENAPI, TryOnForm, read_tryon_form
from deployments.routing import EXPERIMENT_ID_PATTERN, REQUESTED, ROUTED, SHADOW, ExperimentSettings, \
    ShadowSettings, VersionRouter
from deployments.stages import InpaintOutput
from deployments.web import examples_index, web_files
from kgi.data.images import decode_rgb, encode_palette_png, encode_png
from kgi.data.labels import CIHP_PALETTE
from kgi.pictures import keypoint_input_pictures
from kgi.pipeline import keypoint_inputs, to_uint8_images
from kgi.preprocess import paste_back
from kgi.sampling import SamplerInputError, count_unet_evaluations

logger = logging.getLogger("ray.serve")

ADMIN_TOKEN_ENV = "KGI_ADMIN_TOKEN"
LATENCY_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128]
STORE_TIMEOUT_S = 5.0  # a try-on is answered even when its assignment cannot be stored (logged and counted)
EVENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$"

api = FastAPI(title="KGI virtual try-on",
              description="Pose-garment keypoints guided inpainting (Li et al., ICCV 2023) served with Ray Serve.",
              version="1", responses=error_responses(500, 503))  # what any route may answer; each adds its own


@api.exception_handler(RequestError)
async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
    return error_response(exc)


@api.exception_handler(RayTaskError)
@api.exception_handler(RayActorError)
@api.exception_handler(BackPressureError)
@api.exception_handler(DeploymentUnavailableError)
async def _stage_error(request: Request, exc: Exception) -> JSONResponse:
    """What a deployment called by a route raised (UnknownRequestError, WeightsError...), or its failing (503)."""
    return error_response(exc)


@api.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors())
    return JSONResponse(error_body("invalid_input", problems), status_code=422)


def require_admin_token(authorization: str | None = Header(None)) -> None:
    """Admit the request only with ``Authorization: Bearer <$KGI_ADMIN_TOKEN>``; no token set disables the route."""
    expected = os.environ.get(ADMIN_TOKEN_ENV)
    if not expected:
        raise RequestError(f"admin endpoints are disabled: the service has no {ADMIN_TOKEN_ENV} set", status=403,
                           code="admin_disabled")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise RequestError("Authorization: a valid 'Bearer <token>' is required", status=401, code="unauthorized",
                           headers={"WWW-Authenticate": "Bearer"})


@api.get("/", include_in_schema=False)
@api.get("/web/{name:path}", include_in_schema=False)
def web_page(name: str = "index.html") -> Response:
    """The page at ``/``; under ``/web/``: its files, ``examples.json``, the examples' inputs (``deployments.web``)."""
    if name == "examples.json":
        return JSONResponse(examples_index())
    path = web_files().get(name)
    if path is None:
        raise HTTPException(404, f"{name}: not a file of the web page")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(path.read_bytes(), media_type=media_type, headers={"Cache-Control": "no-cache"})


class WeightsUpdate(BaseModel):
    """Body of ``PUT /v1/ab/weights``: the new weight table (versions left out get weight 0)."""

    weights: dict[str, float] = Field(description="version name -> weight >= 0; normalised to sum to 1")


class ExperimentUpdate(BaseModel):
    """Body of ``PUT /v1/ab/experiment``: a new experiment (a new id reshuffles users and starts new counts)."""

    experiment: str = Field(pattern=EXPERIMENT_ID_PATTERN, description="the experiment's id")
    weights: dict[str, float] = Field(description="version name -> weight >= 0 (versions left out get 0)")
    shadow: ShadowSettings | None = Field(None, description="a version that also gets a copy of a share of the "
                                                            "routed requests (its answers are discarded)")


class Feedback(BaseModel):
    """Body of ``POST /v1/feedback``: what happened after a try-on."""

    request_id: str = Field(max_length=64, description="the try-on's X-KGI-Request-Id (or request_id in JSON)")
    event: str = Field(pattern=EVENT_PATTERN, description="the outcome's name: kept, added_to_cart, purchased...")
    value: float | None = Field(None, allow_inf_nan=False, description="an optional amount (an order's value)")


# A full queue here is answered by Serve's proxy (503 with Retry-After); one further down by error_response.
@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64, max_queued_requests=128,
                  backpressure_config={"retry_after_s": RETRY_AFTER_S})
@serve.ingress(api)
class Ingress:
    """The try-on API (see the module docstring).

    Args:
        preprocess, keypoints, parse_warp, inpaint: handles of the stage deployments.
        store: handle of the ``ExperimentStore`` deployment.
        app_args: the application's arguments (limits, where version folders and registry copies are).

    The served versions come with the ``user_config`` (:meth:`reconfigure`); until Serve hands one over, the
    replica serves none (503).
    """

    def __init__(self, preprocess: DeploymentHandle, keypoints: DeploymentHandle, parse_warp: DeploymentHandle,
                 inpaint: DeploymentHandle, store: DeploymentHandle, app_args: AppArgs):
        self.preprocess = preprocess
        self.keypoints = keypoints
        self.parse_warp = parse_warp
        self.inpaint = inpaint
        self.store = store
        self.app_args = app_args
        self.versions: dict[str, ModelVersion] = {}
        self.router: VersionRouter | None = None
        self.background: set[asyncio.Task] = set()  # shadow copies in flight (a reference keeps each alive)
        self.request_counter = metrics.Counter(
            "kgi_tryon_requests", description="Try-on requests answered, by serving version, how it was routed "
                                              "(routed, requested, shadow) and HTTP status.",
            tag_keys=("version", "routing", "status"))
        self.error_counter = metrics.Counter(
            "kgi_tryon_errors", description="Try-on requests that failed, by version; kind: client (4xx) or "
                                            "server (5xx).", tag_keys=("version", "routing", "kind"))
        self.latency_histogram = metrics.Histogram(
            "kgi_tryon_latency_s", description="Latency of successful try-on requests, by version.",
            boundaries=LATENCY_BUCKETS_S, tag_keys=("version", "routing"))
        self.outcome_counter = metrics.Counter(
            "kgi_ab_outcomes", description="Outcomes reported through POST /v1/feedback, by experiment, the version "
                                           "that served the try-on, how it was routed, and event.",
            tag_keys=("experiment", "version", "routing", "event"))
        self.store_errors = metrics.Counter(
            "kgi_ab_store_errors", description="Assignments that could not be stored (the try-on was answered).")

    def reconfigure(self, user_config: dict) -> None:
        """Serve the versions and run the experiment of the deployment's ``user_config``
        (``deployments.routing.ExperimentSettings``).

        Each new or changed version is resolved against its folder or registry (``AppArgs.resolve_versions``);
        unchanged ones are kept as they are. Raises ``WeightsError`` for settings that do not fit together, and
        what ``resolve_versions`` raises for a version that cannot be served: at deployment, Serve reports it and
        the replica does not start; ``PUT /v1/ab/...`` validates before writing, so it never gets here.
        """
        settings = ExperimentSettings.parse(user_config or {})
        known = self.router.settings.versions if self.router is not None else {}
        changed = {name: args for name, args in settings.versions.items() if known.get(name) != args}
        resolved = self.app_args.resolve_versions(changed)
        versions = {name: resolved.get(name) or self.versions[name] for name in settings.versions}
        self.versions, self.router = versions, VersionRouter(tuple(versions), settings)
        logger.info("serving %s; experiment %r: weights %s, shadow %s", list(versions), settings.experiment,
                    self.router.weights, settings.shadow)

    def _routing(self) -> tuple[VersionRouter, dict[str, ModelVersion]]:
        """The router and the versions it routes to, taken together (a reconfigure may land during a request)."""
        router, versions = self.router, self.versions
        if router is None or set(versions) != set(router.versions):
            raise RequestError("the service has no model versions yet: the Ingress's user_config names them",
                               status=503, code="unavailable")
        return router, versions

    @api.post("/v1/tryon", openapi_extra=TRYON_OPENAPI, response_class=Response,
              responses={**error_responses(400, 413, 415, 422),
                         200: {"content": {"image/png": {}, "application/json": {}},
                               "description": "The try-on image (response=image) or JSON (response=json)."}})
    async def tryon(self, request: Request) -> Response:
        """Try the garment on the person. Answers PNG bytes, or JSON with ``response=json``."""
        start = time.perf_counter()
        request_id = uuid.uuid4().hex
        version = routing = form = router = None
        user_id = request.headers.get("x-user-id")
        try:
            # One experiment and one set of versions for the whole request, even if a reconfigure lands meanwhile.
            router, versions = self._routing()
            form = await read_tryon_form(request, max_upload_bytes=self.app_args.max_upload_bytes,
                                         max_steps=self.app_args.max_steps)
            name, routing = router.choose(form.version, user_id)
            version = versions[name]
            response = await self._try_on(version, form, start, request_id)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error (see deployments.errors)
            response = error_response(exc)
        response.headers["X-KGI-Request-Id"] = request_id
        if version is not None:  # errors after routing say which version failed, too
            response.headers["X-KGI-Version"] = version.name
            await self._record(router.experiment, request_id, version.name, routing, user_id,
                               response.status_code, time.perf_counter() - start)
            shadow = router.shadow_for(version.name) if routing == ROUTED else None
            if shadow is not None:
                task = asyncio.create_task(self._shadow(router.experiment, versions[shadow], form, user_id))
                self.background.add(task)
                task.add_done_callback(self.background.discard)
        return response

    async def _shadow(self, experiment: str, version: ModelVersion, form: TryOnForm, user_id: str | None) -> None:
        """Serve a copy of a request with ``version``; keep only its status and latency."""
        start = time.perf_counter()
        request_id = uuid.uuid4().hex
        try:
            status = (await self._try_on(version, form, start, request_id)).status_code
        except Exception as exc:  # noqa: BLE001 - a shadow's failure is counted, never raised
            status = error_response(exc).status_code
        await self._record(experiment, request_id, version.name, SHADOW, user_id, status,
                           time.perf_counter() - start)

    async def _try_on(self, version: ModelVersion, form: TryOnForm, start: float, request_id: str) -> Response:
        steps = form.steps or version.sampler.num_steps
        try:
            count_unet_evaluations(steps, version.sampler.jump_length, version.sampler.jump_n_sample)
        except SamplerInputError as exc:
            raise RequestError(f"steps: {steps} does not suit version {version.name!r} ({exc})") from None
        sample, preprocess_s = await self.preprocess.remote(form.uploads, version.working_height)
        height, width = sample.size
        weights = version.weights_id  # the stages' multiplexed model id: which networks serve this version
        keypoints = self.keypoints.options(multiplexed_model_id=weights).remote(
            *keypoint_inputs([sample]))  # (1, 32, 2), (1, 10, 2)
        # Each response goes into the next call as it is: Serve hands the stage its result, not via this replica.
        parse_warp = self.parse_warp.options(multiplexed_model_id=weights).remote([sample], keypoints)
        inpainted: InpaintOutput = await self.inpaint.options(multiplexed_model_id=weights).inpaint.remote(
            parse_warp, form.seed, version.name, replace(version.sampler, num_steps=steps))
        garment_kp = inpainted.garment_kp  # (32, 2) normalised

        timings = {"preprocess": preprocess_s, **inpainted.timings, "total": time.perf_counter() - start}
        timings = {stage: round(seconds, 4) for stage, seconds in timings.items()}
        headers = {"X-KGI-Version": version.name, "X-KGI-Request-Id": request_id,
                   "X-KGI-Timings": json.dumps(timings, separators=(",", ":"))}
        # The answer has the person photo's size: the try-on pasted back where its 3:4 box was cut from.
        image = paste_back(inpainted.image, sample, decode_rgb(form.uploads.person, source="person"))
        image_png = encode_png(image)
        if form.response == "image":
            return Response(image_png, media_type="image/png", headers=headers)
        body = {"request_id": request_id, "version": version.name, "image": png_base64(image_png), "seed": form.seed,
                "steps": steps,
                "unet_evaluations": inpainted.unet_evaluations, "inpaint_batch_size": inpainted.batch_size,
                "timings": timings, "size": {"height": image.shape[0], "width": image.shape[1]},
                "working_size": {"height": height, "width": width},
                "worn_keypoints": np.round(garment_kp * [width, height], 2).tolist(),
                "estimated": [tag.removeprefix("estimated-") for tag in sample.tags]}
        if form.stages:
            stage_two = (await parse_warp).stage_two  # only these answers bring stage 2's tensors here
            drawings = keypoint_input_pictures(sample.person, sample.pose_nodes, garment_kp)
            body["stages"] = {
                "person": png_base64(encode_png(sample.person)),
                "garment": png_base64(encode_png(sample.cloth)),
                "cloth_mask": png_base64(encode_png(sample.cloth_mask)),
                "cloth_keypoints": np.round(sample.cloth_keypoints, 2).tolist(),
                "pose": np.round(sample.pose, 2).tolist(),  # BODY_25 (x, y, confidence), sent or estimated
                "parse": png_base64(encode_palette_png(sample.parse, CIHP_PALETTE)),  # sent or estimated
                **{name: png_base64(encode_png(image)) for name, image in drawings.items()},
                "target_parse": png_base64(parse13_png(stage_two.target_parse13[0].byte().numpy())),
                "warped_garment": png_base64(encode_png(to_uint8_images(stage_two.warped_garment)[0])),
                "recomposed": png_base64(encode_png(to_uint8_images(stage_two.recomposed)[0])),
                "keep_mask": png_base64(encode_png(stage_two.keep_mask[0, 0].bool().numpy())),
            }
        return JSONResponse(body, headers=headers)

    async def _record(self, experiment: str, request_id: str, version: str, routing: str, user_id: str | None,
                      status: int, seconds: float) -> None:
        """Count an answered request in Prometheus and store its assignment (awaited, so feedback sent as soon as
        the answer arrives finds it; a store that fails or hangs is logged and counted, not passed on)."""
        self.request_counter.inc(tags={"version": version, "routing": routing, "status": str(status)})
        if status >= 400:
            self.error_counter.inc(tags={"version": version, "routing": routing,
                                         "kind": "server" if status >= 500 else "client"})
        else:
            self.latency_histogram.observe(seconds, tags={"version": version, "routing": routing})
        row = {"id": request_id, "experiment": experiment, "version": version, "routing": routing,
               "user_id": user_id, "status": status, "latency_s": seconds, "time": time.time()}
        try:
            await asyncio.wait_for(self.store.record.remote([row]), STORE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - the try-on itself succeeded or failed on its own
            logger.exception("could not store the assignment of request %s", request_id)
            self.store_errors.inc()

    @api.post("/v1/feedback", responses=error_responses(400, 404, 422))
    async def feedback(self, feedback: Feedback) -> dict:
        """Report an outcome of an answered try-on (a named event, optionally a value) for the A/B report."""
        assignment = await self.store.feedback.remote(feedback.request_id, feedback.event, feedback.value)
        self.outcome_counter.inc(tags={"event": feedback.event, **assignment})
        return {"request_id": feedback.request_id, "event": feedback.event, **assignment}

    @api.get("/v1/models")
    async def models(self) -> dict:
        """The served model versions: resolution, default sampler settings and current routing weight."""
        router, versions = self._routing()
        return {"versions": [{**version.card(), "weight": round(router.weights[name], 6)}
                             for name, version in versions.items()]}

    @api.get("/v1/ab")
    async def ab_summary(self) -> dict:
        """The running experiment (as this replica applies it) and, per version, its served requests (routed and
        requested), errors (5xx), rejected (4xx) and p50/p95 latency, from the shared store."""
        router, served_versions = self._routing()
        traffic = await self.store.traffic.remote(router.experiment)
        versions = {}
        for name in served_versions:
            served = [traffic.get(name, {}).get(routing) for routing in (ROUTED, REQUESTED)]
            served = [entry for entry in served if entry]
            routed = traffic.get(name, {}).get(ROUTED) or {}
            latency = (routed or (served[0] if served else {})).get("latency_s", {})
            versions[name] = {key: sum(entry[key] for entry in served) for key in ("requests", "errors", "rejected")}
            versions[name].update({"routed": routed.get("requests", 0), "latency_p50_s": latency.get("p50"),
                                   "latency_p95_s": latency.get("p95")})
        return {"experiment": router.experiment, "weights": router.weights,
                "shadow": None if router.settings.shadow is None else router.settings.shadow.model_dump(),
                "replica": serve.get_replica_context().replica_id.unique_id, "versions": versions}

    @api.get("/v1/ab/report", responses=error_responses(422))
    async def ab_report(self, experiment: str | None = Query(None, description="default: the running one"),
                        baseline: str | None = Query(None, description="default: the first served version"),
                        since: float = Query(0.0, description="only requests from this Unix time on")) -> dict:
        """Per version: traffic by routing, errors, latency percentiles, outcome rates with 95% intervals; per
        outcome event, each version's difference from the baseline with a z-test and an always-valid mSPRT."""
        router, versions = self._routing()
        report = await self.store.report.remote(experiment or router.experiment, tuple(versions), baseline, since)
        return {**report, "weights": router.weights if experiment in (None, router.experiment) else None}

    @api.put("/v1/ab/weights", dependencies=[Depends(require_admin_token)],
             responses=error_responses(400, 401, 403, 422))
    async def set_weights(self, update: WeightsUpdate) -> dict:
        """Replace the running experiment's weights (admin: ``Authorization: Bearer $KGI_ADMIN_TOKEN``); every
        Ingress replica applies them before the answer, and they outlive replica restarts."""
        return await self._apply({**self._routing()[0].settings.model_dump(), "weights": update.weights})

    @api.put("/v1/ab/experiment", dependencies=[Depends(require_admin_token)],
             responses=error_responses(400, 401, 403, 422))
    async def set_experiment(self, update: ExperimentUpdate) -> dict:
        """Start an experiment (id, weights, optional shadow; admin token as for the weights) between the served
        versions."""
        return await self._apply({**self._routing()[0].settings.model_dump(), **update.model_dump()})

    async def _apply(self, settings: dict) -> dict:
        """Write experiment settings through Serve; answers them (weights normalised) once every Ingress replica
        runs them, with ``applied_at`` (this server's Unix time then: ``GET /v1/ab/report?since=`` takes it)."""
        applied = ExperimentSettings.model_validate(await self.store.apply.remote(settings))
        logger.info("experiment %r applied: weights %s, shadow %s", applied.experiment, applied.weights,
                    applied.shadow)
        return {**applied.model_dump(), "weights": VersionRouter(tuple(applied.versions), applied).weights,
                "applied_at": time.time()}

    @api.get("/healthz")
    async def healthz(self) -> dict:
        """Liveness of the ingress."""
        return {"status": "ok", "versions": list(self.versions)}

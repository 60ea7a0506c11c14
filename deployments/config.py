"""The application's arguments (``args:`` of a Serve config file) and the model versions it serves.

``build_app(args)`` receives the ``args`` mapping of the config file's application entry; :class:`AppArgs`
validates it (unknown keys are errors, so a typo never silently falls back to a default)::

    models_dir: models            # version paths are relative to this (itself relative to the working directory)
    torch_threads: 1              # intra-op threads per stage replica (torch and OpenCV); null = library default
    max_steps: 100                # largest ``steps`` a request may ask for
    max_upload_bytes: 15000000    # per uploaded file, checked before decoding
    max_image_pixels: 40000000    # per image, checked from its header before decoding
    inpaint: {device: cpu, dtype: float32}    # "cuda" + "bfloat16" on GPUs
    preprocess:                   # where a request's missing pose and parse come from (PreprocessArgs)
      pose: {source: mediapipe, python: null, required: false}
      parser: {source: mediapipe}
    registry_cache: ~/.cache/kgi/registry    # where each node keeps its verified copies of registry versions
    ab_store: ~/.local/share/kgi/experiments.sqlite   # assignments and outcomes (deployments.experiments)

The served versions are not arguments: like the A/B weights they are the Ingress deployment's ``user_config``
(``deployments.routing.ExperimentSettings``), which Serve changes without restarting any replica, while any change
of ``args`` rebuilds every deployment. Each version is a :class:`VersionArgs`::

    versions:                     # name -> folder in TryOnPipeline's format, sampler overrides
      default: {path: default}
      fast: {path: default, sampler: {num_steps: 4}, working_height: 256}
      v2: {registry: s3://kgi-models, version: v2}    # a version of a model registry (kgi.registry)
      v3: {registry: s3://kgi-models, version: "v3@sha256:<digest>"}   # pinned: refused if v3 was re-pushed

:meth:`AppArgs.resolve_versions` resolves each against its folder's ``version.yaml`` into a :class:`ModelVersion`,
the picklable record the Ingress routes with. A folder with a registry manifest is verified against it, and a
registry version is pulled into ``registry_cache`` and verified, before the Ingress serves it. The stage
deployments load a version's networks by its :attr:`ModelVersion.weights_id` (their multiplexed model id) with
:func:`weights_folder`, which does the same on their own node, so a file that does not match its manifest is
refused wherever it is loaded; versions that differ only in sampler settings or working height share one id, so
one loaded network serves them all.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kgi.data.images import DEFAULT_MAX_PIXELS
from kgi.data.storage import S3_SCHEME
from kgi.parsing import LABEL_SETS, PARSER_SOURCES
from kgi.pose_estimation import POSE_SOURCES
from kgi.pipeline import VERSION_FILE, SamplerSettings, VersionInfo
from kgi.registry import ModelRegistry, check_version_folder, parse_reference
from kgi.sampling import count_unet_evaluations

VERSION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"  # used in deployment names and metric tags


def _refuse_moved(data, key: str, where_it_went: str):
    """A ``mode="before"`` validator's body: refuse a config that still has ``key``, saying where it went."""
    if isinstance(data, dict) and key in data:
        raise ValueError(f"{key}: {where_it_went}")
    return data


class SamplerOverrides(BaseModel):
    """Sampler settings that replace the version's own (``version.yaml``); unset fields keep them."""

    model_config = ConfigDict(extra="forbid")
    scheduler: Literal["ddpm", "ddim", "dpm++"] | None = None
    num_steps: int | None = Field(None, ge=1)
    jump_length: int | None = Field(None, ge=0)
    jump_n_sample: int | None = Field(None, ge=1)


class VersionArgs(BaseModel):
    """One served model version.

    Attributes:
        path: the version folder (``TryOnPipeline.save_pretrained``'s format), relative to ``models_dir``; it
            must be readable at that path on every node (a shared volume on a cluster).
        registry, version: instead of ``path``: version ``version`` of the model registry at ``registry``
            (``kgi.registry``): ``s3://bucket/prefix``, pulled to each node that runs it, or a folder relative to
            ``models_dir`` (``.`` is ``models_dir`` itself), verified in place. ``version`` is a name or a
            pinned ``name@sha256:<digest>`` (``kgi models show`` prints it), refused once the name is re-pushed.
        sampler: overrides of the folder's sampler settings (a "fast" variant of the same weights).
        working_height: null (the default): a try-on is made at the person photo's own resolution, up to 1024
            rows (``kgi.preprocess``); a number: at ``working_height x 3*working_height/4``. Either way the
            answer has the photo's size.
    """

    model_config = ConfigDict(extra="forbid")
    path: str | None = None
    registry: str | None = None
    version: str | None = None
    sampler: SamplerOverrides = SamplerOverrides()
    working_height: int | None = Field(None, ge=64, le=2048, multiple_of=4)

    _weight_moved = model_validator(mode="before")(lambda data: _refuse_moved(
        data, "weight", "the A/B weights moved to the Ingress deployment's user_config (weights: {version: weight}), "
                        "which changes without restarting the model replicas"))

    @model_validator(mode="after")
    def _check_source(self) -> VersionArgs:
        if (self.path is None) == (self.registry is None):
            raise ValueError("give either path (a folder under models_dir) or registry + version")
        if (self.registry is None) != (self.version is None):
            raise ValueError("registry and version go together: the registry root and a version name in it")
        if self.registry is not None:
            ModelRegistry(self.registry)  # validates the root (no I/O)
            parse_reference(self.version)
        return self


class InpaintArgs(BaseModel):
    """Where the inpainting stage runs: ``device`` "cpu" or "cuda", and the autocast ``dtype`` of the UNet."""

    model_config = ConfigDict(extra="forbid")
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


class PoseSourceArgs(BaseModel):
    """``preprocess.pose``: where the pose of a request sent without one comes from.

    Attributes:
        source: "none" (requests must send ``pose``) or "mediapipe" (BlazePose in a worker process of an
            environment that has mediapipe: ``kgi.pose_estimation.make_pose_estimator``).
        python: that environment's interpreter; null takes ``$KGI_POSE_PYTHON`` of the replica's node.
        required: with "mediapipe": true, the service does not start without it; false, it starts anyway (the
            reason is logged) and a request without ``pose`` is answered 422 with that reason.
    """

    model_config = ConfigDict(extra="forbid")
    source: Literal[POSE_SOURCES] = "none"
    python: str | None = None
    required: bool = True


class ParserArgs(BaseModel):
    """``preprocess.parser``: where the parse of a request sent without one comes from (``kgi.parsing.make_parser``).

    Attributes:
        source: "none" (requests must send ``parse``), "mediapipe" (the photo parser, in the pose source's
            environment: ``kgi.parsing.PhotoParser``), "synthetic" (the shipped parser trained on synthetic
            people: it parses synthetic people only) or "onnx" (a human-parsing model the operator provides).
        path: the ONNX model (required for "onnx"), or other synthetic-parser weights; relative to ``models_dir``.
        label_set: the ONNX model's labels, mapped to CIHP: "cihp", "lip" or "atr".
        input_size: the ONNX model's (height, width) when its input size is dynamic.
    """

    model_config = ConfigDict(extra="forbid")
    source: Literal[PARSER_SOURCES] = "none"
    path: str | None = None
    label_set: Literal[tuple(LABEL_SETS)] = "cihp"
    input_size: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _check_onnx_path(self) -> ParserArgs:
        if self.source == "onnx" and not self.path:
            raise ValueError("parser source 'onnx' needs the path of the .onnx model")
        return self


class PreprocessArgs(BaseModel):
    """``preprocess``: the sources of what a request may leave out (``kgi.preprocess``). Default: none, so
    requests send their pose and parse."""

    model_config = ConfigDict(extra="forbid")
    pose: PoseSourceArgs = PoseSourceArgs()
    parser: ParserArgs = ParserArgs()


class AppArgs(BaseModel):
    """The validated ``args`` of the application (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    models_dir: str = "."
    torch_threads: int | None = Field(None, ge=1)
    max_steps: int = Field(100, ge=1, le=1000)
    max_upload_bytes: int = Field(15_000_000, ge=1024)
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=64 * 48)
    inpaint: InpaintArgs = InpaintArgs()
    preprocess: PreprocessArgs = PreprocessArgs()
    registry_cache: str = "~/.cache/kgi/registry"
    ab_store: str = "~/.local/share/kgi/experiments.sqlite"

    _versions_moved = model_validator(mode="before")(lambda data: _refuse_moved(
        data, "versions", "the served versions moved to the Ingress deployment's user_config (versions: "
                          "{name: {path: ...}}), which changes without restarting any replica"))

    def registry_source(self, version: VersionArgs) -> RegistrySource | None:
        """Where ``version`` comes from when it names a registry version, else ``None``."""
        if version.registry is None:
            return None
        registry = version.registry  # a local registry, like a path, is relative to models_dir
        if not registry.startswith(S3_SCHEME):
            registry = str((Path(self.models_dir).expanduser() / registry).absolute())
        return RegistrySource(registry=registry, version=version.version, cache=self.registry_cache)

    def version_directory(self, name: str, version: VersionArgs) -> Path:
        """The absolute folder of version ``name`` on this node, verified against its manifest if it has one
        (a registry version is pulled into ``registry_cache`` first).

        Raises ``FileNotFoundError`` naming a folder that is not a model version, ``kgi.registry.RegistryError``
        for an unknown registry version and ``kgi.registry.IntegrityError`` naming a file that does not match
        its manifest.
        """
        source = self.registry_source(version)
        if source is not None:
            return source.local_copy()
        directory = (Path(self.models_dir).expanduser() / version.path).absolute()
        if not (directory / VERSION_FILE).is_file():
            raise FileNotFoundError(
                f"version {name!r}: {directory} is not a model version folder (no {VERSION_FILE}); "
                f"train one or point models_dir / the version's path at one")
        check_version_folder(directory)
        return directory

    def preprocess_sources(self) -> PreprocessArgs:
        """``preprocess`` with the parser's path made absolute against ``models_dir``.

        Raises ``FileNotFoundError`` when the configured parser file does not exist.
        """
        parser = self.preprocess.parser
        if parser.path is None:
            return self.preprocess
        path = (Path(self.models_dir).expanduser() / parser.path).absolute()
        if not path.is_file():
            raise FileNotFoundError(f"preprocess.parser.path: {path} does not exist")
        return self.preprocess.model_copy(update={"parser": parser.model_copy(update={"path": str(path)})})

    def resolve_versions(self, versions: Mapping[str, VersionArgs | dict]) -> dict[str, ModelVersion]:
        """Every version (name -> :class:`VersionArgs` or its mapping) resolved against its folder, in order.

        Raises as :meth:`version_directory`, and ``ValueError`` for a bad name or entry, or when an override makes
        the sampler unusable (a RePaint jump longer than the steps).
        """
        resolved = {}
        for name, version in versions.items():
            check_version_name(name)
            version = VersionArgs.model_validate(version)
            directory = self.version_directory(name, version)
            info = VersionInfo.read(directory)
            sampler = replace(info.sampler, **version.sampler.model_dump(exclude_none=True))
            count_unet_evaluations(sampler.num_steps, sampler.jump_length, sampler.jump_n_sample)  # validates
            resolved[name] = ModelVersion(name=name, directory=str(directory),
                                          working_height=version.working_height, sampler=sampler,
                                          description=info.description, parse_height=info.parse_height,
                                          inpaint_height=info.inpaint_height, source=self.registry_source(version))
        return resolved


def check_version_name(name: str) -> str:
    """Return ``name`` if it can name a served version (it goes into metric tags and headers), else raise
    ``ValueError``."""
    if not isinstance(name, str) or not re.match(VERSION_NAME_PATTERN, name):
        raise ValueError(f"version name {name!r} must match {VERSION_NAME_PATTERN}")
    return name


def weights_folder(weights_id: str, registry_cache: str) -> str:
    """The verified folder on this node of the weights a stage deployment is asked for (a
    :attr:`ModelVersion.weights_id`): an S3 registry version is pulled into ``registry_cache`` unless a verified
    copy is there; a folder is verified against its manifest when it has one. Raises as
    :meth:`AppArgs.version_directory`."""
    if weights_id.startswith(S3_SCHEME):
        registry, _, name = weights_id.rpartition("/")
        return str(RegistrySource(registry, name, registry_cache).local_copy())
    if not (Path(weights_id) / VERSION_FILE).is_file():
        raise FileNotFoundError(f"{weights_id}: not a model version folder (no {VERSION_FILE})")
    check_version_folder(weights_id)
    return weights_id


@dataclass(frozen=True)
class RegistrySource:
    """A served version that comes from a model registry, as each node fetches it.

    Attributes:
        registry: the registry root (a folder or ``s3://bucket/prefix``).
        version: the version's name in it.
        cache: the folder each node pulls remote versions into (``~`` is expanded on each node).
    """

    registry: str
    version: str
    cache: str

    def local_copy(self) -> Path:
        """This node's verified folder of the version (``kgi.registry.ModelRegistry.local_copy``)."""
        return ModelRegistry(self.registry).local_copy(self.version, Path(self.cache).expanduser())


@dataclass(frozen=True)
class ModelVersion:
    """A served model version, as the deployments see it.

    Attributes:
        name: the version's name in the API (``version`` form field, ``X-KGI-Version`` header).
        directory: absolute path of its folder on the node that resolved the config.
        working_height: the height try-ons are made at; None: the photo's own, up to 1024 rows.
        sampler: the folder's sampler settings with the config's overrides applied.
        description, parse_height, inpaint_height: from the folder's ``version.yaml``.
        source: the registry version it was pulled from; ``None`` for a folder every node reads at ``directory``.
    """

    name: str
    directory: str
    working_height: int | None
    sampler: SamplerSettings
    description: str = ""
    parse_height: int = 0
    inpaint_height: int = 0
    source: RegistrySource | None = None

    @property
    def weights_id(self) -> str:
        """What the version's networks are loaded from, and the stage deployments' multiplexed model id: the
        registry version's ``s3://`` location, else the folder (local registries' versions are folders too).
        Versions that differ only in sampler settings or working height share it, and so one loaded network."""
        if self.source is not None and self.source.registry.startswith(S3_SCHEME):
            return f"{self.source.registry.rstrip('/')}/{self.source.version}"
        return self.directory

    def local_directory(self) -> str:
        """The folder a replica loads, verified against its manifest on the replica's own node
        (:func:`weights_folder` of :attr:`weights_id`). Raises ``kgi.registry.IntegrityError`` naming a file that
        does not match the manifest."""
        return weights_folder(self.weights_id, self.source.cache if self.source is not None else "")

    def card(self) -> dict:
        """What ``GET /v1/models`` says about this version (no file paths; the ingress adds the current weight).
        ``resolution`` is the working size, ``null`` height and width for the photo's own (up to 1024 rows)."""
        height = self.working_height
        width = None if height is None else height * 3 // 4
        return {"name": self.name, "description": self.description,
                "resolution": {"height": height, "width": width}, "default_steps": self.sampler.num_steps,
                "sampler": asdict(self.sampler), "parse_height": self.parse_height,
                "inpaint_height": self.inpaint_height}


def parse_app_args(args: dict | None) -> AppArgs:
    """Validate ``build_app``'s argument mapping; raises ``ValueError`` (pydantic's) naming every bad key."""
    return AppArgs.model_validate(args or {})

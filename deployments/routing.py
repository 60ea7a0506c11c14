"""A/B experiments between model versions: the experiment an Ingress replica runs, and the version a request gets.

Serve has no traffic-split API: the ingress asks a :class:`VersionRouter` which version serves a request, and
sends it down the one set of stage deployments with that version's weights as the multiplexed model id. The
served versions and the experiment (:class:`ExperimentSettings`: the versions, the experiment's id, the weights,
an optional shadow) are the Ingress deployment's ``user_config``, applied in ``reconfigure``: Serve hands the
same value to every Ingress replica, keeps it across replica restarts, and changing it restarts no replica at
all (a lightweight config update), so a new version (from the model registry, say) is served by the running
stage replicas, which load its networks on its first request. Plain Python here (no Ray);
``deployments.experiments`` writes changes through Serve.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deployments.config import VersionArgs, check_version_name
from deployments.errors import RequestError, UnknownVersionError

EXPERIMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$"
# How a request came to its version: drawn by the weights, named by the client, or copied to the shadow version.
ROUTED, REQUESTED, SHADOW = "routed", "requested", "shadow"


class WeightsError(RequestError):
    """An experiment the router cannot use: unknown versions, weights that are not finite numbers >= 0 or sum to
    zero, a bad experiment id or shadow."""

    code = "invalid_weights"


class ShadowSettings(BaseModel):
    """A copy of a share of the routed requests sent to ``version`` as well; its answer is discarded (only its
    latency and errors are recorded)."""

    model_config = ConfigDict(extra="forbid")
    version: str
    share: float = Field(ge=0, le=1, allow_inf_nan=False)


class ExperimentSettings(BaseModel):
    """The Ingress's ``user_config``: the served versions and one experiment between them.

    Attributes:
        versions: name -> :class:`~deployments.config.VersionArgs`, in routing order (:meth:`parse` wants at
            least one).
        experiment: the experiment's id. It salts the users' sticky hash: a new id reshuffles who sees what, and
            the report counts each experiment apart.
        weights: version -> weight >= 0 (normalised to shares; versions left out get 0).
        shadow: optionally, a version that also receives a copy of ``share`` of the routed requests.
    """

    model_config = ConfigDict(extra="forbid")
    versions: dict[str, VersionArgs] = Field(default_factory=dict)
    experiment: str = Field("default", pattern=EXPERIMENT_ID_PATTERN)
    weights: dict[str, float] = Field(default_factory=dict)
    shadow: ShadowSettings | None = None

    @classmethod
    def parse(cls, value: Mapping) -> ExperimentSettings:
        """Validate a ``user_config`` (or a PUT body); raises ``WeightsError`` saying what is wrong. Only the
        settings themselves are checked: that each version's folder exists is
        ``deployments.config.AppArgs.resolve_versions``'s part."""
        try:
            settings = cls.model_validate(dict(value))
            for name in settings.versions:
                check_version_name(name)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors())
            raise WeightsError(f"experiment: {problems}") from None
        except ValueError as exc:
            raise WeightsError(f"versions: {exc}") from None
        versions = tuple(settings.versions)
        if not versions:
            raise WeightsError("versions: at least one version must be served")
        VersionRouter(versions, settings)  # raises WeightsError for unusable weights
        if settings.shadow is not None and settings.shadow.version not in versions:
            raise WeightsError(f"shadow: {settings.shadow.version!r} is not served; served versions are "
                               f"{list(versions)}")
        return settings


class VersionRouter:
    """Chooses the version that serves a request, in one experiment.

    In order: an explicitly requested version wins; else a request carrying a user id goes where the user's
    sticky point ``u = hash(experiment id, user id)`` in [0, 1) falls on the cumulative normalised weights (the
    same user gets the same version for as long as the experiment and its weights stay); else a random draw by the
    weights.

    Args:
        versions: the served versions, in the order their intervals are laid out on [0, 1).
        settings: the experiment; with no weights, every version gets the same share.
        rng: the random source of anonymous draws and shadow copies (seed it for reproducible tests).

    Raises ``WeightsError`` for an unknown version, a weight that is not a finite number >= 0, or a zero total.
    """

    def __init__(self, versions: tuple[str, ...], settings: ExperimentSettings | None = None,
                 rng: random.Random | None = None):
        self.versions = tuple(versions)
        if not self.versions:
            raise WeightsError("weights: at least one version is needed")
        self.settings = settings or ExperimentSettings()
        self.rng = rng or random.Random()
        weights = self.settings.weights or dict.fromkeys(self.versions, 1.0)
        unknown = sorted(set(weights) - set(self.versions))
        if unknown:
            raise WeightsError(f"weights: unknown version(s) {unknown}; served versions are {list(self.versions)}")
        raw = []
        for name in self.versions:
            weight = weights.get(name, 0.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                    or weight < 0:
                raise WeightsError(f"weights: {name!r} must be a finite number >= 0, got {weight!r}")
            raw.append(float(weight))
        total = sum(raw)
        if total <= 0:
            raise WeightsError("weights: at least one version needs a positive weight")
        self._shares = [weight / total for weight in raw]
        self._bounds = np.cumsum(self._shares)  # (versions,) upper end of each version's interval on [0, 1)

    @property
    def experiment(self) -> str:
        return self.settings.experiment

    @property
    def weights(self) -> dict[str, float]:
        """The current weights, normalised to sum to 1."""
        return dict(zip(self.versions, self._shares, strict=True))

    def choose(self, requested: str | None = None, user_id: str | None = None) -> tuple[str, str]:
        """The version for a request, and how it was chosen (``REQUESTED`` or ``ROUTED``).

        Args:
            requested: the version the client asked for by name, if any.
            user_id: a stable client identifier (the ``X-User-Id`` header), if any.

        Raises ``UnknownVersionError`` when ``requested`` is not served.
        """
        if requested is not None:
            if requested not in self.versions:
                raise UnknownVersionError(f"version: {requested!r} is not served; choose one of "
                                          f"{list(self.versions)} or leave it out")
            return requested, REQUESTED
        point = sticky_point(user_id, self.experiment) if user_id else self.rng.random()
        return self.version_at(point), ROUTED

    def shadow_for(self, version: str) -> str | None:
        """The shadow version a routed request of ``version`` is copied to, or ``None`` (a draw by the share)."""
        shadow = self.settings.shadow
        if shadow is None or shadow.version == version or self.rng.random() >= shadow.share:
            return None
        return shadow.version

    def version_at(self, point: float) -> str:
        """The version whose interval of [0, 1) holds ``point`` (intervals laid out in version order)."""
        index = int(np.searchsorted(self._bounds, point, side="right"))
        # Floating-point sums may end a hair below 1: a point there belongs to the last version with weight.
        index = min(index, max(i for i, share in enumerate(self._shares) if share > 0))
        return self.versions[index]


def sticky_point(user_id: str, experiment: str) -> float:
    """A user's fixed point in [0, 1) for one experiment: the first 8 bytes of SHA-256 of ``experiment`` and the
    user id, as a fraction of 2**64. The experiment salts it, so each experiment draws its own split of users."""
    digest = hashlib.sha256(f"{experiment}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64

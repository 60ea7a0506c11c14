"""Garments for the synthetic generator: their parameters, kinds of top, and random draws.

A garment is described once, in *shoulder units* (the distance between its two shoulder points is 1);
:mod:`kgi.data.garment_geometry` turns the description into keypoints (flat and worn) and a triangle mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kgi.graphs import SLEEVE_TYPES

NECKLINES: tuple[str, ...] = ("round", "v")
# Kinds of top, each drawn with its own proportions (:func:`with_kind`); "classic" is the plain draw. The kinds
# a sleeve type can take: a tank or camisole has no sleeves, three-quarter sleeves count as long.
GARMENT_KINDS: tuple[str, ...] = ("classic", "tank", "camisole", "deep_v", "three_quarter", "bodysuit", "ties",
                                  "collar", "wrap")
KINDS_BY_SLEEVE: dict[str, tuple[str, ...]] = {
    "none": ("classic", "tank", "camisole", "deep_v", "bodysuit", "ties", "wrap"),
    "short": ("classic", "deep_v", "bodysuit", "ties", "collar", "wrap"),
    "long": ("classic", "three_quarter", "deep_v", "bodysuit", "collar", "wrap"),
}
# Kinds whose product photo shows the inside of the back above the front neckline (the outline is the back's).
SHOWS_BACK: tuple[str, ...] = ("collar", "wrap")
SHOWS_BACK_SHARE = 0.6  # of the other kinds' product photos show the inside of the back too
LABEL_SHARE = 0.7  # of the photos that show it have a brand label sewn there
LABEL_COLOURS = ((244, 244, 240), (236, 228, 208), (28, 28, 30))  # white, cream, black
PATTERNS: tuple[str, ...] = ("solid", "stripes", "checks", "dots")
PRINTS: tuple[str, ...] = ("none", "text", "logo")
# Lengths drawn (shoulder line to hem, shoulder units), sleeveless then sleeved. A sleeved garment's unit is its
# own shoulder width, about 1.35 of the wearer's joints' (``kgi.data.garment_geometry.worn_keypoints``), so on
# the body both reach from a crop top to below the hips (1.25-2.0 and 1.35-2.2 joint units).
LENGTHS = ((1.25, 2.0), (1.0, 1.6))
BODYSUIT_LENGTHS = ((2.2, 2.5), (1.65, 1.85))  # to the crotch
# Luminance difference (0..255) between a garment's base colour and its pattern and print colours.
MIN_CONTRAST = 60.0


class GarmentError(ValueError):
    """Garment parameters, a pose or a body shape that cannot be used (named in the message)."""


@dataclass(frozen=True)
class GarmentParams:
    """One garment. Lengths are in shoulder units: a sleeved garment's own shoulder width (shoulder point to
    shoulder point = 1), a sleeveless one's wearer's (shoulder joint to shoulder joint = 1; its straps sit inside).

    Attributes:
        sleeve: ``"long"``, ``"short"`` or ``"none"``.
        body_width: width across the armpits.
        length: shoulder line to hem (1.2 is a crop top, 2.0 reaches below the hips).
        neckline: ``"round"`` or ``"v"``.
        neck_width: width between the neck corners (nodes 0 and 4).
        neck_depth: neck corners to centre front (node 2).
        armhole_depth: shoulder line to armpit.
        shoulder_slope: degrees the shoulder seam falls from the neck corner to the shoulder point.
        hem_flare: hem width over body width.
        strap_inset: sleeveless only: how far each shoulder point sits inside the wearer's shoulder joint.
        sleeve_length: how far the sleeve reaches: a fraction of the whole arm (armhole to wrist) when long; when
            short, of the product photo's upper arm (``kgi.data.garment_geometry.FLAT_UPPER_ARM`` shoulder units);
            0 when sleeveless.
        sleeve_width: sleeve width where it leaves the armhole (the axis's first station).
        cuff_width: sleeve width at the cuff.
        flat_sleeve_angle: degrees below horizontal the sleeves point in the product photo (long sleeves hang
            steeper, 60-80, as in product photos, or the garment would fill a fifth of the photo).
        colours: RGB colours, base colour first (the pattern uses the second, the print the third).
        pattern: ``"solid"``, ``"stripes"``, ``"checks"`` or ``"dots"``.
        pattern_period: stripe/check/dot period as a fraction of the image width.
        pattern_angle: stripe direction in degrees (0 = horizontal stripes).
        print_kind: ``"none"``, ``"text"`` or ``"logo"`` on the chest.
        print_text: the printed word (text prints) or logo shape name (logos).
        kind: one of ``GARMENT_KINDS``; ``"ties"`` hangs two ties below the hem of the product photo (not part
            of the garment's keypoints).
        shows_back: the product photo shows the inside of the back above the front neckline (always for
            ``SHOWS_BACK`` kinds; a flat top's back neckline is higher than its front one).
        label: RGB colour of a brand label sewn at the centre of the inside of the back (seen when
            ``shows_back``), or None.
        back_light: the inside of the back's brightness over the front's, for a kind not in ``SHOWS_BACK``
            (those draw theirs with the photo's shading, as generator 1.3 did).
    """

    sleeve: str
    body_width: float
    length: float
    neckline: str
    neck_width: float
    neck_depth: float
    armhole_depth: float
    shoulder_slope: float
    hem_flare: float
    strap_inset: float
    sleeve_length: float
    sleeve_width: float
    cuff_width: float
    flat_sleeve_angle: float
    colours: tuple[tuple[int, int, int], ...]
    pattern: str
    pattern_period: float
    pattern_angle: float
    print_kind: str
    print_text: str
    kind: str = "classic"
    shows_back: bool = False
    label: tuple[int, int, int] | None = None
    back_light: float = 0.7

    def __post_init__(self):
        if self.kind not in GARMENT_KINDS:
            raise GarmentError(f"kind: expected one of {GARMENT_KINDS}, got {self.kind!r}")
        if self.sleeve not in SLEEVE_TYPES:
            raise GarmentError(f"sleeve: expected one of {SLEEVE_TYPES}, got {self.sleeve!r}")
        if self.neckline not in NECKLINES:
            raise GarmentError(f"neckline: expected one of {NECKLINES}, got {self.neckline!r}")
        if self.pattern not in PATTERNS:
            raise GarmentError(f"pattern: expected one of {PATTERNS}, got {self.pattern!r}")
        if self.print_kind not in PRINTS:
            raise GarmentError(f"print_kind: expected one of {PRINTS}, got {self.print_kind!r}")
        for name in ("body_width", "length", "neck_width", "neck_depth", "armhole_depth", "hem_flare",
                     "sleeve_width", "cuff_width", "pattern_period"):
            if not getattr(self, name) > 0:
                raise GarmentError(f"{name}: expected a positive number, got {getattr(self, name)!r}")
        if not self.neck_width < 1 - 2 * self.strap_inset:
            raise GarmentError(f"neck_width: {self.neck_width} leaves no shoulder seam (strap inset "
                               f"{self.strap_inset})")
        if len(self.colours) < 3:
            raise GarmentError(f"colours: expected at least 3 RGB colours, got {len(self.colours)}")


@dataclass(frozen=True)
class BodyShape:
    """The wearer's torso and arm outline, in shoulder units (pose shoulder joint to shoulder joint = 1).

    Attributes:
        chest: half-width of the torso at the armpits.
        waist: half-width at the waist (60% of the way from the shoulders to the hips).
        hips: half-width at the hip joints and below.
        armpit_depth: shoulder line to armpit.
        arm_radius: radius of the arm at the shoulder, elbow and wrist.
    """

    chest: float
    waist: float
    hips: float
    armpit_depth: float
    arm_radius: tuple[float, float, float]

    def half_width(self, depth: np.ndarray, hip_depth: float) -> np.ndarray:
        """Torso half-width at ``depth`` below the shoulder line (both in shoulder units)."""
        stations = [self.armpit_depth, 0.6 * hip_depth, hip_depth]
        return np.interp(depth, stations, [self.chest, self.waist, self.hips])


def sample_garment(rng: np.random.Generator) -> GarmentParams:
    """Draw a random garment: sleeve types in equal shares, varied necklines, lengths, patterns and prints."""
    sleeve = SLEEVE_TYPES[rng.integers(len(SLEEVE_TYPES))]
    neckline = NECKLINES[rng.integers(len(NECKLINES))]
    body_width = rng.uniform(0.86, 1.08)
    if sleeve == "long":
        sleeve_length, sleeve_width, cuff_width = rng.uniform(0.85, 1.0), rng.uniform(0.3, 0.38), rng.uniform(0.2, 0.28)
    elif sleeve == "short":
        sleeve_length = rng.uniform(0.25, 0.55)
        sleeve_width, cuff_width = rng.uniform(0.34, 0.44), rng.uniform(0.3, 0.4)
    else:
        sleeve_length, sleeve_width, cuff_width = 0.0, 0.3, 0.3
    base = _garment_colour(rng)
    colours = (base, _contrasting(_garment_colour(rng), base), _contrasting(_garment_colour(rng), base))
    pattern = PATTERNS[rng.choice(len(PATTERNS), p=[0.25, 0.35, 0.2, 0.2])]
    print_kind = PRINTS[rng.choice(len(PRINTS), p=[0.55, 0.3, 0.15])]
    words = ("KGI", "RAY", "HELLO", "TRY ON", "2023", "SUMMER", "NYC", "LOVE", "CLUB", "GEO")
    logos = ("circle", "triangle", "star", "diamond")
    print_text = {"none": "", "text": words[rng.integers(len(words))],
                  "logo": logos[rng.integers(len(logos))]}[print_kind]
    return GarmentParams(
        sleeve=sleeve, body_width=body_width, length=rng.uniform(*LENGTHS[sleeve != "none"]), neckline=neckline,
        neck_width=rng.uniform(0.3, 0.46),
        neck_depth=rng.uniform(0.08, 0.2) if neckline == "round" else rng.uniform(0.22, 0.42),
        armhole_depth=rng.uniform(0.36, 0.48), shoulder_slope=rng.uniform(6.0, 18.0),
        hem_flare=rng.uniform(0.95, 1.2), strap_inset=rng.uniform(0.14, 0.22) if sleeve == "none" else 0.0,
        sleeve_length=sleeve_length, sleeve_width=sleeve_width, cuff_width=cuff_width,
        flat_sleeve_angle=rng.uniform(20.0, 50.0) if sleeve != "long" else rng.uniform(60.0, 80.0),
        colours=colours, pattern=pattern, pattern_period=rng.uniform(0.025, 0.07),
        pattern_angle=float(rng.choice([0.0, 90.0, 45.0, -45.0, 30.0, -60.0])),
        print_kind=print_kind, print_text=print_text)


def with_kind(params: GarmentParams, rng: np.random.Generator, kind: str | None = None) -> GarmentParams:
    """``params`` made into ``kind``, or a random kind of top its sleeve type can be (``KINDS_BY_SLEEVE``,
    classic half the time).

    tank: deep armholes and wide straps; camisole: thin straps, a deep neckline, a level shoulder; deep_v: a V
    to mid-chest; three_quarter: a long sleeve ending between elbow and wrist; bodysuit: below the hips,
    narrowing to the crotch; ties: two ties hanging below the hem (product photo only); collar: a shirt or polo
    collar over a V opening; wrap: a V whose one front crosses over the other. The product photo of a collar or
    wrap shows the inside of the back above the front neckline (``SHOWS_BACK``), and so does ``SHOWS_BACK_SHARE``
    of the others', with a brand label sewn at its centre in ``LABEL_SHARE`` of those.
    """
    if kind is None:
        others = KINDS_BY_SLEEVE[params.sleeve][1:]
        kind = "classic" if rng.uniform() < 0.5 else others[rng.integers(len(others))]
    elif kind not in KINDS_BY_SLEEVE[params.sleeve]:
        raise GarmentError(f"kind: a {params.sleeve}-sleeve garment cannot be {kind!r} "
                           f"(one of {KINDS_BY_SLEEVE[params.sleeve]})")
    shaped = _shaped_as(params, rng, kind)
    # Drawn after the kind's own numbers, so a kind's shape is what it was before backs and labels were drawn
    # (and from this generator, not the pair's: the person a pair draws is generator 1.3's).
    shows_back = kind in SHOWS_BACK or rng.uniform() < SHOWS_BACK_SHARE
    label = _label_colour(rng, params.colours[0]) if shows_back and rng.uniform() < LABEL_SHARE else None
    return replace(shaped, shows_back=shows_back, label=label, back_light=rng.uniform(0.5, 0.9))


def _shaped_as(params: GarmentParams, rng: np.random.Generator, kind: str) -> GarmentParams:
    """``params`` with ``kind`` and the shape that kind has (``with_kind``)."""
    if kind == "tank":
        inset = rng.uniform(0.2, 0.26)
        return replace(params, kind=kind, armhole_depth=rng.uniform(0.5, 0.62), strap_inset=inset,
                       neck_width=min(params.neck_width, 0.86 - 2 * inset))
    if kind == "camisole":
        inset = rng.uniform(0.27, 0.33)
        return replace(params, kind=kind, strap_inset=inset, neck_width=1 - 2 * inset - rng.uniform(0.07, 0.11),
                       neck_depth=rng.uniform(0.35, 0.5), armhole_depth=rng.uniform(0.45, 0.55),
                       shoulder_slope=rng.uniform(0.0, 6.0))
    if kind == "deep_v":
        return replace(params, kind=kind, neckline="v", neck_depth=rng.uniform(0.45, 0.6))
    if kind == "three_quarter":
        return replace(params, kind=kind, sleeve_length=rng.uniform(0.62, 0.78))
    if kind == "bodysuit":
        return replace(params, kind=kind, length=rng.uniform(*BODYSUIT_LENGTHS[params.sleeve != "none"]),
                       hem_flare=rng.uniform(0.55, 0.7))
    if kind == "collar":
        return replace(params, kind=kind, neckline="v", neck_width=rng.uniform(0.3, 0.4),
                       neck_depth=rng.uniform(0.15, 0.4))
    if kind == "wrap":
        return replace(params, kind=kind, neckline="v", neck_depth=rng.uniform(0.35, 0.55))
    return replace(params, kind=kind)


def _label_colour(rng: np.random.Generator, base: tuple[int, int, int]) -> tuple[int, int, int]:
    """A brand label's colour: white, cream or black, whichever stands out more from the fabric's ``base``."""
    light = LABEL_COLOURS[rng.integers(2)]
    return light if sum(base) < sum(light) / 2 else LABEL_COLOURS[2]


def _garment_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A fabric colour that is never near-white (the product photo's background)."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.15, 0.9), rng.uniform(0.15, 0.88)
    rgb = np.array([np.clip(abs((hue * 6 + offset) % 6 - 3) - 1, 0, 1) for offset in (0, 4, 2)])
    rgb = value * (1 - saturation + saturation * rgb)
    return tuple(int(round(c * 255)) for c in rgb)


def _contrasting(colour: tuple[int, int, int], base: tuple[int, int, int]) -> tuple[int, int, int]:
    """``colour``, pushed darker or lighter if its luminance is within ``MIN_CONTRAST`` of ``base``'s, so a
    pattern or print always shows."""
    weights = np.array([0.299, 0.587, 0.114])
    rgb, luma = np.array(colour, dtype=np.float64), float(np.array(base) @ weights)
    if abs(rgb @ weights - luma) >= MIN_CONTRAST:
        return colour
    if luma > 128:  # darken to luma - MIN_CONTRAST
        rgb *= max(luma - MIN_CONTRAST, 0.0) / max(rgb @ weights, 1.0)
    else:  # lighten towards white until luma + MIN_CONTRAST
        target = min(luma + MIN_CONTRAST, 235.0)
        rgb += (255 - rgb) * (target - rgb @ weights) / max(255 - rgb @ weights, 1.0)
    return tuple(int(round(c)) for c in np.clip(rgb, 0, 255))

"""Texture by example (``kgi.texture``): painted skin takes the visible skin's fine detail, not its features, and a
painted garment its kept cloth's."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from kgi.composite import composite
from kgi.data.labels import BOTTOM, FACE_NECK, LEFT_ARM
from kgi.texture import LOCAL_MEAN, DetailTexture, patch_side

SKIN = np.array([0.80, 0.58, 0.47], np.float32)


def textured_skin(height: int, width: int, spread: float, seed: int = 0) -> np.ndarray:
    """(height, width, 3) skin with relative detail of ``spread`` (a standard deviation) over a slow shading."""
    rng = np.random.default_rng(seed)
    shading = np.linspace(0.9, 1.05, width, dtype=np.float32)[None, :, None]
    return SKIN * shading * (1 + spread * rng.standard_normal((height, width, 1)).astype(np.float32))


def test_detail_keeps_the_sources_spread_and_leaves_its_features_out():
    """Detail laid on other pixels has the source's spread and zero mean, whatever the source's shading; a dark
    spot in the source (an eye, a mole) is not copied."""
    height, width = 1024, 768
    image = np.zeros((height, width, 3), np.float32)
    image[100:400, 100:400] = textured_skin(300, 300, 0.03)
    image[240:260, 240:260] *= 0.3  # a dark spot, 70% darker than the skin
    source = np.zeros((height, width), bool)
    source[100:400, 100:400] = True
    texture = DetailTexture(image, source)
    assert texture and patch_side(height) == 16
    rows, columns = np.nonzero(np.ones((300, 200), bool))
    detail = texture.sample(rows + 600, columns + 500, np.random.default_rng(1))  # far from the source
    luminance = detail.mean(1)
    assert abs(luminance.mean()) < 0.002
    # The source's detail is the noise less its local mean and its tails beyond 2.5 sigmas: close to its spread,
    # never above it.
    assert 0.8 * 0.03 < luminance.std() <= 0.03, luminance.std()
    assert luminance.min() > -0.2  # the spot (-0.7) is left out


def test_mottled_skin_keeps_most_of_its_spread():
    """Skin mottled in blotches of about 2 pixels (noise blurred by a Gaussian of 2 pixels, at 1024 rows): the
    detail laid elsewhere keeps most of their spread. With the local mean at 4 pixels it kept 0.62-0.65 of it, and
    painted arms read as smooth paper beside the visible skin."""
    height, width = 1024, 768
    image = np.zeros((height, width, 3), np.float32)
    blotches = cv2.GaussianBlur(np.random.default_rng(0).standard_normal((300, 300)).astype(np.float32), (0, 0), 2.0)
    image[100:400, 100:400] = SKIN * (1 + 0.04 * blotches / blotches.std())[..., None]
    source = np.zeros((height, width), bool)
    source[100:400, 100:400] = True
    rows, columns = np.nonzero(np.ones((300, 300), bool))
    detail = DetailTexture(image, source).sample(rows + 600, columns + 400, np.random.default_rng(1))
    spread = detail.mean(1).reshape(300, 300)[20:-20, 20:-20].std()
    assert spread > 0.72 * 0.04, spread / 0.04


def test_no_source_no_detail():
    texture = DetailTexture(np.full((256, 192, 3), 0.5, np.float32), np.zeros((256, 192), bool))
    assert not texture
    assert (texture.sample(np.arange(5), np.arange(5), np.random.default_rng(0)) == 0).all()


def test_a_painted_arm_takes_the_visible_skins_own_detail():
    """A neck of skin with freckle-sized detail (noise blurred over about 2 pixels, kept) and an arm painted whole:
    the arm's detail (pixel over its local mean) has the neck's spread and its grain, neighbouring pixels alike
    (white noise of the same spread, the grain other classes get, would have neighbours unrelated)."""
    height, width = 512, 384
    parse = np.zeros((height, width), np.uint8)
    parse[40:140, 150:234] = FACE_NECK
    parse[150:450, 260:310] = LEFT_ARM
    image = np.full((height, width, 3), 0.9, np.float32)
    freckles = cv2.GaussianBlur(np.random.default_rng(0).standard_normal((100, 84)).astype(np.float32), (0, 0), 1.5)
    image[parse == FACE_NECK] = (SKIN * (1 + 0.05 * freckles / freckles.std())[..., None]).reshape(-1, 3)
    keep = parse != LEFT_ARM
    image[~keep] = 0.5
    as_tensor = lambda array: torch.from_numpy(np.ascontiguousarray(array))  # noqa: E731
    result = composite(torch.zeros(1, 3, 64, 48), as_tensor(image).permute(2, 0, 1)[None],
                       as_tensor(keep)[None, None].float(), as_tensor(parse)[None].long(),
                       as_tensor(parse == FACE_NECK)[None, None].float())[0].permute(1, 2, 0).numpy()

    def detail(pixels: np.ndarray) -> np.ndarray:
        luminance = pixels.mean(-1)
        return luminance / cv2.GaussianBlur(luminance, (0, 0), LOCAL_MEAN * height) - 1  # the texture's scale

    arm, neck = detail(result[200:400, 272:298]), detail(image[50:130, 160:224])
    assert 0.7 * neck.std() < arm.std() < 1.3 * neck.std(), (arm.std(), neck.std())
    neighbours = np.corrcoef(arm[:, :-1].ravel(), arm[:, 1:].ravel())[0, 1]
    assert neighbours > 0.5, neighbours  # the neck's is about 0.8
    assert np.abs(result[200:400, 272:298].mean((0, 1)) - SKIN).max() < 0.08  # still the skin's colour


def test_a_painted_band_of_the_trousers_takes_their_own_weave():
    """Trousers with a weave (noise blurred over about 2 pixels, kept) under a band painted where the old top's
    margin lay: the band's detail has the trousers' spread and grain, as painted skin has the skin's (white noise
    of the same spread, what garments got before, would have neighbours unrelated)."""
    height, width = 512, 384
    parse = np.zeros((height, width), np.uint8)
    parse[200:500, 100:300] = BOTTOM
    trousers = np.array([0.25, 0.30, 0.55], np.float32)
    weave = cv2.GaussianBlur(np.random.default_rng(1).standard_normal((300, 200)).astype(np.float32), (0, 0), 1.5)
    image = np.full((height, width, 3), 0.9, np.float32)
    image[parse == BOTTOM] = (trousers * (1 + 0.08 * weave / weave.std())[..., None]).reshape(-1, 3)
    keep = np.ones((height, width), bool)
    keep[200:230, 100:300] = False  # the band
    image[~keep] = 0.5
    as_tensor = lambda array: torch.from_numpy(np.ascontiguousarray(array))  # noqa: E731
    result = composite(torch.zeros(1, 3, 64, 48), as_tensor(image).permute(2, 0, 1)[None],
                       as_tensor(keep)[None, None].float(), as_tensor(parse)[None].long(),
                       torch.zeros(1, 1, height, width))[0].permute(1, 2, 0).numpy()

    def detail(pixels: np.ndarray) -> np.ndarray:
        luminance = pixels.mean(-1)
        return luminance / cv2.GaussianBlur(luminance, (0, 0), LOCAL_MEAN * height) - 1

    band, kept = detail(result[204:226, 110:290]), detail(image[260:480, 110:290])
    # The detail is learnt from the trousers within TEXTURE_REACH of the band (26 rows here), less their outline
    # and outliers: a little weaker than the whole cloth's.
    assert 0.5 * kept.std() < band.std() < 1.3 * kept.std(), (band.std(), kept.std())
    neighbours = np.corrcoef(band[:, :-1].ravel(), band[:, 1:].ravel())[0, 1]
    assert neighbours > 0.5, neighbours
    assert np.abs(result[204:226, 110:290].mean((0, 1)) - trousers).max() < 0.03  # still the trousers' colour

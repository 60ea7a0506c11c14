"""What product photos show that the flat landmarks must read, on drawn photos: the front neckline
(``kgi.landmarks.neckline``) where a shaded inside, a plain front and a patterned chest are known, and a
strap top whose strap runs straight up from its side (no armhole corner on the outline); and the genuine
garments of ``../shared`` against their landmarks read by eye (skipped where that folder is absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from kgi.data.images import decode_gray, decode_rgb, resize_mask, resize_rgb, width_for
from kgi.landmarks import LandmarkError, flat_garment_keypoints
from kgi.landmarks.neckline import front_neckline
from kgi.models.keypoints import GARMENT_MIRROR
from kgi.preprocess import LANDMARK_HEIGHT, cloth_mask_from_photo, fit_garment

# A drawn garment: a plain rectangle, its outline's (the back's) neckline at TOP, the hem at HEM.
HEIGHT, WIDTH, TOP, HEM, LEFT, RIGHT = 400, 300, 40, 360, 50, 250
# RGB: a rust knit (L* 52), its shaded inside (L* 39), its chest's holes (L* 30) and its collar's shaded sides
# (L* 45): the inside is 13 darker than the plain front, 6-7 darker than the collar's sides and the chest.
FABRIC, INSIDE, HOLES, COLLAR_SIDES = (200, 90, 60), (160, 60, 40), (120, 50, 30), (175, 75, 50)


def _knit_photo(inside_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A rust knit whose chest (below 40% of the body) has dark holes in a fine grid, so the chest's median is
    darker than the plain front above it; a collar band, lit in front and shaded at its sides, and through it the
    inside of the back for ``inside_rows`` below the top, as in a mock neck. Returns the (H, W, 3) uint8 photo
    and its (H, W) bool mask."""
    rgb = np.full((HEIGHT, WIDTH, 3), 245, np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[TOP:HEM, LEFT:RIGHT] = True
    rgb[mask] = FABRIC
    chest = rgb[TOP + int(0.4 * (HEM - TOP)):HEM, LEFT:RIGHT]
    chest[::2, ::2] = HOLES  # a hole in every 2 x 2 pixels: the chest's L* 46
    rgb[TOP:TOP + 50, 95:205] = COLLAR_SIDES
    rgb[TOP:TOP + 50, 130:170] = FABRIC
    rgb[TOP:TOP + inside_rows, 125:175] = INSIDE
    return rgb, mask


def test_a_shaded_inside_above_a_plain_front_over_a_patterned_chest():
    """The inside is darker than the plain front by more than the contrast needed, but not than the patterned
    chest's median or the collar's shaded sides: the front's colour is read on the centre line too."""
    rgb, mask = _knit_photo(inside_rows=30)
    corners = np.array([[125.0, TOP], [175.0, TOP]])
    nodes = front_neckline(rgb, mask, corners, np.array([150.0, TOP]), HEM - TOP)
    assert nodes is not None
    assert abs(nodes[1, 1] - (TOP + 30)) <= 6 and abs(nodes[1, 0] - 150) <= 1  # node 2 at the inside's bottom
    assert nodes[0, 0] < 150 < nodes[2, 0] and TOP < nodes[0, 1] < TOP + 30  # nodes 1 and 3 on its sides


def test_no_inside_keeps_the_outline():
    rgb, mask = _knit_photo(inside_rows=0)
    corners = np.array([[125.0, TOP], [175.0, TOP]])
    assert front_neckline(rgb, mask, corners, np.array([150.0, TOP]), HEM - TOP) is None


def test_a_strap_straight_above_its_side_has_its_armpit_level_with_the_other():
    """A camisole whose image-left strap is set in from the side (a corner where the body starts: the armpit)
    and whose image-right strap runs straight up from the side, so its outline shows no armpit."""
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    for polygon in ([(60, 130), (240, 130), (240, 380), (60, 380)],  # body
                    [(80, 30), (100, 30), (100, 131), (80, 131)],  # image-left strap, set in
                    [(220, 30), (240, 30), (240, 131), (220, 131)]):  # image-right strap, above the side
        cv2.fillPoly(mask, [np.array(polygon, np.int32)], 1)
    rgb = np.where(mask[..., None] > 0, np.uint8(200), np.uint8(245)).astype(np.uint8).repeat(3, axis=2)
    found = flat_garment_keypoints(rgb, mask > 0)
    assert found.sleeve == "none"
    left, right = found.keypoints[14], found.keypoints[22]
    assert abs(left[1] - 130) <= 4 and abs(left[0] - 60) <= 4  # the corner
    assert abs(right[1] - left[1]) <= 0.02 * HEIGHT and abs(right[0] - 240) <= 2  # level, on its side
    mirrored = flat_garment_keypoints(rgb[:, ::-1].copy(), mask[:, ::-1] > 0).keypoints
    assert np.allclose(mirrored[[22, 14], 1], found.keypoints[[14, 22], 1], atol=2)  # the same either way round



def test_straps_straight_above_both_sides_have_their_armpits_where_they_join_the_body():
    """Neither side's outline shows an armpit: they lie where the straps widen into the body, not at the prior
    (0.38 of the body length down, row 163 here)."""
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    for polygon in ([(60, 130), (240, 130), (240, 380), (60, 380)],
                    [(60, 30), (80, 30), (80, 131), (60, 131)], [(220, 30), (240, 30), (240, 131), (220, 131)]):
        cv2.fillPoly(mask, [np.array(polygon, np.int32)], 1)
    rgb = np.where(mask[..., None] > 0, np.uint8(200), np.uint8(245)).astype(np.uint8).repeat(3, axis=2)
    found = flat_garment_keypoints(rgb, mask > 0)
    assert found.sleeve == "none"
    assert np.abs(found.keypoints[[14, 22], 1] - 130).max() <= 4

# --- the genuine garments of ../shared, against their landmarks read by eye --------------------------------------

GENUINE = Path(__file__).resolve().parents[1].parent / "shared"
# Garment -> sleeve type and the heights (fractions of the photo's height) of the front neckline centre 2, the
# armpits 14 and 22 and the hem centre 18, read by eye on the overlay sheet (`kgi landmarks FOLDER --photos`)
# and, for node 2, on the photo with a ruler (where the front's fabric starts below the inside of the back and
# its label). None: not held (06429's pale ruffled V shows no inside below its label: node 2 stays there).
BY_EYE = {
    "vitonhd-sample/test/cloth/00006_00": ("long", 0.09, 0.32, 0.32, 0.67),
    "vitonhd-sample/test/cloth/06396_00": ("short", 0.19, 0.37, 0.37, 0.85),
    "vitonhd-extra/test/cloth/01260_00": ("short", 0.15, 0.42, 0.42, 0.90),  # mock neck: the collar's front edge
    "vitonhd-extra/test/cloth/01430_00": ("short", 0.21, 0.39, 0.39, 0.86),  # front rib, below the label
    "vitonhd-extra/test/cloth/02783_00": ("long", 0.08, 0.33, 0.33, 0.78),
    "vitonhd-extra/test/cloth/03751_00": ("none", 0.13, 0.39, 0.39, 0.94),
    "vitonhd-extra/test/cloth/06429_00": ("none", None, 0.40, 0.40, 0.94),
    "vitonhd-extra/test/cloth/06802_00": ("short", 0.19, 0.48, 0.48, 0.87),  # below a black inside
    "vitonhd-extra/test/cloth/07429_00": ("short", 0.17, 0.44, 0.44, 0.86),
    "vitonhd-extra/test/cloth/11028_00": ("short", 0.17, 0.41, 0.41, 0.86),  # mock neck: the collar's top
    "photos/garments/04469_00": ("short", 0.29, 0.33, 0.33, 0.79),  # wrap front: where its fronts cross
    "photos/garments/04743_00": ("short", 0.17, 0.37, 0.38, 0.86),  # white on white; 22 at the slit's top
    "photos/garments/09133_00": ("none", 0.27, 0.29, 0.29, 0.94),  # white camisole on white
    "photos/garments/09163_00": ("short", 0.16, 0.37, 0.37, 0.90),  # armpits at the slits' tops
    "photos/garments/09164_00": ("short", 0.15, 0.43, 0.43, 0.95),  # front rib, below the label
    "photos/garments/09166_00": ("short", 0.14, 0.46, 0.46, 0.96),
    "photos/garments/09176_00": ("long", 0.22, 0.39, 0.39, 0.79),  # shirt collar: the bottom of its opening
    "photos/garments/09236_00": ("short", 0.11, 0.43, 0.43, 0.77),
}
# Nodes within this fraction of the height of where the eye puts them (the held-out set is checked at 5-8%).
BY_EYE_TOLERANCE = 0.05
# A sleeve's cuff centre (nodes 9-10, 26-27) lies this fraction of the width or more farther out from the centre
# line than its armpit (14, 22): on these garments 0.05-0.17; a cuff found at the armpit (the Minnie tee's
# image-right sleeve before its cuff was sought off the armhole's line) is 0.00.
CUFF_OUTSIDE_ARMPIT = 0.04


GARMENTS_WITH_MASKS = [name for name in BY_EYE if name.startswith("vitonhd")]


@pytest.mark.parametrize("garment, mask_from", [(name, "file") for name in BY_EYE]
                         + [(name, "photo") for name in GARMENTS_WITH_MASKS],
    ids=[name.rsplit("/", 1)[1] for name in BY_EYE]
    + [name.rsplit("/", 1)[1] + "-photo-mask" for name in GARMENTS_WITH_MASKS])
def test_genuine_garment_as_read_by_eye(garment, mask_from):
    """With VITON-HD's own mask where there is one (shop photos have none), and for those garments also with the
    mask made from the photo, as a user who sends the photo alone gets it."""
    photo = GENUINE / f"{garment}.jpg"
    if not photo.is_file():
        pytest.skip(f"the genuine garment photo {photo} is not here")
    rgb = decode_rgb(photo.read_bytes(), source=str(photo))
    mask_file = photo.parent.parent / "cloth-mask" / photo.name
    mask = (decode_gray(mask_file.read_bytes(), source=str(mask_file)) >= 128 if mask_from == "file"
            and mask_file.is_file() else cloth_mask_from_photo(rgb))
    found = flat_garment_keypoints(rgb, mask)
    sleeve, *heights = BY_EYE[garment]
    assert found.sleeve == sleeve
    for node, height in zip((2, 14, 22, 18), heights):
        if height is not None:
            assert abs(found.keypoints[node, 1] / rgb.shape[0] - height) <= BY_EYE_TOLERANCE, node
    if sleeve != "none":
        centre = (found.keypoints[0, 0] + found.keypoints[4, 0]) / 2
        for cuff, armpit in (((9, 10), 14), ((26, 27), 22)):
            out = abs(found.keypoints[list(cuff), 0].mean() - centre) - abs(found.keypoints[armpit, 0] - centre)
            assert out >= CUFF_OUTSIDE_ARMPIT * rgb.shape[1], (cuff, out / rgb.shape[1])


@pytest.mark.parametrize("garment, change", [("photos/garments/09236_00", "smaller"),
                                             ("photos/garments/09176_00", "smaller"),
                                             ("photos/garments/04743_00", "darker"),
                                             ("photos/garments/09163_00", "turned"),
                                             ("photos/garments/09176_00", "turned")])
def test_a_genuine_garment_reads_the_same_framed_lit_or_turned_differently(garment, change):
    """Shops frame and light their photos differently. The red tee 09236 scaled to 0.7 of its photo (centred on
    the backdrop): the slits between its sleeves and body are narrower in pixels, and a mask closing sized by the
    photo's height closed them (armpits read 8% of the height high). The shirt 09176 scaled so: its collar's top
    showed no dip, and the collar top's ends, between which no front neckline shows, put node 2 on the collar's
    top instead of the bottom of its opening (14% of the height up). The white Minnie tee 04743 at 0.92 of its
    brightness: judged pale or not by its dark print alone, it lost its white body and was refused. The polo
    09163 turned by 2 degrees: its collar's rounded top dipped a pixel under the hull edge, read as a neckline
    between corners half as far apart (node 2 8% of the height up). The shirt 09176 turned so: the back's collar
    band, plain cloth at the top of the opening, ended the inside's reach in half its columns (node 2 11% up).
    All read as by eye (``python -m bench.landmark_stability`` measures all 18 garments this way)."""
    photo = GENUINE / f"{garment}.jpg"
    if not photo.is_file():
        pytest.skip(f"the genuine garment photo {photo} is not here")
    rgb = decode_rgb(photo.read_bytes(), source=str(photo))
    height, width = rgb.shape[:2]
    matrix = {"smaller": np.float32([[0.7, 0, 0.15 * width], [0, 0.7, 0.15 * height]]),
              "turned": cv2.getRotationMatrix2D((width / 2, height / 2), 2.0, 1.0),
              "darker": np.float32([[1, 0, 0], [0, 1, 0]])}[change]
    if change == "darker":
        image = np.clip(rgb * 0.92, 0, 255).round().astype(np.uint8)
    else:
        backdrop = np.median(np.concatenate([rgb[0], rgb[-1]]), axis=0).tolist()
        image = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_AREA, borderValue=backdrop)
    found = flat_garment_keypoints(image, cloth_mask_from_photo(image))
    inverse = cv2.invertAffineTransform(matrix)
    in_original = found.keypoints @ inverse[:, :2].T + inverse[:, 2]
    sleeve, *heights = BY_EYE[garment]
    assert found.sleeve == sleeve
    for node, by_eye in zip((2, 14, 22, 18), heights):
        assert abs(in_original[node, 1] / height - by_eye) <= BY_EYE_TOLERANCE, node


@pytest.mark.parametrize("garment, scale, degrees", [("vitonhd-sample/test/cloth/06396_00", 0.9, 0.0),
                                                      ("vitonhd-sample/test/cloth/06396_00", 1.0, 3.0),
                                                      ("vitonhd-extra/test/cloth/06802_00", 1.0, -1.0)])
def test_a_front_neckline_is_read_however_the_photo_is_framed(garment, scale, degrees):
    """Node 2 of a photo scaled or turned about its centre lies within 3% of the height of the photo's own.

    The red and white striped tee 06396: smoothed, each stripe's edge is a colour between the two. Judged by the
    palette's colours alone, the fabric described 0.43-0.58 of the body, about the threshold below which a busy
    print keeps the outline's neckline, so at 0.9 of its photo, or turned by 3 degrees, node 2 went up to the back's
    collar top, 5.6% of the height from the reading as sent; a mixture of two of the palette's colours is the fabric
    too (0.84-0.92). The polka-dot top 06802 turned by 1 degree: a run of fabric started a row above its neck corner
    in the path's last column, so no path could end at the corner, and node 2 went up to the back's collar (5.5%)."""
    photo = GENUINE / f"{garment}.jpg"
    if not photo.is_file():
        pytest.skip(f"the genuine garment photo {photo} is not here")
    rgb = decode_rgb(photo.read_bytes(), source=str(photo))
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
    backdrop = np.median(np.concatenate([rgb[0], rgb[-1]]), axis=0).tolist()
    image = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_AREA, borderValue=backdrop)
    sent = flat_garment_keypoints(rgb, cloth_mask_from_photo(rgb)).keypoints
    found = flat_garment_keypoints(image, cloth_mask_from_photo(image)).keypoints
    inverse = cv2.invertAffineTransform(matrix)
    in_original = found @ inverse[:, :2].T + inverse[:, 2]
    assert np.linalg.norm(in_original[2] - sent[2]) / height <= 0.03


@pytest.mark.parametrize("garment", list(BY_EYE), ids=[name.rsplit("/", 1)[1] for name in BY_EYE])
def test_a_genuine_garment_mirrored_reads_as_the_mirror_of_its_reading(garment):
    """A garment photographed the other way round: every node of its reading, mirrored back, within 5% of the
    height of the photo as sent, in the service's 3:4 frame (``kgi.preprocess.fit_garment``, as ``kgi tryon``
    reads it). Before: the Stussy tee 09164, whose sleeves widen to the cuff, read the armpit itself as its
    image-left cuff's inner corner (the whole inner edge square to the corner direction, every point a tie), then
    its shoulder at the neck, and was refused; the mock neck 01260's rounded collar top, whose hull over the
    centre was a sliver of it, had its neckline 4% of the top's width (node 0 9% of the height off)."""
    photo = GENUINE / f"{garment}.jpg"
    if not photo.is_file():
        pytest.skip(f"the genuine garment photo {photo} is not here")
    rgb = decode_rgb(photo.read_bytes(), source=str(photo))
    mask = cloth_mask_from_photo(rgb)
    fit = min(LANDMARK_HEIGHT / rgb.shape[0], width_for(LANDMARK_HEIGHT) / rgb.shape[1])
    size = max(round(rgb.shape[0] * fit), 1), max(round(rgb.shape[1] * fit), 1)
    framed, framed_mask, _ = fit_garment(resize_rgb(rgb, *size), resize_mask(mask, *size), None)
    sent = flat_garment_keypoints(framed, framed_mask)
    mirrored = flat_garment_keypoints(np.ascontiguousarray(framed[:, ::-1]), np.ascontiguousarray(framed_mask[:, ::-1]))
    assert mirrored.sleeve == sent.sleeve
    back = mirrored.keypoints[list(GARMENT_MIRROR)].astype(np.float64)
    back[:, 0] = framed.shape[1] - 1 - back[:, 0]
    moved = np.linalg.norm(back - sent.keypoints, axis=1) / framed.shape[0]
    assert moved.max() <= BY_EYE_TOLERANCE, (int(moved.argmax()), float(moved.max()))


def test_a_genuine_garment_cut_off_by_its_photo_is_refused():
    """The Gucci tee 09166 fills its photo (its sleeves touch the sides); scaled to 1.1 about the centre, its collar
    and hem run off the top and bottom edges and node 2 read 9% of the height off. Refused, saying so."""
    photo = GENUINE / "photos/garments/09166_00.jpg"
    if not photo.is_file():
        pytest.skip(f"the genuine garment photo {photo} is not here")
    rgb = decode_rgb(photo.read_bytes(), source=str(photo))
    height, width = rgb.shape[:2]
    assert flat_garment_keypoints(rgb, cloth_mask_from_photo(rgb)).sleeve == "short"  # as sent: read
    matrix = np.float32([[1.1, 0, -0.05 * width], [0, 1.1, -0.05 * height]])
    backdrop = np.median(np.concatenate([rgb[0], rgb[-1]]), axis=0).tolist()
    image = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_AREA, borderValue=backdrop)
    with pytest.raises(LandmarkError, match="not wholly in the photo: it runs off the photo's top edge"):
        flat_garment_keypoints(image, cloth_mask_from_photo(image))


def test_a_mock_necks_front_edge_spans_its_collars_top_not_a_notch():
    """01260's mock neck, with the mask made from its photo: the outline's top has no dip, and its front edge
    lies just below the top. Its neck corners are the collar top's ends, so the neckline is a
    shallow curve across the collar (worn, the neck shows above it), not a V as deep as it is wide between corners
    bunched at the middle (worn, a notch cut into the collar)."""
    photo = GENUINE / "vitonhd-extra/test/cloth/01260_00.jpg"
    if not photo.is_file():
        pytest.skip(f"the genuine garment photo {photo} is not here")
    rgb = decode_rgb(photo.read_bytes(), source=str(photo))
    keypoints = flat_garment_keypoints(rgb, cloth_mask_from_photo(rgb)).keypoints
    spacing = keypoints[4, 0] - keypoints[0, 0]
    assert spacing >= 0.2 * rgb.shape[1]
    assert keypoints[2, 1] - keypoints[[0, 4], 1].max() <= 0.5 * spacing


def test_a_wrap_tops_tie_is_not_its_hem_corner():
    """The wrap top 04469's tie, knotted at its side and hanging past the hem, is 9% of the garment's width,
    wider than the thin ties cut before the outline is read: its end was read as the hem corner 19, 4% of the
    height below the hem centre and 7% below the other corner (worn, stage 1 drew the top lopsided, one short
    sleeve down to near the elbow). The corners lie on the hem, which slants up to the tie's side: by eye 0.77,
    0.79 and 0.74 of the height. Turned by 3 degrees or less either way, the same: the tie hangs 5% of the height
    past the hem in its own columns (measured from the hem centre, turned by 3 degrees the other way, it fell a
    pixel short and its end was corner 19 again, 10% of the height off)."""
    photo = GENUINE / "photos/garments/04469_00.jpg"
    if not photo.is_file():
        pytest.skip(f"the genuine garment photo {photo} is not here")
    rgb = decode_rgb(photo.read_bytes(), source=str(photo))
    height, width = rgb.shape[:2]
    backdrop = np.median(np.concatenate([rgb[0], rgb[-1]]), axis=0).tolist()
    for degrees in (0.0, 3.0, -3.0):
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
        image = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_AREA, borderValue=backdrop)
        found = flat_garment_keypoints(image, cloth_mask_from_photo(image))
        assert found.sleeve == "short"
        inverse = cv2.invertAffineTransform(matrix)
        hem = (found.keypoints @ inverse[:, :2].T + inverse[:, 2])[[17, 18, 19], 1] / height
        within = 0.03 if degrees else 0.02  # turned, a rounded corner's farthest point slides along it
        assert np.abs(hem - [0.77, 0.79, 0.74]).max() <= within, (degrees, hem)

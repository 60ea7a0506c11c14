"""What product photos show that the flat landmarks must read, on drawn photos: the front neckline
(``kgi.landmarks.neckline``) where a shaded inside, a plain front and a patterned chest are known, and a
strap top whose strap runs straight up from its side (no armhole corner on the outline)."""

from __future__ import annotations

import cv2
import numpy as np

from kgi.landmarks import flat_garment_keypoints
from kgi.landmarks.neckline import front_neckline

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

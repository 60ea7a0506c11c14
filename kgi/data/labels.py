"""Human-parse label sets: the 20 CIHP labels of VITON-HD and the 13 classes the models use.

The 13-class grouping is the common one (BRIEF.md section 2) with one deliberate change: neck skin
(CIHP 10) joins the face class instead of the background. In try-on the neck is exposed skin whose extent
changes with the new garment's neckline, so the target-parse network must predict it and the inpainter must
paint skin there, not background.
"""

from __future__ import annotations

import numpy as np

CIHP_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks", "pants",
    "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg", "right-leg",
    "left-shoe", "right-shoe",
)
NUM_CIHP = len(CIHP_LABELS)

# Palette of the VITON-HD ``image-parse-v3`` PNGs (the LIP/CIHP palette), RGB per label.
CIHP_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (254, 0, 0), (0, 85, 0), (169, 0, 51), (254, 85, 0), (0, 0, 85), (0, 119, 220),
    (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 254), (51, 169, 220),
    (0, 254, 254), (85, 254, 169), (169, 254, 85), (254, 254, 0), (254, 169, 0),
)

PARSE13_LABELS: tuple[str, ...] = (
    "background", "hair", "face-neck", "upper", "bottom", "left-arm", "right-arm",
    "left-leg", "right-leg", "left-shoe", "right-shoe", "socks", "noise",
)
NUM_PARSE13 = len(PARSE13_LABELS)
UPPER = PARSE13_LABELS.index("upper")
FACE_NECK = PARSE13_LABELS.index("face-neck")
LEFT_ARM = PARSE13_LABELS.index("left-arm")
RIGHT_ARM = PARSE13_LABELS.index("right-arm")
BOTTOM = PARSE13_LABELS.index("bottom")



def mirror_table(labels: tuple[str, ...]) -> np.ndarray:
    """Label -> the label of its mirror image (``left-X`` and ``right-X`` swap under a horizontal flip), as a
    (len(labels),) uint8 lookup table for a label set."""
    table = np.arange(len(labels), dtype=np.uint8)
    for index, label in enumerate(labels):
        if label.startswith("left-"):
            right = labels.index("right-" + label[len("left-"):])
            table[index], table[right] = right, index
    return table


MIRRORED_CIHP = mirror_table(CIHP_LABELS)
MIRRORED_PARSE13 = mirror_table(PARSE13_LABELS)

_CIHP_TO_13 = {
    0: 0, 1: 1, 2: 1, 4: 2, 13: 2, 10: 2, 5: 3, 6: 3, 7: 3, 9: 4, 12: 4, 14: 5, 15: 6,
    16: 7, 17: 8, 18: 9, 19: 10, 8: 11, 3: 12, 11: 12,
}
CIHP_TO_PARSE13 = np.array([_CIHP_TO_13[i] for i in range(NUM_CIHP)], dtype=np.uint8)

# CIHP labels the new garment may replace: upper clothes, dress, coat, neck skin, arms. The region the try-on
# repaints (``kgi.recompose.change_region``) is these labels' union, its garment and neck grown by a margin into
# MARGIN_CIHP.
AGNOSTIC_CIHP = (5, 6, 7, 10, 14, 15)
# CIHP labels of the garment a person wears (what must not survive a try-on outside the new garment).
GARMENT_CIHP = (5, 6, 7)
# CIHP labels of the lower garment: pants, skirt.
LOWER_GARMENT_CIHP = (9, 12)
# CIHP labels the change region's margin may take: the old garment's outline is often labelled as its
# neighbour (background, lower garment, scarf, glove); never the face, hair or anything below the waist but the
# lower garment.
MARGIN_CIHP = (0, 3, 9, 10, 11, 12, 14, 15)
FACE_CIHP = 13
NECK_CIHP = 10
HAIR_CIHP = 2
UPPER_CLOTHES_CIHP = 5
# 13-class labels the agnostic parse blanks (they are predicted by the target-parse network). Neck skin is
# part of the face-neck class (the models were trained so), so the parse network's input keeps it; the region
# the try-on repaints takes it from the CIHP parse instead (AGNOSTIC_CIHP).
AGNOSTIC_PARSE13 = (UPPER, LEFT_ARM, RIGHT_ARM)


def to_parse13(cihp: np.ndarray) -> np.ndarray:
    """Group a CIHP label map (H, W) uint8 0..19 into the 13 model classes (H, W) uint8 0..12."""
    if cihp.size and int(cihp.max()) >= NUM_CIHP:
        raise ValueError(f"parse has label {int(cihp.max())}; CIHP labels are 0..{NUM_CIHP - 1}")
    return CIHP_TO_PARSE13[cihp]

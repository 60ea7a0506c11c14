"""Label and landmark numbering the photo parser uses: CIHP labels, BlazePose landmarks, face mesh points."""

from __future__ import annotations

# CIHP labels (kgi.data.labels.CIHP_LABELS; repeated here: this module runs without kgi's dependencies).
BACKGROUND, HAIR, UPPER, PANTS, TORSO_SKIN, SKIRT, FACE = 0, 2, 5, 9, 10, 12, 13
LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE = 14, 15, 16, 17, 18, 19

# BlazePose landmarks (the person's own left and right).
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 0, 11, 12, 13, 14, 15, 16
LEFT_HAND, RIGHT_HAND = (17, 19, 21), (18, 20, 22)  # pinky, index, thumb
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
LEFT_FOOT, RIGHT_FOOT = (29, 31), (30, 32)  # heel, foot index
MIN_VISIBILITY = 0.5

# Face mesh: the face outline, in order around the face, and the chin.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
CHIN = 152
BROWS = (105, 66, 107, 336, 296, 334)  # the eyebrows' upper edge
# Face mesh points on the cheeks and forehead: bare skin, away from eyes, brows and lips. The cheeks are never
# under hair; the forehead may be (a fringe), so the fringe is judged against the cheeks alone.
CHEEK_PATCHES = ((50, 101, 36, 205), (280, 330, 266, 425))
SKIN_PATCHES = (*CHEEK_PATCHES, (108, 151, 337, 9))

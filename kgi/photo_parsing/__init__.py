"""A human parser for genuine photos from mediapipe's shipped models and classical image analysis.

This package runs in the pose environment's worker process (``kgi.pose_estimation``: mediapipe cannot share
Ray's environment), next to BlazePose, so one call gives the pose and the parse of a photo together. It imports
only numpy and OpenCV (mediapipe's models are run by ``kgi.pose_estimation.MediaPipePose``, which hands their
outputs here as plain arrays):

- ``landmarks``: BlazePose's 33 landmarks (x px, y px, visibility);
- ``person``: the probability that a pixel is the person: the mean of BlazePose's segmentation mask and the
  selfie-segmentation model's;
- ``face``: the face mesh's 468 points (x px, y px), or None when no face was found.

From these :func:`parse_photo` builds the CIHP labels of VITON-HD's ``image-parse-v3``, at a working height of
``WORK_HEIGHT`` pixels (labels are then scaled back to the photo):

1. **person**: the mask probability, edge-aligned to the photo with a guided filter, above 0.5; its components
   smaller than a tenth of the largest are dropped;
2. **skin**: a Gaussian colour model (CIE Lab) learnt from the face mesh's cheeks and forehead (lightness is
   given a wider spread than colour, so shaded skin stays skin). A pixel near it is skin when the model explains
   it better than the garments' colour histograms do; near the hands, on the neck and on the legs below a skirt,
   skin has a prior over the garments. That skin is then refined by GrabCut over the person (colour mixtures of
   skin and of the rest, cut along the photo's edges; sure skin where the colour model is confident, surely not
   where the garment seeds are, away from skin): the shaded edges of arms and legs, and fingers, join it. Skin
   likelier the background's colour (learnt around the person) than the face's, in a region deep enough that
   touches the background, is background (a narrow gap between an arm and the body, which the segmentation
   models miss). Nothing between the chin and the neck's skin below it is garment: that is the jaw's shadow on
   the neck (a collar rises from below); nor is a crack a few pixels wide between the neck's skin and the hair
   (the neck's shaded side under the hair). Each skin pixel goes to the nearest body part of the skeleton: an arm
   (CIHP left/right arm, hands included, and no farther than a hand's length past the wrist), a leg, or the
   head-neck-torso line (neck and chest skin: CIHP torso-skin). Where skin of two parts touches (a hand against a
   bare thigh), the photo's edges split it: each part's sure skin (near its own line) floods the rest by a marker
   watershed, and a pixel takes the part whose flood reached it, if within that part's reach; in a skin region
   mostly nearest an arm, leg and belly pixels are the arm's (fingers along a thigh or across the belly);
3. **face**: the face mesh's outline, less a fringe (above the brows, pixels unlike the cheeks in colour and in
   texture that join the hair), plus a high forehead; **hair**: the person above the face outline and, beside
   the face, what is not skin; then the pixels near the head whose colour is likelier hair than skin or upper
   garment (smoothed colour histograms) and that touch it (long hair on the shoulders), never the neck; then
   GrabCut around the head decides the hair's edges, with the face inside its outline, the pixels like the
   cheeks, the neck's core and the garment as surely not hair;
4. **garments**: the rest of the person is upper or lower garment. Each has a colour histogram learnt from
   seed regions the skeleton gives (the chest and upper arms; the thighs), and a boundary line is fitted where
   their likelihood ratio changes sign across the torso (tilted at most 0.1 either way of the hips); a seam near
   that line then follows the photo's edge between the garments (a waistband, a hem) column by column. Each
   pixel then takes the garment of larger likelihood ratio plus a prior that falls steeply across the seam (not
   on the sleeves: down an arm to its first bare row), smoothed over a small neighbourhood; garment left above
   the chin is the face's or the hair's rim; lower garment hanging below its hem (a line fitted where bare leg
   starts under it) beside a bare leg is that leg; the feet, when in view, are shoes;
5. regions of one label too small to matter take their neighbours' label, and the labels are scaled back to
   the photo smoothly, the photo's full-size person mask deciding person from background.

The same cues answer whether a photo can be tried on at all (:func:`photo_problem`): one person, shoulders and
hips in view, upright, large enough, facing the camera. Each refusal says what to send instead.

Modules: ``parse`` (:func:`parse_photo`, the steps above), ``names`` (label and landmark numbering),
``geometry`` (person mask, distances to the skeleton), ``colour`` (skin model, colour histograms, fringe),
``refinement`` (GrabCut of hair and skin, specks), ``regions`` (limbs, sleeves, garment boundary, shoes) and
``checks`` (:func:`photo_problem`).
"""

from kgi.photo_parsing.checks import photo_problem
from kgi.photo_parsing.parse import WORK_HEIGHT, parse_photo

__all__ = ["WORK_HEIGHT", "parse_photo", "photo_problem"]

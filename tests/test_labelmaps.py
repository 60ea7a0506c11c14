"""Label-map helpers: pixel coordinates and nearest pixels agree with their plain numpy and OpenCV definitions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kgi.labelmaps import nearest_pixels, pixels_of


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixels_of_gives_what_nonzero_gives_on_a_whole_mask_and_on_a_box_of_it(seed):
    mask = np.random.default_rng(seed).random((61, 47)) < 0.3
    for part in (mask, mask[5:40, 9:31]):  # a box is a strided view
        rows, columns = pixels_of(part)
        expected_rows, expected_columns = np.nonzero(part)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(columns, expected_columns)


@pytest.mark.parametrize("seed", [0, 1])
def test_nearest_pixels_are_those_of_the_whole_images_distance_transform(seed):
    """Sources scattered over a 300x200 image and pixels asked for in a corner: the box ``nearest_pixels`` works on
    finds each pixel the source that OpenCV's transform of the whole image labels it with."""
    rng = np.random.default_rng(seed)
    sources = rng.random((300, 200)) < 0.002
    where = np.zeros_like(sources)
    where[200:260, 20:90] = rng.random((60, 70)) < 0.5
    where &= ~sources
    (rows, columns), (nearest_rows, nearest_columns) = nearest_pixels(sources, where)
    _, labels = cv2.distanceTransformWithLabels((~sources).astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    source_rows, source_columns = np.nonzero(sources)
    expected = labels[rows, columns] - 1
    np.testing.assert_array_equal(np.stack([rows, columns]), np.nonzero(where))
    np.testing.assert_array_equal(nearest_rows, source_rows[expected])
    np.testing.assert_array_equal(nearest_columns, source_columns[expected])

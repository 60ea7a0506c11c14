"""Colour models of the photo parser: the skin's Gaussian (CIE Lab), smoothed colour histograms, the fringe."""

from __future__ import annotations

import cv2
import numpy as np

# Skin: Mahalanobis distance (Lab) to the face's colour below which a pixel is skin; lightness spread widened.
SKIN_DISTANCE = 3.0
SKIN_DISTANCE_MAX = 5.0  # ... and beyond which it never is, however unlike the garments it looks
SKIN_LIGHTNESS_SPREAD = 1.8
# Above the brows, a pixel farther than FRINGE_DISTANCE from the cheeks' colour and FRINGE_TEXTURE times as
# detailed is hair (a fringe).
FRINGE_DISTANCE, FRINGE_TEXTURE = 3.0, 3.0
HIST_BINS = 16  # per Lab channel, for the garment and hair colour histograms


def skin_model(lab: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian fitted (robustly) to ``samples`` (N, 3) Lab colours, evaluated on ``lab`` (H, W, 3): the
    (H, W) Mahalanobis distance and log density (per unit Lab volume, comparable with :func:`colour_histogram`'s)."""
    mean = np.median(samples, axis=0)
    covariance = np.cov(samples.T) + np.eye(3) * 4.0
    for _ in range(2):  # refit on the samples near the model: drops stray eyebrow, lip or hair pixels
        inverse = np.linalg.inv(covariance)
        difference = samples - mean
        near = np.einsum("ni,ij,nj->n", difference, inverse, difference) < 6.0 ** 2
        if near.sum() > 20:
            mean, covariance = samples[near].mean(axis=0), np.cov(samples[near].T) + np.eye(3) * 4.0
    scale = np.array([SKIN_LIGHTNESS_SPREAD, 1.0, 1.0])
    covariance = covariance * np.outer(scale, scale)
    difference = lab.reshape(-1, 3) - mean
    squared = np.einsum("ni,ij,nj->n", difference, np.linalg.inv(covariance), difference).reshape(lab.shape[:2])
    log_density = -0.5 * squared - 0.5 * np.log((2 * np.pi) ** 3 * np.linalg.det(covariance))
    return np.sqrt(squared).astype(np.float32), log_density.astype(np.float32)


def colour_histogram(quantised: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """A smoothed, normalised (HIST_BINS**3,) colour histogram of the ``mask`` pixels, or None for too few."""
    values = quantised[mask]
    if values.size < 50:
        return None
    counts = np.bincount(values, minlength=HIST_BINS ** 3).astype(np.float64).reshape((HIST_BINS,) * 3)
    for axis in range(3):  # [1, 2, 1] smoothing along each colour axis
        padded = np.pad(counts, [(1, 1) if a == axis else (0, 0) for a in range(3)], mode="edge")
        counts = (np.take(padded, range(0, HIST_BINS), axis) + 2 * np.take(padded, range(1, HIST_BINS + 1), axis)
                  + np.take(padded, range(2, HIST_BINS + 2), axis)) / 4
    return (counts.ravel() + 0.5) / (counts.sum() + 0.5 * HIST_BINS ** 3) / (256 / HIST_BINS) ** 3


def fringe_mask(lab: np.ndarray, quantised: np.ndarray, forehead: np.ndarray, cheeks: np.ndarray,
                cheek_distance: np.ndarray, hair: np.ndarray, hair_hist: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) bool: the pixels of ``forehead`` (the face outline above the brows) under a fringe: unlike the
    cheeks' skin in colour (farther than FRINGE_DISTANCE from their colour model) and in texture (strands: fine
    detail FRINGE_TEXTURE times the cheeks'), both smoothed over ``sigma`` pixels, and joined to the ``hair``."""
    cheek_hist = colour_histogram(quantised, cheeks)
    if cheek_hist is None or not forehead.any():  # cheeks too small to learn from: no fringe
        return np.zeros(forehead.shape, bool)
    distance = cv2.GaussianBlur(cheek_distance, (0, 0), sigma)
    lightness = lab[..., 0]
    detail = cv2.GaussianBlur(np.abs(lightness - cv2.GaussianBlur(lightness, (0, 0), 1.0)), (0, 0), sigma)
    texture = detail / max(float(np.median(detail[cheeks])), 0.5)
    hairlike = cv2.GaussianBlur((np.log(hair_hist[quantised]) - np.log(cheek_hist[quantised])).astype(np.float32),
                                (0, 0), sigma) > 0
    fringe = forehead & (distance > FRINGE_DISTANCE) & (texture > FRINGE_TEXTURE) & hairlike
    count, components = cv2.connectedComponents((fringe | hair).astype(np.uint8), connectivity=8)
    joined = np.zeros(count, bool)
    joined[np.unique(components[hair])] = True
    joined[0] = False
    return fringe & joined[components]

"""The head (everything that is not air) of a slice, by thresholding: the anatomy a mask-conditioned model is given.

A lesion mask says where a lesion goes but not where the head is; a generator told only the lesion
draws a head of its own, and a lesion placed for another head can fall outside its brain. The
head outline of a slice is easy to find in any MR image: air is dark and the scalp is not.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Fraction of the image's 99th intensity percentile above which a smoothed pixel is head, not air.
HEAD_THRESHOLD = 0.15


def head_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool head mask of an (H, W) or (H, W, C) image: the largest bright region, holes filled.

    The image is smoothed (Gaussian, sigma 1 px) against scanner noise, thresholded at
    :data:`HEAD_THRESHOLD` of its 99th percentile, its holes (dark skull, ventricles, dark
    lesions) filled, and only its largest connected region kept. An all-dark image has no head.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    top = float(np.percentile(img, 99))
    if top <= 0:
        return np.zeros(img.shape, bool)
    bright = ndimage.gaussian_filter(img, 1.0) > HEAD_THRESHOLD * top
    labels, n = ndimage.label(bright)
    if n == 0:
        return bright
    largest = 1 + int(np.argmax(ndimage.sum(bright, labels, index=range(1, n + 1))))
    return ndimage.binary_fill_holes(labels == largest)

"""Occlusion maps: how much a class's probability drops when each part of an image is hidden."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from ktlite.arguments import check_float, check_int, check_positive_int
from ktlite.vision.preprocessor import pixel_white


def occlusion_map(
    model: keras.Model | Callable[..., Any],
    image: np.ndarray,
    target: int,
    patch: int | None = None,
    stride: int | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Slides a grey square over a model input and records the drop in one output.

    Each position of a `patch` x `patch` square (filled with the image's mean) gives one
    occluded copy; all copies run through the model in batches. A pixel's value is the
    mean, over the squares that cover it, of `p(target | image) - p(target | occluded)`:
    positive where hiding the pixel lowers the class's probability (evidence for it),
    negative where it raises it.

    Args:
        model: a model taking float images `(batch, height, width, channels)` (or any
            callable `model(batch, training=False)` returning one row of scores each).
        image: one preprocessed image `(height, width, channels)`, as the model takes it.
        target: index of the model output to explain (the class id).
        patch: side of the square; `None` (default) is a seventh of the shorter side
            (4 pixels on 28x28), at least 1.
        stride: step between squares; `None` (default) is half the patch (at least 1).
        batch_size: occluded copies per forward pass. Defaults to 64.

    Returns:
        A float32 `(height, width)` array.

    Raises:
        TypeError: if `target`, `patch`, `stride` or `batch_size` is not an int.
        ValueError: if `image` is not `(height, width, channels)`, `target` is not an
            output index, `patch` is not in `[1, min(height, width)]`, `stride` is not in
            `[1, patch]`, or `batch_size` < 1.

    Example:
        >>> heat = occlusion_map(model, preproc.from_pixels(x[:1])[0].numpy(), target=3)
        >>> heat.shape
        (28, 28)
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    image = np.asarray(image, dtype="float32")
    if image.ndim != 3:
        raise ValueError(
            f"`image` must be one image (height, width, channels). Received: shape {image.shape}"
        )
    height, width, _ = image.shape
    if patch is None:
        patch = max(1, min(height, width) // 7)
    else:
        patch = check_int(patch, "patch", 1, min(height, width))
    stride = max(1, patch // 2) if stride is None else check_int(stride, "stride", 1, patch)
    check_int(target, "target", 0)
    base = np.asarray(model(image[None], training=False))[0]
    target = check_int(target, "target", 0, base.shape[-1] - 1)
    tops = list(range(0, height - patch + 1, stride))
    lefts = list(range(0, width - patch + 1, stride))
    if tops[-1] != height - patch:
        tops.append(height - patch)
    if lefts[-1] != width - patch:
        lefts.append(width - patch)
    corners = [(t, left) for t in tops for left in lefts]
    fill = image.mean(axis=(0, 1))
    drops = []
    for start in range(0, len(corners), batch_size):
        chunk = corners[start:start + batch_size]
        occluded = np.repeat(image[None], len(chunk), axis=0)
        for k, (top, left) in enumerate(chunk):
            occluded[k, top:top + patch, left:left + patch] = fill
        probs = np.asarray(model(occluded, training=False))[:, target]
        drops.append(base[target] - probs)
    drops = np.concatenate(drops)
    total = np.zeros((height, width), "float64")
    count = np.zeros((height, width), "float64")
    for drop, (top, left) in zip(drops, corners):
        total[top:top + patch, left:left + patch] += drop
        count[top:top + patch, left:left + patch] += 1
    return (total / count).astype("float32")


def plot_occlusion(
    image: np.ndarray, heatmap: np.ndarray, ax: Any = None, alpha: float = 0.5,
    cmap: str = "RdBu_r", title: str | None = None,
) -> Any:
    """Draws an occlusion map over its image with matplotlib.

    The map's colours are centred on zero (red: evidence for the class, blue: against).

    Args:
        image: the image `(height, width)` or `(height, width, 1 | 3 | 4)`, scaled as
            `images_from_array` reads pixels: uint8 (white 255), uint16 (white 65535), or
            floats (white 1, or 255 when a pixel is above 2); brighter pixels draw white.
        heatmap: `(height, width)` from `occlusion_map` / `ImagePredictor.explain`.
        ax: a matplotlib `Axes`; a new figure when `None` (default).
        alpha: opacity of the map. Defaults to 0.5.
        cmap: a diverging matplotlib colour map. Defaults to `"RdBu_r"`.
        title: the axes title, or `None`.

    Returns:
        The matplotlib `Axes`.

    Raises:
        TypeError: if `alpha` is not a number.
        ValueError: if `image` has another shape or channel count, the shapes do not
            match or `alpha` is not in `[0, 1]`.

    Example:
        >>> heat = predictor.explain("boot.png")
        >>> plot_occlusion(x_test[0], heat, title="Ankle boot")
    """
    import matplotlib.pyplot as plt

    image = np.asarray(image)
    heatmap = np.asarray(heatmap, dtype="float32")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
        raise ValueError(
            "`image` must be (height, width) or (height, width, 1 | 3 | 4). Received: image "
            f"shape {image.shape}"
        )
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if heatmap.ndim != 2 or image.shape[:2] != heatmap.shape:
        raise ValueError(
            "`heatmap` must be (height, width) of `image`. Received: image shape "
            f"{image.shape}, heatmap shape {heatmap.shape}"
        )
    alpha = check_float(alpha, "alpha", 0.0, 1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    # Shown at its own scale, as RGB is: a grey image is not stretched to its own range.
    image = np.clip(image.astype("float32") / pixel_white(image), 0.0, 1.0)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
    limit = float(np.abs(heatmap).max()) or 1.0
    ax.imshow(heatmap, cmap=cmap, alpha=alpha, vmin=-limit, vmax=limit)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax

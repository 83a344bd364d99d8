"""Where the interest in an image lies, and the crop window that keeps the most of it."""

import numpy as np
from PIL import Image

# The saliency map's longer side: small enough to be cheap, fine enough to place a crop to a
# fraction of a percent of the image.
MAP_SIDE = 256
# Local contrast is the luma spread over a (2r + 1)-pixel square of the map.
CONTRAST_RADIUS = 3
FEATURE_WEIGHTS = {"edges": 0.4, "contrast": 0.3, "saturation": 0.3}
# Windows within this share of the best score count as ties; a tie goes to the window centred
# nearest the saliency's centre of mass, so a subject is framed rather than pushed to an edge and
# a flat image crops like a centre crop.
TIE_TOLERANCE = 0.01
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def smart_crop_box(image: Image.Image, width: int, height: int) -> tuple[int, int, int, int]:
    """The largest box of aspect width:height in `image` holding the most edges, contrast and
    colour, as (left, top, right, bottom)."""
    return crop_window(saliency_map(image), image.size, width, height)


def saliency_map(image: Image.Image) -> np.ndarray:
    """Interest per pixel of a small copy of `image`: weighted edges, local contrast and saturation,
    zero where the image is transparent."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA")
    small = image.reduce(max(1, max(image.size) // MAP_SIDE))
    rgb = np.asarray(small.convert("RGB"), dtype=np.float32) / 255
    luma = rgb @ LUMA_WEIGHTS
    features = {
        "edges": _edges(luma),
        "contrast": _local_contrast(luma),
        "saturation": rgb.max(axis=2) - rgb.min(axis=2),
    }
    saliency = sum(weight * _normalized(features[name]) for name, weight in FEATURE_WEIGHTS.items())
    if small.mode == "RGBA":
        saliency *= np.asarray(small.getchannel("A"), dtype=np.float32) / 255
    return np.asarray(saliency, dtype=np.float64)


def crop_window(
    saliency: np.ndarray, image_size: tuple[int, int], width: int, height: int
) -> tuple[int, int, int, int]:
    """The largest box of aspect width:height in an image of `image_size` whose summed
    `saliency` (a map of that image at any scale) is highest, as (left, top, right, bottom)."""
    image_width, image_height = image_size
    crop_width = min(image_width, max(1, round(image_height * width / height)))
    crop_height = min(image_height, max(1, round(image_width * height / width)))
    map_height, map_width = saliency.shape
    window_width = min(map_width, max(1, round(crop_width * map_width / image_width)))
    window_height = min(map_height, max(1, round(crop_height * map_height / image_height)))
    sums = _window_sums(_integral(saliency), window_height, window_width)
    row, column = _best_window(sums, saliency, window_height, window_width)
    left = min(image_width - crop_width, round(column * image_width / map_width))
    top = min(image_height - crop_height, round(row * image_height / map_height))
    return left, top, left + crop_width, top + crop_height


def _edges(luma: np.ndarray) -> np.ndarray:
    horizontal = np.abs(np.diff(luma, axis=1, append=luma[:, -1:]))
    vertical = np.abs(np.diff(luma, axis=0, append=luma[-1:, :]))
    return horizontal + vertical


def _local_contrast(luma: np.ndarray) -> np.ndarray:
    mean = _box_mean(luma, CONTRAST_RADIUS)
    mean_of_squares = _box_mean(luma * luma, CONTRAST_RADIUS)
    return np.sqrt(np.maximum(mean_of_squares - mean * mean, 0))


def _box_mean(values: np.ndarray, radius: int) -> np.ndarray:
    side = 2 * radius + 1
    padded = np.pad(values, radius, mode="edge")
    return _window_sums(_integral(padded), side, side) / (side * side)


def _normalized(feature: np.ndarray) -> np.ndarray:
    peak = float(feature.max())
    return feature / peak if peak > 0 else feature


def _integral(values: np.ndarray) -> np.ndarray:
    """A summed-area table with a zero first row and column, in float64 so sums stay exact."""
    table = values.astype(np.float64).cumsum(axis=0).cumsum(axis=1)
    return np.pad(table, ((1, 0), (1, 0)))


def _window_sums(table: np.ndarray, height: int, width: int) -> np.ndarray:
    """The sum under every height x width window, indexed by the window's top-left corner."""
    return (
        table[height:, width:]
        - table[:-height, width:]
        - table[height:, :-width]
        + table[:-height, :-width]
    )


def _best_window(
    sums: np.ndarray, saliency: np.ndarray, window_height: int, window_width: int
) -> tuple[int, int]:
    rows, columns = np.indices(sums.shape)
    centre_row, centre_column = _centre_of_mass(saliency)
    distance = np.hypot(
        rows + window_height / 2 - centre_row, columns + window_width / 2 - centre_column
    )
    tied = sums >= sums.max() * (1 - TIE_TOLERANCE)
    row, column = np.unravel_index(np.argmin(np.where(tied, distance, np.inf)), sums.shape)
    return int(row), int(column)


def _centre_of_mass(saliency: np.ndarray) -> tuple[float, float]:
    total = float(saliency.sum())
    height, width = saliency.shape
    if total == 0:
        return height / 2, width / 2
    rows, columns = np.indices(saliency.shape)
    # Pixel centres sit half a pixel in from their corners.
    return (
        float((rows * saliency).sum()) / total + 0.5,
        float((columns * saliency).sum()) / total + 0.5,
    )

"""PNG files of generated images (deterministic bytes, no timestamps)."""

from __future__ import annotations

import numpy as np
from PIL import Image

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a [H, W, C] uint8 image, C in (1, 3, 4)."""
  c = image.shape[-1]
  if c not in _MODES:
    raise ValueError(f"cannot write a {c}-channel image as PNG")
  Image.fromarray(image[..., 0] if c == 1 else image, _MODES[c]).save(
      path, format="PNG")

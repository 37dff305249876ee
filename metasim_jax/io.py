"""Atomic file writes and strict JSON (shared by training and export)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Mapping

import numpy as np


def jsonable(x):
  """Plain JSON types; NaN and infinities become null (strict JSON)."""
  if isinstance(x, Mapping):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [jsonable(v) for v in x]
  if isinstance(x, (np.generic, np.ndarray)) or hasattr(x, "tolist"):
    return jsonable(np.asarray(x).tolist())
  if isinstance(x, float) and not math.isfinite(x):
    return None
  return x


def write_bytes(path: str, data: bytes) -> None:
  """Writes atomically (temp file + rename): a crash never leaves half."""
  folder = os.path.dirname(path) or "."
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
  with os.fdopen(fd, "wb") as f:
    f.write(data)
  os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
  os.replace(tmp, path)


def write_json(path: str, obj: Any, indent: int = 2,
               sort_keys: bool = False) -> None:
  """``obj`` as strict JSON, written atomically."""
  text = json.dumps(jsonable(obj), indent=indent, allow_nan=False,
                    sort_keys=sort_keys)
  write_bytes(path, (text + "\n").encode("utf-8"))

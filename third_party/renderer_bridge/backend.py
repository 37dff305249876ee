"""What a renderer backend implements, and the backends by name.

A backend turns one validated ``Scene`` into a ``SceneRender``.  The
server (``server.py``) owns the protocol: versions, limits, validation,
errors; a backend sees only well-formed scenes whose asset ids are in
``assets.catalogue()``.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from third_party.renderer_bridge.scene import Scene, SceneRender

# name -> (module defining ``create(**kwargs) -> Backend``, kwargs); the
# module is imported on demand (each backend has its own heavy dependency,
# and bpy must not share a process with TensorFlow).
BACKENDS = {
    "moderngl": ("third_party.renderer_bridge.gl_backend", {}),
    # One alone-mask pass per object: the reference of the shared passes.
    "moderngl-one-pass": ("third_party.renderer_bridge.gl_backend",
                          {"objects_per_pass": 1}),
    "blender": ("third_party.renderer_bridge.blender_backend", {}),
    "blender-cycles": ("third_party.renderer_bridge.blender_backend",
                       {"rgb_engine": "cycles", "samples": 8}),
}


class Backend(Protocol):
  name: str  # e.g. "moderngl-egl llvmpipe (LLVM 15.0.6)"

  def render(self, scene: Scene, width: int, height: int,
             image_only: bool) -> SceneRender:
    ...

  # Optional: ``render_region(scene, width, height, region) -> [y1 - y0,
  # x1 - x0, 3]`` uint8, the image's pixels in ``region`` (x0, y0, x1, y1),
  # drawing only there (finite-difference variants); the server falls back
  # on a full ``render`` and a crop.


def create(name: str) -> Backend:
  if name not in BACKENDS:
    raise ValueError(f"unknown backend {name!r}; valid: {sorted(BACKENDS)}")
  module, kwargs = BACKENDS[name]
  return importlib.import_module(module).create(**kwargs)

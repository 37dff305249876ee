"""A backend used through a server of it: OpenGL (Mesa's LLVM) and Blender
must not load into a process that imports TensorFlow (segfault), as the
pytest workers do, so backend tests go through a server process."""

from third_party.renderer_bridge import client as client_lib


class Remote:
  """``render(scene, width, height, image_only)`` of the backend ``name``,
  served by a local server process."""

  def __init__(self, name: str):
    self.client = client_lib.RendererClient.local(name, 1, timeout_s=300)
    self.name = self.client.info().renderer

  def render(self, scene, width, height, image_only):
    return self.client.render([scene], width, height, image_only)[0]

  def close(self):
    self.client.close()

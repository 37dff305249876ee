"""Scenes for the bridge tests, built from the catalogue's assets."""

from third_party.renderer_bridge.scene import Camera, Node, Scene

WIDTH, HEIGHT = 312, 96
CAMERA = Camera(position=(0.0, 0.0, 1.6), pitch_deg=5.0, vfov_deg=40.0)
SKY, GROUND, ROAD, CAR = 0, 1, 2, 3  # semantic ids used below


def road_scene(cars=((0.0, 15.0),), camera: Camera = CAMERA,
               extra=()) -> Scene:
  """Grass, a 7 m road along +y and sedans at (x, y) (ids 10, 11, ...)."""
  nodes = [Node(1, GROUND, "ground/grass", scale=(400.0, 400.0, 1.0),
                color=(0.25, 0.45, 0.18)),
           Node(2, ROAD, "road/asphalt", position=(0.0, 50.0, 0.0),
                scale=(7.0, 200.0, 1.0))]
  for k, (x, y) in enumerate(cars):
    nodes.append(Node(10 + k, CAR, "car/sedan", position=(x, y, 0.0),
                      color=(0.7, 0.1, 0.1), is_object=True,
                      class_name="car"))
  return Scene(camera=camera, nodes=tuple(nodes) + tuple(extra))

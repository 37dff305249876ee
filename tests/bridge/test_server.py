"""Protocol conformance of a renderer server (a real moderngl one, or the
one at ``BRIDGE_SERVER``): round trips with known answers, refusals with
clear messages, and the server still serving afterwards."""

import os
import socket

import grpc
import numpy as np
import pytest

from tests.bridge import scenes
from third_party.renderer_bridge import camera as camera_lib
from third_party.renderer_bridge import renderer_pb2 as pb
from third_party.renderer_bridge import renderer_pb2_grpc as pb_grpc
from third_party.renderer_bridge import scene as scene_lib


@pytest.fixture(scope="module")
def stub(server_address):
  channel = grpc.insecure_channel(server_address)
  yield pb_grpc.RendererStub(channel)
  channel.close()


def _request(scene_list, **kw) -> pb.RenderRequest:
  fields = dict(protocol_version=1, width=scenes.WIDTH, height=scenes.HEIGHT,
                scenes=[scene_lib.scene_to_proto(s) for s in scene_list])
  return pb.RenderRequest(**{**fields, **kw})


def _box_centre(render, instance_id):
  (o,) = [o for o in render.objects if o.instance_id == instance_id]
  return np.array([(o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2])


def test_info(client):
  info = client.info()
  assert info.protocol_version == 1 and info.renderer
  assert "car/sedan" in info.assets and info.limits.max_scenes > 0


def test_round_trip_known_answers(client):
  """A car moved 1 m across moves its box by fx / depth pixels; ids and
  semantic ids are the scene's."""
  near, moved = client.render(
      [scenes.road_scene(((0.0, 15.0),)), scenes.road_scene(((1.0, 15.0),))],
      scenes.WIDTH, scenes.HEIGHT)
  intr = camera_lib.intrinsics(scenes.CAMERA, scenes.WIDTH, scenes.HEIGHT)
  assert near.intrinsics == intr
  depth = camera_lib.to_camera(scenes.CAMERA, [0.0, 15.0 - 4.5 / 2, 0.7])[2]
  shift = _box_centre(moved, 10) - _box_centre(near, 10)
  assert shift[0] == pytest.approx(intr.fx / depth, abs=1.5)
  assert abs(shift[1]) <= 1.0
  # The car sits in the middle of the image, on the road.
  assert abs(_box_centre(near, 10)[0] - intr.cx) <= 1.5
  assert set(np.unique(near.instance)) == {0, 1, 2, 10}
  for node in scenes.road_scene().nodes:
    mask = near.instance == node.instance_id
    assert (near.semantic[mask] == node.semantic_id).all()
  assert (near.semantic[near.instance == 0] == 0).all()
  (car,) = near.objects
  assert car.visible_pixels == (near.instance == 10).sum() > 50
  assert car.occlusion == pytest.approx(0.0, abs=1e-6)
  assert car.truncation == pytest.approx(0.0, abs=1e-6)


def test_occlusion_and_truncation_measured(client):
  intr = camera_lib.intrinsics(scenes.CAMERA, scenes.WIDTH, scenes.HEIGHT)
  # A car whose centre projects onto the image's left edge is about half
  # out of the image.
  y = 12.0
  z = camera_lib.to_camera(scenes.CAMERA, [0.0, y, 0.7])[2]
  edge_x = -intr.cx * z / intr.fx
  front_back, edge = client.render(
      [scenes.road_scene(((0.0, 12.0), (0.0, 20.0))),
       scenes.road_scene(((edge_x, y),))], scenes.WIDTH, scenes.HEIGHT)
  front, back = front_back.objects
  assert front.occlusion < 0.05 and back.occlusion > 0.5
  (half,) = edge.objects
  assert 0.3 < half.truncation < 0.7 and half.occlusion < 0.05


def test_image_only(client):
  full, = client.render([scenes.road_scene()], scenes.WIDTH, scenes.HEIGHT)
  img, = client.render([scenes.road_scene()], scenes.WIDTH, scenes.HEIGHT,
                       image_only=True)
  np.testing.assert_array_equal(img.rgb, full.rgb)
  assert img.instance is None and not img.objects


def _refused(stub, request, code, words):
  with pytest.raises(grpc.RpcError) as e:
    stub.Render(request, timeout=60)
  assert e.value.code() == code, e.value.details()
  for w in words:
    assert w in e.value.details(), e.value.details()


def test_refusals_then_still_serving(stub, server_address):
  good = scenes.road_scene()
  bad_asset = scenes.road_scene(extra=(scene_lib.Node(
      99, 0, "car/tank"),))
  twice = scenes.road_scene(extra=(scene_lib.Node(10, 3, "car/van"),))
  cases = [
      (_request([good], protocol_version=2),
       grpc.StatusCode.FAILED_PRECONDITION, ["protocol_version", "2"]),
      (_request([good], protocol_version=0),
       grpc.StatusCode.FAILED_PRECONDITION, ["protocol_version"]),
      (_request([bad_asset]), grpc.StatusCode.INVALID_ARGUMENT,
       ["scenes[0].nodes[3].asset_id", "car/tank"]),
      (_request([twice]), grpc.StatusCode.INVALID_ARGUMENT,
       ["instance_id", "twice"]),
      (_request([good], width=0), grpc.StatusCode.INVALID_ARGUMENT,
       ["width"]),
      (_request([good], width=100000), grpc.StatusCode.RESOURCE_EXHAUSTED,
       ["width"]),
      (_request([]), grpc.StatusCode.INVALID_ARGUMENT, ["no scene"]),
  ]
  nan = _request([good])
  nan.scenes[0].nodes[2].position.x = float("nan")
  cases.append((nan, grpc.StatusCode.INVALID_ARGUMENT,
                ["nodes[2].position"]))
  fov = _request([good])
  fov.scenes[0].camera.vfov_deg = 0.0
  cases.append((fov, grpc.StatusCode.INVALID_ARGUMENT, ["vfov_deg"]))
  variant = pb.Variant(scene=0, nodes=[scene_lib.node_to_proto(
      scene_lib.Node(10, 3, "car/sedan", position=(1.0, 15.0, 0.0)))])
  cases += [
      (_request([good], variants=[variant]),
       grpc.StatusCode.INVALID_ARGUMENT, ["variants", "image_only"]),
      (_request([good], image_only=True,
                variants=[pb.Variant(scene=3)]),
       grpc.StatusCode.INVALID_ARGUMENT, ["variants[0].scene", "3"]),
      (_request([good], image_only=True, variants=[pb.Variant(
          scene=0, nodes=[scene_lib.node_to_proto(
              scene_lib.Node(77, 3, "car/sedan"))])]),
       grpc.StatusCode.INVALID_ARGUMENT, ["variants[0].nodes[0]", "77"]),
  ]
  for request, code, words in cases:
    _refused(stub, request, code, words)
  # Over the message limit: refused by gRPC before it is decoded.
  huge = _request([good])
  huge.scenes[0].nodes[0].class_name = "x" * (65 << 20)
  with pytest.raises(grpc.RpcError) as e:
    stub.Render(huge, timeout=60)
  assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
  # Not a RenderRequest at all: bytes that do not parse.
  channel = grpc.insecure_channel(server_address)
  garbage = channel.unary_unary(
      "/metasim.renderer.v1.Renderer/Render",
      request_serializer=lambda b: b,
      response_deserializer=pb.RenderReply.FromString)
  with pytest.raises(grpc.RpcError) as e:
    garbage(b"\xff\xff\xff\xff not protobuf", timeout=60)
  assert e.value.code() in (grpc.StatusCode.INTERNAL,
                            grpc.StatusCode.INVALID_ARGUMENT,
                            grpc.StatusCode.UNKNOWN)
  channel.close()
  reply = stub.Render(_request([good]), timeout=60)
  assert len(reply.renders) == 1 and reply.protocol_version == 1


@pytest.mark.skipif(bool(os.environ.get("BRIDGE_SERVER")),
                    reason="checks this project's server's default bind")
def test_listens_on_loopback_only(server_address):
  port = int(server_address.rsplit(":", 1)[1])
  listening = []
  for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    with open(table) as f:
      for line in f.readlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.rsplit(":", 1)
        if state == "0A" and int(p, 16) == port:  # 0A: LISTEN
          listening.append(addr)
  assert listening, f"nothing listens on port {port}"
  # /proc's little-endian hex: 127.0.0.1, ::1 and ::ffff:127.0.0.1.
  assert set(listening) <= {"0100007F", "00000000000000000000000001000000",
                            "0000000000000000FFFF00000100007F"}, listening
  # And a connection through another address of this machine fails.
  others = {a for a in socket.gethostbyname_ex(socket.gethostname())[2]
            if not a.startswith("127.")}
  for addr in others:
    with socket.socket() as s:
      s.settimeout(2)
      assert s.connect_ex((addr, port)) != 0, addr


def test_variants_equal_whole_renders_inside_their_crops(client):
  """A variant's crop is its whole render there, and outside it the whole
  render equals the base's."""
  base = scenes.road_scene(((0.0, 15.0), (2.0, 25.0)))
  car = base.nodes[3]
  moved = scene_lib.Node(**{**car.__dict__, "position": (2.5, 25.0, 0.0)})
  cam = scene_lib.Camera(**{**scenes.CAMERA.__dict__, "pitch_deg": 6.0})
  variants = [scene_lib.Variant(0, (moved,)), scene_lib.Variant(0, (car,)),
              scene_lib.Variant(0, (), cam)]
  (image,), crops = client.render_variants([base], variants, scenes.WIDTH,
                                           scenes.HEIGHT)
  whole = client.render([scene_lib.apply_variant(base, v) for v in variants],
                        scenes.WIDTH, scenes.HEIGHT, image_only=True)
  assert crops[1].region == (0, 0, 0, 0)  # unchanged: nothing to draw
  assert crops[2].region == (0, 0, scenes.WIDTH, scenes.HEIGHT)  # camera
  for crop, w in zip(crops, whole):
    x0, y0, x1, y1 = crop.region
    pasted = image.copy()
    pasted[y0:y1, x0:x1] = crop.rgb
    np.testing.assert_array_equal(pasted, w.rgb)
  assert (whole[0].rgb != image).any()

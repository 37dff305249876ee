"""A real moderngl server for the bridge tests (started once per module
that asks for it), or the server at ``BRIDGE_SERVER=host:port`` (to test
another implementation of the protocol)."""

import os

import pytest

from third_party.renderer_bridge import client as client_lib


@pytest.fixture(scope="module")
def server_address():
  if os.environ.get("BRIDGE_SERVER"):
    yield os.environ["BRIDGE_SERVER"]
    return
  server = client_lib.LocalServer("moderngl")
  yield server.address
  server.close()


@pytest.fixture(scope="module")
def client(server_address):
  c = client_lib.RendererClient([server_address], timeout_s=60, retries=2)
  yield c
  c.close()

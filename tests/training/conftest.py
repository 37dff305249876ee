"""One uninterrupted MNIST smoke run, shared by the tests of its outputs
(test_smoke.py) and of checkpoints, TensorBoard and resumption
(test_resume.py, which also uses it as the reference of killed runs)."""

import pytest

from experiments.configs import mnist as mnist_config
from metasim_jax import keys
from metasim_jax.training import trainer

SMOKE_VARIANT = "rot,smoke,both"
SMOKE_SEEDS = (0, 1)


def smoke_config():
  """All three losses, two seeds, a checkpoint after every step (11 per
  seed: pre-training, MMD, task stage, evaluation)."""
  config = mnist_config.get_config(SMOKE_VARIANT)
  config.seeds = SMOKE_SEEDS
  config.checkpoint_every = 1
  return config


class RecordingStreams(keys.Streams):
  """``keys.Streams`` that also keeps every ledger (one per seed run)."""
  ledgers: list[set] = []

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    RecordingStreams.ledgers.append(self.issued)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
  """(workdir, summary) of ``trainer.run(smoke_config(), workdir)``; the key
  paths each seed asked for are in ``RecordingStreams.ledgers``."""
  workdir = tmp_path_factory.mktemp("mnist_smoke")
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(keys, "Streams", RecordingStreams)
    return workdir, trainer.run(smoke_config(), str(workdir))

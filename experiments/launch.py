"""Shared entry point of the experiments: flags, config check, run."""

import os
import shlex
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from metasim_jax.training import trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (ml_collections).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  try:  # validate grammars, names and values before any work is done
    trainer.build_pipeline(config)
  except (ValueError, KeyError) as e:  # GrammarError is a ValueError
    sys.exit(f"error in the config: {e}")
  os.makedirs(_WORKDIR.value, exist_ok=True)
  with open(os.path.join(_WORKDIR.value, "config.txt"), "w") as f:
    f.write(str(config))
  logging.info("config:\n%s", config)
  spec = getattr(sys.modules["__main__"], "__spec__", None)
  program = f"python -m {spec.name}" if spec else f"python {sys.argv[0]}"
  command = " ".join([program] + [shlex.quote(a) for a in sys.argv[1:]])
  trainer.run(config, _WORKDIR.value, command)



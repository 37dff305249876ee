"""Shared entry point of the experiments: flags, checks, run.

  python -m experiments.mnist --flagfile=... --workdir=DIR      # fresh run
  python -m experiments.mnist --flagfile=... --workdir=DIR --resume
  python -m experiments.mnist --flagfile=... --workdir=DIR --overwrite

Bad input (a config value out of range, a workdir that does not fit the
mode, an unreadable checkpoint) and a NaN/Inf in training end the program
with one ``error: ...`` line, before anything in the workdir is changed.
"""

import os
import shlex
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from metasim_jax.training import checkpoint, trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (ml_collections).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
_RESUME = flags.DEFINE_bool(
    "resume", False, "Continue the run in --workdir from its newest "
    "checkpoints (same config; seeds already finished are not run again).")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Start afresh in a --workdir that has checkpoints: "
    "deletes them and the TensorBoard logs.")
flags.mark_flags_as_required(["config", "workdir"])


def check(config, workdir: str, *, resume: bool, overwrite: bool) -> None:
  """All checks of the input before any work; raises ``ValueError`` (the
  message names the bad value) and writes nothing."""
  trainer.check_config(config)
  try:  # grammars, names and values used to build the pipeline
    trainer.build_pipeline(config)
  except KeyError as e:
    raise ValueError(f"in the config: unknown name {e}") from None
  except ValueError as e:  # GrammarError is a ValueError
    raise ValueError(f"in the config: {e}") from None
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir {workdir} is a file, not a folder")
  checkpoint.check_workdir(workdir, config, config.seeds, resume=resume,
                           overwrite=overwrite)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config, workdir = _CONFIG.value, _WORKDIR.value
  resume, overwrite = _RESUME.value, _OVERWRITE.value
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)  # bad input: the error line alone
  try:
    check(config, workdir, resume=resume, overwrite=overwrite)
  except ValueError as e:  # CheckpointError is a ValueError
    sys.exit(f"error: {e}")
  finally:
    logging.set_verbosity(verbosity)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.txt"), "w") as f:
    f.write(str(config))
  logging.info("config:\n%s", config)
  spec = getattr(sys.modules["__main__"], "__spec__", None)
  program = f"python -m {spec.name}" if spec else f"python {sys.argv[0]}"
  command = " ".join([program] + [shlex.quote(a) for a in sys.argv[1:]])
  try:
    trainer.run(config, workdir, command, resume=resume, overwrite=overwrite)
  except (checkpoint.CheckpointError, checkpoint.NonFiniteError) as e:
    sys.exit(f"error: {e}")

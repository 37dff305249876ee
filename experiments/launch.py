"""Shared entry point of the experiments: flags, checks, run.

  app.run(launch.main, flags_parser=launch.parse_flags)

  python -m experiments.mnist --flagfile=... --workdir=DIR      # fresh run
  python -m experiments.mnist --flagfile=... --workdir=DIR --resume
  python -m experiments.mnist --flagfile=... --workdir=DIR --overwrite

Flags come from the command line and from ``--flagfile``s, expanded in
place; the last value of each flag wins, ``--config.FIELD`` overrides
included (tuple fields too), whatever the order of flags and flagfiles
(``last_config_values``), e.g.
``--flagfile=experiments/configs/mnist_rot_5seeds.flags --config.seeds=(3,4)``
runs seeds 3 and 4.

Bad input (a bad flag, a config value out of range, a workdir that does
not fit the mode, an unreadable or other run's checkpoint) ends the program
with one ``error: ...`` line before anything in the workdir is changed.  A
NaN/Inf in training stops it with one ``error: ...`` line naming the seed,
stage, step and quantity; its newest checkpoint is then the last finite
state.
"""

import fcntl
import os
import re
import shlex
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import flags_common
from metasim_jax import parallel
from metasim_jax import pipeline as pipeline_lib
from metasim_jax.training import checkpoint, trainer

# The arguments config_flags looks in for --config.FIELD overrides;
# parse_flags fills it (config_flags' default, sys.argv, would be read, its
# flagfiles too, already when this module is imported).
_ARGV: list[str] = []
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (ml_collections).",
    lock_config=True, sys_argv=_ARGV)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
_RESUME = flags.DEFINE_bool(
    "resume", False, "Continue the run in --workdir from its newest "
    "checkpoints (same config; seeds already finished are not run again).")
_OVERWRITE = flags_common.OVERWRITE
flags.mark_flags_as_required(["config", "workdir"])


def _one_line(e: BaseException) -> str:
  """The message of ``e`` on one line (the cause, if it holds a
  traceback or a file error)."""
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]  # ml_collections wraps a KeyError in an AttributeError
  text = str(e.args[0]) if len(e.args) == 1 else str(e)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if not lines:
    return type(e).__name__
  if "Traceback" in text or isinstance(e, OSError):
    return lines[-1]
  return "; ".join(lines)


def _config_field(arg: str) -> str | None:
  """``"config"`` for ``--config[=...]``, ``"config.<field>"`` for an
  override ``--[no]config.<field>[=...]`` (one dash or two), else None."""
  name = _CONFIG.name
  match = re.match(rf"-{{1,2}}(?:no(?={re.escape(name)}\.))?"
                   rf"({re.escape(name)}(?:\.[^=]*)?)(?:=|$)", arg)
  return match.group(1) if match else None


def _is_value(arg: str) -> bool:
  """Whether ``arg`` after a flag without ``=`` is that flag's value."""
  return not arg.startswith("-") or re.fullmatch(
      r"-(\d|\.\d|inf|nan).*", arg, re.IGNORECASE) is not None


def last_config_values(argv: list[str]) -> list[str]:
  """``argv`` with ``--flagfile``s expanded (absl's own reader, in place,
  nested ones too) and each config field given once: its last value.

  ``--config[=]PATH`` (the last one) moves to the front, as config_flags
  wants it before any override; each ``--config.FIELD[=]VALUE`` (also
  ``-config.FIELD``, ``--noconfig.FIELD``) is kept at its last occurrence
  only, so the last value wins for every field, tuples included (config
  flags would append a repeated tuple field).  A flag without ``=`` takes
  the next argument as its value when that is not a flag (or is a
  negative number).  Other arguments, and all after ``--``, are kept as
  they are, in order.
  """
  args = flags.FLAGS.read_flags_from_files(argv[1:], force_gnu=False)
  items, tail = [], []  # items: (config field or None, its arguments)
  i = 0
  while i < len(args):
    arg, field = args[i], _config_field(args[i])
    if arg == "--":
      tail = args[i:]
      break
    n = 1
    if (field and "=" not in arg and i + 1 < len(args)
        and not arg.lstrip("-").startswith("no") and _is_value(args[i + 1])):
      n = 2  # --config.FIELD VALUE
    items.append((field, args[i:i + n]))
    i += n
  last = {field: k for k, (field, _) in enumerate(items) if field}
  out = list(argv[:1])
  if _CONFIG.name in last:
    out += items[last[_CONFIG.name]][1]
  for k, (field, group) in enumerate(items):
    if field is None or (field != _CONFIG.name and last[field] == k):
      out += group
  return out + tail


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, after ``last_config_values``: the last value of
  each ``--config`` field wins, also through flagfiles, whatever their
  order.  A bad flag (an unknown ``--config.`` field, a value of the wrong
  type, a config file that raises, a flagfile that cannot be read) is one
  error line."""
  try:
    _ARGV[:] = last_config_values(argv)
    return flags.FLAGS(_ARGV)
  except (AttributeError, KeyError) as e:  # an unknown --config.x field
    sys.exit(f"error: bad flag: the config has no field {_one_line(e)}")
  except flags.CantOpenFlagFileError as e:
    sys.exit(f"error: bad flag: --flagfile: "
             f"{_one_line(e).removeprefix('ERROR:: ')}")
  except Exception as e:  # flags.Error, and whatever a config file raises
    sys.exit(f"error: bad flag: {_one_line(e)}")


def check(config, workdir: str, *, resume: bool, overwrite: bool) -> None:
  """All checks of the input before any work; raises ``ValueError`` (the
  message names the bad value) and writes nothing."""
  trainer.check_config(config)
  try:  # grammars, names and values used to build the pipeline
    pipeline_lib.build(config)
  except KeyError as e:
    raise ValueError(f"in the config: unknown name {e}") from None
  except ValueError as e:  # GrammarError is a ValueError
    raise ValueError(f"in the config: {e}") from None
  except TypeError as e:  # e.g. tasknet.kwargs the network does not take
    raise ValueError(f"in the config: {e}") from None
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir {workdir} is a file, not a folder")
  checkpoint.check_workdir(workdir, config, config.seeds, resume=resume,
                           overwrite=overwrite)


def _lock(workdir: str):
  """Holds ``workdir/.lock`` (released when the process ends, also when it
  is killed); exits if another process holds it."""
  f = open(os.path.join(workdir, ".lock"), "a")
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    sys.exit(f"error: another process is running in {workdir} (it holds "
             f"{f.name}); wait for it to end or stop it")
  return f


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config, workdir = _CONFIG.value, _WORKDIR.value
  resume, overwrite = _RESUME.value, _OVERWRITE.value
  par = config.parallel  # before anything touches a device
  try:
    parallel.initialize(par.coordinator, par.num_processes, par.process_id)
  except ValueError as e:
    sys.exit(f"error: {e}")
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)  # bad input: the error line alone
  try:
    check(config, workdir, resume=resume, overwrite=overwrite)
  except ValueError as e:  # CheckpointError is a ValueError
    sys.exit(f"error: {e}")
  except OSError as e:  # a config file that did not load, an unreadable dir
    sys.exit(f"error: {_one_line(e)}")
  finally:
    logging.set_verbosity(verbosity)
  os.makedirs(workdir, exist_ok=True)
  if parallel.is_writer():  # process 0 holds the workdir and writes
    lock = _lock(workdir)  # pylint: disable=unused-variable
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

"""The MNIST smoke run's outputs; checkpoints, resumption, the NaN guard,
TensorBoard logs, bad input.

The runs use the MNIST smoke config of conftest.py (rot,smoke,both, two
seeds) with a checkpoint after every step: 11 checkpoints per seed, across
pre-training, MMD, the task stage and evaluation.  The XLA compilation cache
of the test session (tests/conftest.py) is shared with the subprocesses, so
each run after the first compiles almost nothing.
"""

import fcntl
import json
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from experiments import launch
from experiments.configs import mnist as mnist_config
from metasim_jax.training import checkpoint, trainer
from tests.training.conftest import SMOKE_SEEDS as SEEDS
from tests.training.conftest import SMOKE_VARIANT, smoke_config

# Every test of the shared smoke run is in this module: pytest-xdist's
# "loadscope" (pytest.ini) runs a module on one worker, so the run is made
# once.

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The command line of the shared smoke run (conftest.smoke_config).
CLI = [sys.executable, "-m", "experiments.mnist",
       f"--config=experiments/configs/mnist.py:{SMOKE_VARIANT}",
       f"--config.seeds={SEEDS}", "--config.checkpoint_every=1"]


@pytest.fixture
def reference(smoke_run):
  """The uninterrupted run (a library call, in this process)."""
  return smoke_run[0]


def _outcome(workdir):
  """results.json without timings, and the saved transformers' bytes."""
  results = json.loads((workdir / "results.json").read_text())
  for r in results["per_seed"]:
    r.pop("seconds")
  results["summary"].pop("wall_seconds")
  params = {s: (workdir / f"transformer_seed{s}.msgpack").read_bytes()
            for s in SEEDS}
  return results, params


def _events(workdir, seed):
  acc = event_accumulator.EventAccumulator(
      str(workdir / "tb" / f"seed{seed}"), size_guidance={
          event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0,
          event_accumulator.HISTOGRAMS: 0})
  acc.Reload()
  return acc


def _scalars(acc):
  return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
          for tag in acc.Tags()["scalars"]}


def _progress(workdir):
  """(seed index, newest checkpoint) the run has reached."""
  found = checkpoint.steps_on_disk(str(workdir))
  return max(((SEEDS.index(s), max(steps)) for s, steps in found.items()),
             default=(-1, -1))


@pytest.mark.slow
def test_killed_run_resumes_bit_identically(reference, tmp_path):
  last = max(checkpoint.steps_on_disk(str(reference))[0])  # seed done
  # Kill points vary between test runs; RESUME_TEST_SEED repeats a run's.
  seed = int(os.environ.get("RESUME_TEST_SEED", random.randrange(2**31)))
  rng = random.Random(seed)
  # Two kills, after a random checkpoint: anywhere, then one in seed 1.
  points = set()
  while len(points) < 2:
    points = {(rng.randrange(2), rng.randrange(last)),
              (1, rng.randrange(last))}
  points = sorted(points)
  workdir = tmp_path / "run"
  why = f"kill points {points} (RESUME_TEST_SEED={seed})"
  for n, point in enumerate(points):
    log = tmp_path / f"process{n}.log"
    with open(log, "w") as f:
      proc = subprocess.Popen(
          CLI + [f"--workdir={workdir}"] + (["--resume"] if n else []),
          cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    while _progress(workdir) < point and proc.poll() is None:
      time.sleep(0.02)
    assert proc.poll() is None, f"{why}: ended early\n{log.read_text()}"
    time.sleep(rng.uniform(0.0, 0.3))  # into the next step or save
    proc.kill()  # SIGKILL
    proc.wait()
  done = subprocess.run(CLI + [f"--workdir={workdir}", "--resume"],
                        cwd=ROOT, capture_output=True, text=True)
  assert done.returncode == 0, f"{why}\n{done.stderr}"
  assert "seed 0: finished earlier" in done.stderr, why  # not run again

  got, want = _outcome(workdir), _outcome(reference)
  assert got[1] == want[1], f"{why}: transformer params differ"
  assert got[0] == want[0], f"{why}: results differ"
  # Killed processes' events after their checkpoint are purged: every step
  # shows once, with the uninterrupted run's value.
  for s in SEEDS:
    assert _scalars(_events(workdir, s)) == _scalars(_events(reference, s))
  leftovers = [p for p in workdir.rglob("*") if "tmp" in p.name]
  assert not leftovers, f"{why}: {leftovers}"


@pytest.mark.slow
def test_tensorboard_has_scalars_images_histograms(reference):
  acc = _events(reference, 0)
  tags = acc.Tags()
  for tag in ("pretrain/ae_loss", "mmd/mmd2_train_batch/start0",
              "mmd/mmd2_train_batch/start1", "mmd/probe_accuracy_on_V",
              "task/reward", "task/baseline", "task/val_score",
              "eval/test_accuracy/prior", "eval/test_accuracy/metasim",
              "eval/test_accuracy/oracle", "eval/train_loss/prior",
              "eval/kid_vs_test/metasim",
              "eval/mmd2_vs_test/oracle"):
    assert tag in tags["scalars"], tag
  results = json.loads((reference / "results.json").read_text())
  (final,) = acc.Scalars("eval/test_accuracy/metasim")
  assert final.value == pytest.approx(
      results["per_seed"][0]["test_accuracy"]["metasim"])
  (image,) = acc.Images("samples/prior_metasim_target")
  assert image.encoded_image_string.startswith(b"\x89PNG")
  for source in ("prior", "metasim", "target"):
    (hist,) = acc.Histograms(f"attributes/{source}/scene/digit0.yaw")
    assert hist.histogram_value.num == 16  # config.eval.num_scenes
  summary = (reference / "summary.md").read_text()
  assert "tensorboard --logdir tb" in summary
  assert "`checkpoints/`" in summary and "`--resume`" in summary


@pytest.mark.slow
def test_nan_stops_the_run_without_a_bad_checkpoint(tmp_path):
  config = smoke_config()
  config.seeds = (0,)
  config.pretrain.lr = 1e30  # in range, but the first update blows up
  with pytest.raises(checkpoint.NonFiniteError,
                     match=r"seed 0, stage pretrain, step \d+: \S+ is not "
                     "finite"):
    trainer.run(config, str(tmp_path))
  steps = checkpoint.steps_on_disk(str(tmp_path))[0]
  assert steps  # those before the NaN
  ckpt = checkpoint.SeedCheckpoints(checkpoint.seed_dir(str(tmp_path), 0),
                                    read_only=True)
  for step in steps:
    _, state = ckpt.read(step)
    checkpoint.check_finite(state, f"checkpoint {step}")


def test_check_finite_names_the_quantity():
  checkpoint.check_finite({"a": np.ones(3), "b": 2.0}, "here")
  with pytest.raises(checkpoint.NonFiniteError,
                     match=re.escape("here: opt.mu[1] is not finite (0 NaN, "
                                     "1 Inf of 2 values; first at index (1,)")):
    checkpoint.check_finite({"opt": {"mu": [np.ones(2),
                                            np.array([1.0, np.inf])]}},
                            "here")


# ------------------------------------------------------------ bad input
def _set(config, name, value):
  *path, last = name.split(".")
  node = config
  for p in path:
    node = node[p]
  node[last] = value


@pytest.mark.parametrize("name,value,message", [
    ("pretrain.steps", -1, "config.pretrain.steps must be >= 0, got -1"),
    ("eval.batch_size", 0, "config.eval.batch_size must be >= 1, got 0"),
    ("mmd.lr", 0.0, "config.mmd.lr must be a finite number > 0, got 0.0"),
    ("task.gen_lr", float("nan"), "config.task.gen_lr must be a finite"),
    ("checkpoint_every", 0, "config.checkpoint_every must be >= 1"),
    ("world", "cifar", "unknown world 'cifar'"),
    ("seeds", (1, 1), "config.seeds (1, 1) has a repeated seed"),
    ("task.estimator", "cma", "config.task.estimator 'cma' is not one of"),
    ("task.estimator", "es", "set config.transformer.affine=True"),
    ("task.estimator", "unrolled",
     "config.task.estimator 'unrolled' descends V's loss: set "
     "config.task.reward='neg_loss'"),
    ("task.inner_optimizer", "rmsprop",
     "config.task.inner_optimizer 'rmsprop' is not one of ('adam', 'sgd')"),
    ("task_features.pooling", "max",
     "config.task_features.pooling 'max' is not one of ('cells', "),
    ("task_features.radii", (4.0, 0.0),
     "config.task_features.radii must be positive radii in px, got (4.0, 0.0)"),
    ("task_features.bins", 1, "config.task_features.bins must be >= 2, got 1"),
    ("es:task.es.sigma_floor", 0.0,
     "config.task.es.sigma_floor must be in (0, 1], got 0.0"),
    ("es:task.es.momentum", 1.0,
     "config.task.es.momentum must be in [0, 1), got 1.0"),
    ("es:task.es.decay_start", 1.0,
     "config.task.es.decay_start must be in [0, 1), got 1.0"),
])
def test_value_out_of_range_is_named(tmp_path, name, value, message):
  options, _, name = name.rpartition(":")  # "es:" rows: the es config
  config = mnist_config.get_config(
      "rot,smoke" + ",task_only,es" * (options == "es"))
  if value == "es":  # MNIST has the affine head on; the check needs it off
    config.transformer.affine = False
  _set(config, name, value)
  with pytest.raises(ValueError, match=re.escape(message)):
    launch.check(config, str(tmp_path / "w"), resume=False, overwrite=False)
  assert not (tmp_path / "w").exists()


def test_resume_needs_checkpoints(tmp_path):
  with pytest.raises(checkpoint.CheckpointError,
                     match="cannot resume: no checkpoint in"):
    launch.check(smoke_config(), str(tmp_path), resume=True, overwrite=False)


def test_keys_added_since_a_checkpoint_are_no_change():
  """A checkpoint written before a config key existed resumes when the
  key is at its default (both configs are upgraded to today's keys), and
  not when it is set otherwise."""
  current = checkpoint.config_record(
      mnist_config.get_config("rot,smoke,task_only,es"))
  saved = json.loads(json.dumps(current))
  for key in ("coarse_fit", "attributes", "relative_shift"):
    del saved["task"]["es"][key]
  saved["task_features"].pop("radii")
  assert checkpoint.config_changes(saved, current) == []
  current["task"]["es"]["coarse_fit"] = "harmonic"
  current["mmd"]["lr"] = 0.5
  assert checkpoint.config_changes(saved, current) == [
      "mmd.lr", "task.es.coarse_fit"]


def _files(workdir):
  return {p: p.read_bytes() for p in sorted(workdir.rglob("*"))
          if p.is_file()}


@pytest.mark.slow
def test_workdir_with_checkpoints_needs_resume_or_overwrite(reference,
                                                            tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(reference, workdir)
  before = _files(workdir)
  config = smoke_config()
  with pytest.raises(checkpoint.CheckpointError,
                     match="already has checkpoints .* --resume, or start "
                     "afresh with --overwrite"):
    launch.check(config, str(workdir), resume=False, overwrite=False)
  launch.check(config, str(workdir), resume=False, overwrite=True)
  launch.check(config, str(workdir), resume=True, overwrite=False)
  config.mmd.lr = 0.02
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"config differs .* \(mmd.lr\)"):
    launch.check(config, str(workdir), resume=True, overwrite=False)
  assert _files(workdir) == before  # checks only read


@pytest.mark.slow
def test_cli_errors_are_one_line_and_change_nothing(reference, tmp_path):
  # A value out of range: nothing is created.
  out = subprocess.run(CLI + ["--config.pretrain.steps=-1",
                              f"--workdir={tmp_path / 'new'}"],
                       cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 1
  assert out.stderr.strip() == ("error: config.pretrain.steps must be >= 0, "
                                "got -1")
  assert not (tmp_path / "new").exists()
  # An unknown config field: the flag parser's error, as one line.
  out = subprocess.run(CLI + ["--config.dataset=cifar",
                              f"--workdir={tmp_path / 'new'}"],
                       cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 1
  assert out.stderr.strip() == ("error: bad flag: the config has no field "
                                "'dataset'; Did you mean \"data_seed\" "
                                "instead of \"dataset\"?")
  assert not (tmp_path / "new").exists()
  # --resume while another process runs there: nothing is written.
  workdir = tmp_path / "w"
  shutil.copytree(reference, workdir)
  before = _files(workdir)
  with open(workdir / ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    out = subprocess.run(CLI + [f"--workdir={workdir}", "--resume"],
                         cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 1
  assert out.stderr.strip() == (f"error: another process is running in "
                                f"{workdir} (it holds {workdir}/.lock); wait "
                                "for it to end or stop it")
  assert _files(workdir) == {**before, workdir / ".lock": b""}
  # --resume from a corrupt checkpoint: nothing is written.
  newest = workdir / "checkpoints" / "seed1" / str(
      max(checkpoint.steps_on_disk(str(workdir))[1]))
  for p in (newest / "state").rglob("*"):
    if p.is_file():
      p.write_bytes(b"garbage")
  before = _files(workdir)
  out = subprocess.run(CLI + [f"--workdir={workdir}", "--resume"],
                       cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 1
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      f"error: checkpoint {newest} is unreadable"), out.stderr
  assert _files(workdir) == before


@pytest.mark.slow
def test_mnist_smoke_run_writes_its_outputs(smoke_run):
  tmp_path, summary = smoke_run  # rot,smoke,both with seeds (0, 1)
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["summary"]["seeds"] == [0, 1]
  assert len(saved["per_seed"]) == 2
  for seed in (0, 1):
    r = saved["per_seed"][seed]
    assert set(r["test_accuracy"]) == {"prior", "metasim", "oracle"}
    assert all(0.0 <= v <= 1.0 for v in r["test_accuracy"].values())
    assert np.isfinite(r["distribution"]["metasim"]["mmd2"])
    assert "scene/digit[0].yaw" in r["attribute_stats"]["metasim"]
    assert (tmp_path / f"grid_seed{seed}.png").stat().st_size > 0
    assert (tmp_path / f"curves_seed{seed}.png").stat().st_size > 0
  assert saved["versions"]["jax"] == jax.__version__
  assert summary["experiment"] == "mnist_rot_smoke_both"


@pytest.mark.slow
def test_smoke_run_uses_no_key_for_two_things(smoke_run):
  """The run's key ledgers (one per seed) raised no KeyReuseError, and
  each use has its own stream: the initial scenes and params, the
  evaluation repeats (derived from the eval stream, never it itself)."""
  from tests.training.conftest import RecordingStreams
  del smoke_run
  ledgers = RecordingStreams.ledgers[:2]
  assert len(ledgers) == 2  # seeds 0 and 1
  for issued in ledgers:
    names = {p[0] for p in issued}
    assert {"init_scene", "init_params", "pretrain", "starts", "mmd",
            "task", "select", "probe", "eval", "stats", "pictures"} <= names
    assert ("eval",) not in issued and ("eval", 0) in issued
    assert ("pretrain", 0) in issued and ("pretrain",) not in issued

"""TensorBoard event files of a run, written synchronously.

tensorboardX builds the summaries (scalars, images, histograms) and writes
the event file with its plain ``EventsWriter``.  Its ``SummaryWriter``
queues events for a background thread and its ``flush`` does not wait for
that queue, so events logged before a checkpoint could be lost if the
process is killed right after it; here ``flush()`` puts everything logged so
far on disk, and the trainer calls it before every checkpoint.

Resuming: the writer is opened with ``purge_step`` = the checkpoint's step +
1, recorded as a ``SessionLog.START`` event; TensorBoard then drops the
events of the killed process at steps >= ``purge_step`` (logged after the
checkpoint, and logged again by the resumed run), so no step shows twice.
"""

from __future__ import annotations

import os
import time
from typing import Mapping

import numpy as np
from tensorboardX import summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog


class Writer:
  """Scalars, images and histograms into ``logdir`` (one event file per
  process)."""

  def __init__(self, logdir: str, purge_step: int):
    os.makedirs(logdir, exist_ok=True)
    self.logdir = logdir
    self._events = EventsWriter(os.path.join(logdir, "events"),
                                f".{os.getpid()}")
    self._write(purge_step, session_log=SessionLog(status=SessionLog.START))

  def _write(self, step: int, **fields) -> None:
    self._events.write_event(Event(wall_time=time.time(), step=int(step),
                                   **fields))

  def scalars(self, step: int, values: Mapping[str, float],
              prefix: str = "") -> None:
    for tag, v in values.items():
      self._write(step, summary=summary.scalar(prefix + tag, float(v)))

  def image(self, tag: str, image: np.ndarray, step: int) -> None:
    """``image``: [H, W, C] uint8 or float in [0, 1]."""
    self._write(step, summary=summary.image(tag, np.asarray(image),
                                            dataformats="HWC"))

  def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
    values = np.asarray(values, np.float64).ravel()
    if values.size:
      self._write(step, summary=summary.histogram(tag, values,
                                                  bins="auto"))

  def flush(self) -> None:
    self._events.flush()

  def close(self) -> None:
    self._events.close()


class Null:
  """The writer of processes other than 0 in a multi-host run: writes
  nothing (process 0 logs the run)."""

  def scalars(self, step, values, prefix=""):
    del step, values, prefix

  def image(self, tag, image, step):
    del tag, image, step

  def histogram(self, tag, values, step):
    del tag, values, step

  def flush(self):
    pass

  def close(self):
    pass

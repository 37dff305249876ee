#!/usr/bin/env bash
# The benchmarks on an accelerator host (GPU with jax[cuda], or TPU).
#
#   pip install -e . "jax[cuda12]"      # or jax[cuda13], jax[tpu]
#   benchmarks/accelerator.sh [OUTDIR]  # default results/accelerator
#
# Prints, and writes one file per benchmark into OUTDIR: scenes/s of the
# rasterizer (MNIST, Aerial2D), the Aerial2D MMD and U-Net steps, seconds
# per meta-epoch of the task objective, the MMD step, and MMD steps/s over
# the host's real devices (1, 2, 4 where there are that many).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/accelerator}"
mkdir -p "$out"
python3 - <<'PY' | tee "$out/devices.txt"
import jax, platform
print(f"jax {jax.__version__}; backend {jax.default_backend()}; "
      f"devices {jax.devices()}; python {platform.python_version()}")
PY
if [ "$(python3 -c 'import jax; print(jax.default_backend())')" = cpu ]; then
  echo "warning: JAX sees no accelerator; these are CPU figures" >&2
fi
for bench in render_throughput aerial meta_epoch mmd_step; do
  echo "== benchmarks.$bench"
  python3 -m "benchmarks.$bench" 2>&1 | grep -v '^[WI][0-9]' \
    | tee "$out/bench_$bench.txt"
done
echo "== benchmarks.scaling --real"
python3 -m benchmarks.scaling --real 2>&1 | grep -v '^[WI][0-9]' \
  | tee "$out/bench_scaling.txt"

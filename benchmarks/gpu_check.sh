#!/usr/bin/env bash
# The GPU check of benchmarks/gpu_check.py, ready for a bare GPU machine that has jax, flax, optax and orbax.
#   bash benchmarks/gpu_check.sh --prepare   # here (pip and ../shared at hand): the missing wheels and the LPC layers into .gpu/
#   bash benchmarks/gpu_check.sh OUT_DIR     # there, with .gpu carried along: at most 8 minutes on one GPU
set -euo pipefail
cd "$(dirname "$0")/.."
missing=(distrax==0.1.9 tfp-nightly==0.26.0.dev20261027 ml_collections==1.1.0 tensorflow-datasets==4.9.10
  array_record==0.8.6 tensorboardX==2.6.5 dm-tree==0.1.10 tensorflow-metadata==1.21.0 immutabledict==4.3.1
  simple-parsing==0.1.9 docstring_parser==0.18.0 termcolor==3.3.0 toml==0.10.2 gast==0.7.0 decorator==5.3.1
  googleapis-common-protos==1.76.0)
if [[ "${1:-}" == "--prepare" ]]; then
  rm -rf .gpu && mkdir -p .gpu/wheels
  grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
  cp -r ../shared/data/lpc_sprites .gpu/lpc_sprites
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .gpu/wheels "${missing[@]}"
  du -sh .gpu
  exit 0
fi
out_dir=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR, after bash benchmarks/gpu_check.sh --prepare}
if compgen -G ".gpu/wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check/site .gpu/wheels/*.whl
  export PYTHONPATH=/tmp/gpu_check/site:$PWD
fi
manual_dir=../shared/data/lpc_sprites
[[ -d .gpu/lpc_sprites ]] && manual_dir=$PWD/.gpu/lpc_sprites
export TFDS_DATA_DIR=/tmp/gpu_check/tensorflow_datasets PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m benchmarks.gpu_check --out_dir="$out_dir" --manual_dir="$manual_dir" 2>&1 | tee "$out_dir/gpu_check.log"

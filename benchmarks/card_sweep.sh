#!/usr/bin/env bash
# Jobs of benchmarks/gpu_sweep.py on a lent GPU machine that has no package index and no text encoder.
#
# A call carries 64 MiB: the packages the card lacks (44 MB, gpu_carry/site.tar.xz) and the prepared tables travel
# in every call; TIGER's semantic IDs (gpu_carry/beauty-ids.npz) replace its text encoder. Recformer needs
# MiniLM itself: its lower 4 layers fit beside the packages (gpu_carry/minilm), its upper 2 come in a later call
# (gpu_carry2/minilm). The working tree is sent afresh every call (ignored folders too), but /tmp stays while the
# machine is warm (30 s between calls), so the packages and the lower layers are unpacked there.
# Here, first: bash benchmarks/card_carry.sh (gpu_carry/ and gpu_carry2/, both in .git/info/exclude).
# TIGER (carry gpu_carry/site.tar.xz, gpu_carry/prepared, gpu_carry/beauty-ids.npz):
#   bash benchmarks/card_sweep.sh tiger_adafactor_b1024,tiger_adafactor_b2048 500 --retest-seen-excluded
# Recformer, call 1 (carry gpu_carry):                  bash benchmarks/card_sweep.sh recformer_l4_e2,recformer_l4_e3 240
# Recformer, call 2 (carry gpu_carry2, gpu_carry/prepared): bash benchmarks/card_sweep.sh recformer_l6_e4 300
# Arguments after the budget go to gpu_sweep.py. Results (gpu_sweep.json / .md) and a tarball of the logs and
# metrics go to $OUT; with `--keep-best "$OUT"`, TIGER's best checkpoints too (weights only).
set -u
usage="usage: card_sweep.sh JOB[,JOB...] BUDGET_SECONDS [gpu_sweep.py arguments]"
jobs=${1:?$usage}
budget=${2:?$usage}
shift 2
t0=$(date +%s)
card=/tmp/card
export PYTHONUNBUFFERED=1
if [ ! -d $card/site/polars ]; then
  [ -f gpu_carry/site.tar.xz ] || { echo "no $card/site and no gpu_carry/site.tar.xz to unpack: carry it" >&2; exit 3; }
  rm -rf $card && mkdir -p $card/site && tar -C $card/site -xJf gpu_carry/site.tar.xz || exit 3
fi
extra=()
if [[ $jobs == *recformer* ]]; then
  [ -d $card/minilm1 ] || cp -r gpu_carry/minilm $card/minilm1 || exit 3
  parts=($card/minilm1)
  [ -d gpu_carry2/minilm ] && parts+=(gpu_carry2/minilm)
  python3 benchmarks/card_minilm.py restore --parts "${parts[@]}" --site $card/site || exit 4
fi
if [[ $jobs == *tiger* ]]; then
  [ -f gpu_carry/beauty-ids.npz ] || { echo "no gpu_carry/beauty-ids.npz for the TIGER jobs: carry it" >&2; exit 3; }
  extra+=(--tiger-ids gpu_carry/beauty-ids.npz)
fi
export PYTHONPATH=$card/site:$PWD
echo "ready in $(( $(date +%s) - t0 )) s"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
work=$card/work; mkdir -p $work/logs
python3 benchmarks/gpu_sweep.py --prepared gpu_carry/prepared --out "$OUT" --logs $work/logs --work $work \
  --budget "$budget" --threads 2 --only "$jobs" --accelerator gpu "${extra[@]}" "$@"
echo "sweep ended at $(( $(date +%s) - t0 )) s"
tar -C $work -czf "$OUT/logs.tar.gz" logs $(cd $work && find . -name metrics.csv -o -name test_metrics.json -o -name config.yaml | sed 's|^\./||')

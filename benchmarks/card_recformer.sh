#!/usr/bin/env bash
# Recformer jobs of benchmarks/gpu_sweep.py on a lent GPU machine that has no package index and no text encoder.
#
# A call carries 64 MiB: the packages the card lacks (44 MB) and MiniLM's lower 4 layers fit in one, its upper
# 2 layers must come in a later call. The working tree is sent afresh every call (ignored folders too), but /tmp
# stays while the machine is warm (30 s between calls), so the packages and the lower layers are unpacked there.
# Here, first: bash benchmarks/card_carry.sh (gpu_carry/, with gpu_carry/minilm) and
#   python benchmarks/card_minilm.py pack ... --out gpu_carry/minilm --split 4, then move
#   gpu_carry/minilm/layers-from-4.safetensors into gpu_carry2/minilm/ (both folders in .git/info/exclude).
# Card, call 1 (carry gpu_carry):                  bash benchmarks/card_recformer.sh recformer_l4_e2,recformer_l4_e3 240
# Card, call 2 (carry gpu_carry2, gpu_carry/prepared): bash benchmarks/card_recformer.sh recformer_l6_e4 300
# Results (gpu_sweep.json / .md) and a tarball of the logs and metrics go to $OUT.
set -u
jobs=${1:?usage: card_recformer.sh JOB[,JOB...] BUDGET_SECONDS}
budget=${2:?usage: card_recformer.sh JOB[,JOB...] BUDGET_SECONDS}
t0=$(date +%s)
card=/tmp/card
export PYTHONUNBUFFERED=1
if [ ! -d $card/site/polars ]; then
  [ -f gpu_carry/site.tar.xz ] || { echo "no $card/site and no gpu_carry/site.tar.xz to unpack: carry gpu_carry" >&2; exit 3; }
  rm -rf $card && mkdir -p $card/site && tar -C $card/site -xJf gpu_carry/site.tar.xz && cp -r gpu_carry/minilm $card/minilm1 || exit 3
fi
parts=($card/minilm1)
[ -d gpu_carry2/minilm ] && parts+=(gpu_carry2/minilm)
python3 benchmarks/card_minilm.py restore --parts "${parts[@]}" --site $card/site || exit 4
export PYTHONPATH=$card/site:$PWD
echo "ready in $(( $(date +%s) - t0 )) s"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
work=$card/work; mkdir -p $work/logs
python3 benchmarks/gpu_sweep.py --prepared gpu_carry/prepared --out "$OUT" --logs $work/logs --work $work \
  --budget "$budget" --threads 2 --only "$jobs" --accelerator gpu
echo "sweep ended at $(( $(date +%s) - t0 )) s"
tar -C $work -czf "$OUT/logs.tar.gz" logs $(cd $work && find . -name metrics.csv -o -name test_metrics.json -o -name config.yaml | sed 's|^\./||')

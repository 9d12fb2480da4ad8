#!/usr/bin/env bash
# Build the folder a lent GPU machine needs for benchmarks/gpu_sweep.py and gpu_check.py, here, before the lease.
#
# The card's image has torch, Lightning and transformers but no package index, and a call carries 64 MiB at most:
# polars' runtime wheel alone is 54 MB. So the packages the image lacks are unpacked here and carried as one xz tarball
# (about 44 MB), beside the prepared Amazon Beauty tables, TIGER's semantic IDs (built here, where the text
# encoder is) and MiniLM's embeddings and lower 4 layers for Recformer (benchmarks/card_minilm.py; its upper 2
# layers go to OUT_DIR2, for a later call: benchmarks/card_sweep.sh). On the card, from the repository root:
#
#   mkdir -p /tmp/site && tar -C /tmp/site -xJf gpu_carry/site.tar.xz && export PYTHONPATH=/tmp/site:$PWD
#   python3 benchmarks/gpu_sweep.py --prepared gpu_carry/prepared --tiger-ids gpu_carry/beauty-ids.npz --out $OUT ...
#
# Usage: bash benchmarks/card_carry.sh [OUT_DIR]   (default gpu_carry, and gpu_carry2 beside it; keep both out of
# git: .git/info/exclude)
# Needs: pip that reaches a package index, and prepared/amazon-beauty (recsys prep amazon-beauty --out ...).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_carry}"
prepared="${RECSYS_PREPARED:-prepared}/amazon-beauty"
[ -f "$prepared/meta.json" ] || { echo "card_carry: no prepared dataset at $prepared" >&2; exit 2; }
# The versions installed here (the ones the tests passed with), for the card's Python 3.12 on x86-64.
packages=(polars polars-runtime-32 faiss-cpu jsonargparse omegaconf antlr4-python3-runtime docstring-parser
          typeshed-client)
pins=()
for name in "${packages[@]}"; do
  version=$(python -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
  [ -n "$version" ] || { echo "card_carry: $name is not installed here" >&2; exit 2; }
  pins+=("$name==$version")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$work/wheels" "${pins[@]}"
rm -rf "$out.tmp" && mkdir -p "$work/site" "$out.tmp/prepared/amazon-beauty"
for wheel in "$work"/wheels/*.whl; do
  python -m zipfile -e "$wheel" "$work/site"
done
tar -C "$work/site" -cf - . | xz -T0 -6 > "$out.tmp/site.tar.xz"
cp "$prepared"/*.parquet "$prepared/meta.json" "$out.tmp/prepared/amazon-beauty/"
python benchmarks/gpu_sweep.py --prepared "$(dirname "$prepared")" --build-tiger-ids "$out.tmp/beauty-ids.npz"
python benchmarks/card_minilm.py pack --prepared "$prepared" --out "$out.tmp/minilm" --split 4
rm -rf "${out}2" && mkdir -p "${out}2/minilm" && mv "$out.tmp/minilm/layers-from-4.safetensors" "${out}2/minilm/"
rm -rf "$out" && mv "$out.tmp" "$out"
du -sh "$out" "${out}2"

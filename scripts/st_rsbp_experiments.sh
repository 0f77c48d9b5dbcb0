#!/usr/bin/env bash
# The runs behind docs/methods/st-rsbp.md (raw records copied to docs/results/st-rsbp/). One CPU thread each,
# one run at a time (a shared 2-core machine). DATA: the data root holding fsdd/recordings.
# Usage: scripts/st_rsbp_experiments.sh fsdd-st|fsdd-bptt|fsdd-tssl|fmnist|timing  [OUT_ROOT]
set -euo pipefail
what=$1; out=${2:-runs/st-rsbp}; DATA=${DATA:-../shared/datasets}
FSDD=(--dataset fsdd --data-dir "$DATA" --set dataset.features=cochlea --set dataset.encoding=bsa
      --set dataset.steps=150 --set dataset.split=speaker --hidden 400,400,400 --batch-size 16 --threads 1 --quiet)
EPOCHS=${EPOCHS:-4}
case $what in
  fsdd-st)   snnkit train --neuron lif-rsbp --set neuron.tau_m=64 --set neuron.v_th=5 --conn reservoir --rule st-rsbp \
                 --lr 5e-3 "${FSDD[@]}" --epochs "$EPOCHS" --seeds 3 --out "$out/fsdd-st-rsbp" ;;
  fsdd-bptt) snnkit train --neuron lif-rsbp --set neuron.tau_m=64 --set neuron.v_th=5 --conn reservoir --rule bptt \
                 "${FSDD[@]}" --epochs "$EPOCHS" --seeds 3 --out "$out/fsdd-bptt" ;;
  fsdd-tssl) snnkit train --neuron lif --conn ff --rule tssl-bp "${FSDD[@]}" --epochs "$EPOCHS" --seeds 3 \
                 --out "$out/fsdd-tssl-bp" ;;
  fmnist)    snnkit train --neuron lif-rsbp --set neuron.v_th=15 --conn reservoir --set conn.topology=dense \
                 --rule st-rsbp --dataset fmnist --set dataset.encoding=poisson --hidden 400,400 --batch-size 16 \
                 --threads 1 --quiet --limit "${LIMIT:-10000}" --epochs "${FM_EPOCHS:-2}" --out "$out/fmnist-400-R400" ;;
  timing)    python scripts/st_rsbp_timing.py --batch-sizes 1,16,64 --out docs/results/st-rsbp/timing.json ;;
  *) echo "unknown: $what" >&2; exit 2 ;;
esac

#!/bin/bash
# usage: scripts/epoch_compare.sh OLD_TREE [ROUNDS] [THREADS|default]   (OLD_TREE e.g. from `git archive 72b0cd6 | tar -x -C /tmp/prev`)
# default `snnkit train` (shipped espeak-digits, lif+srsc+bptt, 128x3), 1 epoch, interleaved old/new, OMP_NUM_THREADS=THREADS (default 1; `default`: torch's own count)
OLD=${1:?usage: scripts/epoch_compare.sh OLD_TREE [ROUNDS]}; ROUNDS=${2:-5}; THREADS=${3:-1}; NEW=$(cd "$(dirname "$0")/.." && pwd); OUT=$(mktemp -d)
if [ "$THREADS" != default ]; then export OMP_NUM_THREADS=$THREADS; else unset OMP_NUM_THREADS; fi
for r in $(seq "$ROUNDS"); do
 for tree in old new; do
  if [ $tree = old ]; then root=$OLD; else root=$NEW; fi
  rm -rf $OUT/ep_$tree$r
  echo "== $tree round $r load $(cut -d' ' -f1 /proc/loadavg)"
  PYTHONPATH=$root:$root/cli:$root/plugins/snnkit-neurons:$root/plugins/snnkit-connectivity:$root/plugins/snnkit-rules:$root/plugins/snnkit-datasets \
   python -c "import sys; from snnkit_cli.main import cli; cli()" train --epochs 1 --quiet --device cpu --out $OUT/ep_$tree$r 2>&1 | grep -E "epoch|Error|error" 
 done
done

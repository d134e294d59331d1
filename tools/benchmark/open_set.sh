#!/usr/bin/env bash
# Open-set benchmark on the CIFAR-10-LT IR100 open split (classes 0-7 known, 8-9 unknown):
# CE (30 epochs) -> cRT (10 epochs), IEM (30 epochs, paper reading, final-score confidence),
# and the same IEM model read with the validation-chosen reading (global memory as a soft kNN
# over its keys) and the memory confidence (nearest-key similarity mass). Every threshold is
# chosen on the val split (val unknowns come from the training pool); test only reads it.
# Prints each test table and writes work_dirs/bench_open_set.json.
#   bash tools/benchmark/open_set.sh /path/to/cifar-10-batches-py [extra cfg-options]
# On a shared CPU pin it: taskset -c 0 env OMP_NUM_THREADS=1 bash tools/benchmark/open_set.sh ...
set -euo pipefail
DATA_ROOT=$1
shift 1
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
S=resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-open8
CE=configs/baselines/ce_$S.py
CRT=configs/baselines/crt_$S.py
IEM=configs/iem/iem_$S.py
MEM=configs/iem/iem_$S-knn-memconf.py
W=work_dirs/bench_open
DATA_OPTS="train_dataloader.dataset.data_root=$DATA_ROOT val_dataloader.dataset.data_root=$DATA_ROOT test_dataloader.dataset.data_root=$DATA_ROOT train_dataloader.num_workers=0 val_dataloader.num_workers=0 test_dataloader.num_workers=0 train_dataloader.dataset.verify_md5=False val_dataloader.dataset.verify_md5=False test_dataloader.dataset.verify_md5=False"
# a run whose final checkpoint exists is skipped; an interrupted one resumes from its latest
# checkpoint (every 5 epochs) when the script is started again
train() {
  local cfg=$1 work=$2 final=$3
  shift 3
  if [ -e "$work/$final" ]; then echo "skip: $work/$final exists"; return; fi
  local resume=()
  [ -e "$work/last_checkpoint" ] && resume=(--resume)
  $PY tools/train.py "$cfg" --work-dir "$work" "${resume[@]}" --cfg-options $DATA_OPTS "$@"
}
t0=$(date +%s)
train "$CE" $W/ce epoch_30.pth "$@"
t1=$(date +%s)
train "$CRT" $W/crt epoch_10.pth load_from=$W/ce/epoch_30.pth "$@"
t2=$(date +%s)
train "$IEM" $W/iem epoch_30.pth "$@"
t3=$(date +%s)
# the memory-confidence reading: its threshold from a val pass of the trained IEM model
mkdir -p $W/iem-memconf
$PY tools/test.py "$MEM" $W/iem/epoch_30.pth --work-dir $W/iem-memconf --cfg-options $DATA_OPTS \
  test_dataloader.dataset.split=val test_evaluator.select_threshold=True \
  test_evaluator.threshold_out=open_threshold_memconf.json test_evaluator.threshold_file=None "$@"
$PY tools/test.py "$CE" $W/ce/epoch_30.pth --work-dir $W/ce --out $W/ce/test.json --cfg-options $DATA_OPTS "$@"
$PY tools/test.py "$CRT" $W/crt/epoch_10.pth --work-dir $W/crt --out $W/crt/test.json --cfg-options $DATA_OPTS "$@"
$PY tools/test.py "$IEM" $W/iem/epoch_30.pth --work-dir $W/iem --out $W/iem/test.json --cfg-options $DATA_OPTS "$@"
$PY tools/test.py "$MEM" $W/iem/epoch_30.pth --work-dir $W/iem-memconf --out $W/iem-memconf/test.json --cfg-options $DATA_OPTS "$@"
$PY - $W $((t1 - t0)) $((t2 - t1)) $((t3 - t2)) <<'PYEOF'
import json, sys
w = sys.argv[1]
runs = {name: json.load(open(f'{w}/{name}/test.json')) for name in ('ce', 'crt', 'iem', 'iem-memconf')}
out = dict(runs=runs, wall_s=dict(ce=int(sys.argv[2]), crt=int(sys.argv[3]), iem=int(sys.argv[4])))
json.dump(out, open('work_dirs/bench_open_set.json', 'w'), indent=2)
keys = ('top1', 'many', 'medium', 'open_top1', 'f_measure', 'f_measure_detection', 'threshold')
print('run          ' + '  '.join(f'{k:>19}' for k in keys))
for name, m in runs.items():
    print(f'{name:12s} ' + '  '.join(f'{m.get("open/" + k, float("nan")):19.4f}' for k in keys))
PYEOF

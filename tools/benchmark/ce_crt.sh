#!/usr/bin/env bash
# CE (stage 1) then cRT (stage 2) with the CPU schedule, then both tested; prints the shot
# tables and writes work_dirs/bench_ce_crt_<dataset>.json.
#   bash tools/benchmark/ce_crt.sh cifar10-lt-ir100 /path/to/cifar-10-batches-py [extra cfg-options]
#   bash tools/benchmark/ce_crt.sh fashion-mnist-lt-ir100 /path/to/fashion-mnist
# On a shared CPU pin it: taskset -c 0 env OMP_NUM_THREADS=1 bash tools/benchmark/ce_crt.sh ...
set -euo pipefail
DATASET=$1
DATA_ROOT=$2
shift 2
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
CE=configs/baselines/ce_resnet32-cifar_1xb128_${DATASET}-cpu.py
CRT=configs/baselines/crt_resnet32-cifar_1xb128_${DATASET}-cpu.py
CE_DIR=work_dirs/bench_ce_${DATASET}
CRT_DIR=work_dirs/bench_crt_${DATASET}
DATA_OPTS="train_dataloader.dataset.data_root=$DATA_ROOT val_dataloader.dataset.data_root=$DATA_ROOT test_dataloader.dataset.data_root=$DATA_ROOT train_dataloader.num_workers=0 val_dataloader.num_workers=0 test_dataloader.num_workers=0"
if [[ $DATASET == cifar* ]]; then
  DATA_OPTS="$DATA_OPTS train_dataloader.dataset.verify_md5=False val_dataloader.dataset.verify_md5=False test_dataloader.dataset.verify_md5=False"
fi
t0=$(date +%s)
$PY tools/train.py "$CE" --work-dir "$CE_DIR" --cfg-options $DATA_OPTS "$@"
t1=$(date +%s)
$PY tools/train.py "$CRT" --work-dir "$CRT_DIR" --cfg-options $DATA_OPTS load_from="$CE_DIR/epoch_30.pth" "$@"
t2=$(date +%s)
$PY tools/test.py "$CE" "$CE_DIR/epoch_30.pth" --work-dir "$CE_DIR" --out "$CE_DIR/test.json" --cfg-options $DATA_OPTS "$@"
$PY tools/test.py "$CRT" "$CRT_DIR/epoch_10.pth" --work-dir "$CRT_DIR" --out "$CRT_DIR/test.json" --cfg-options $DATA_OPTS "$@"
$PY - "$CE_DIR/test.json" "$CRT_DIR/test.json" $((t1 - t0)) $((t2 - t1)) "work_dirs/bench_ce_crt_${DATASET}.json" <<'PYEOF'
import json, sys
ce, crt = (json.load(open(p)) for p in sys.argv[1:3])
out = dict(ce=ce, crt=crt, ce_wall_s=int(sys.argv[3]), crt_wall_s=int(sys.argv[4]))
json.dump(out, open(sys.argv[5], 'w'), indent=2)
print(json.dumps(out, indent=2))
PYEOF

#!/usr/bin/env bash
# The main job on the embedded default dataset (DigitsLT, bundled with scikit-learn):
# stage 1 cross-entropy, stage 2 cRT (frozen backbone, class-balanced re-training), then
# both evaluated on the balanced test split with the many / medium / few-shot table.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/find_python.sh  # PY: $PYTHON, else .venv/bin/python, else python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
CE=configs/baselines/ce_resnet32-cifar_1xb32_digits-lt.py
CRT=configs/baselines/crt_resnet32-cifar_1xb32_digits-lt.py
WORK=${WORK_DIR:-work_dirs/quickstart}
mkdir -p "$(dirname "$WORK")"
# The full logs go to $WORK.{ce,crt}.log; the terminal gets one line per epoch.
echo "stage 1: cross-entropy, 30 epochs (log: $WORK.ce.log)"
$PY tools/train.py "$CE" --work-dir "$WORK/ce" 2>&1 | tee "$WORK.ce.log" \
    | awk -v label=ce -f tools/log_progress.awk || { mkdir -p "$WORK"; tail -50 "$WORK.ce.log"; exit 1; }
echo "stage 2: cRT, 10 epochs (log: $WORK.crt.log)"
$PY tools/train.py "$CRT" --work-dir "$WORK/crt" --cfg-options load_from="$WORK/ce/epoch_30.pth" 2>&1 \
    | tee "$WORK.crt.log" | awk -v label=crt -f tools/log_progress.awk || { tail -50 "$WORK.crt.log"; exit 1; }
$PY tools/test.py "$CE" "$WORK/ce/epoch_30.pth" --work-dir "$WORK/ce" --out "$WORK/ce_test.json" 2>/dev/null | grep '^|'
$PY tools/test.py "$CRT" "$WORK/crt/epoch_10.pth" --work-dir "$WORK/crt" --out "$WORK/crt_test.json" 2>/dev/null | grep '^|'
echo "logs: $WORK.ce.log, $WORK.crt.log; metrics: $WORK/{ce,crt}_test.json"

#!/usr/bin/env bash
# Vector benchmark (IEM Table 3's feature-vector setting at CPU scale): 64-d features of
# CIFAR-10-LT IR100 extracted by a trained CE ResNet-32 (the 30-epoch CPU run), each image paired
# with a random image of another class -> two-label "videos" (configs/_base_/datasets/
# cifar10_lt_pairs_vec.py). BCE-MLP against IEM-vector, each seed trained for 30 epochs; the IEM
# model is then read four ways (classifier weight 1.0 / 0.8 with Eq. 1's class read, 0.8 / 0.5
# with the soft kNN over the stored keys) on val and test, and the reading with the best mean val
# GAP@20 is reported. Prints the table and writes $W/summary.json.
#   bash tools/benchmark/vectors.sh /path/to/cifar-10-batches-py /path/to/ce/epoch_30.pth [seeds]
# On a shared CPU pin it: taskset -c 0 env OMP_NUM_THREADS=1 bash tools/benchmark/vectors.sh ...
set -euo pipefail
DATA_ROOT=$1
CE_CKPT=$2
SEEDS=${3:-0 1 2}
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
W=${WORK_DIR:-work_dirs/bench_vectors}
CE=configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py
BCE=configs/baselines/bce_mlp_1xb128_cifar10-lt-pairs-vec-cpu.py
IEM=configs/iem/iem_mlp_1xb128_cifar10-lt-pairs-vec-cpu.py
IMG_OPTS=""
for s in train val test; do
  IMG_OPTS="$IMG_OPTS ${s}_dataloader.dataset.data_root=$DATA_ROOT ${s}_dataloader.num_workers=0 ${s}_dataloader.dataset.verify_md5=False"
done
mkdir -p $W/data
t0=$(date +%s)
for s in train val test; do
  [ -e $W/data/${s}_pairs.npz ] || $PY tools/extract_features.py $CE "$CE_CKPT" --split $s \
    --pairs --out $W/data/${s}_pairs.npz --cfg-options $IMG_OPTS
done
echo "extraction: $(( $(date +%s) - t0 )) s"
VEC="test_dataloader.dataset.data_root=$W/data"
VEC_TRAIN="train_dataloader.dataset.data_root=$W/data val_dataloader.dataset.data_root=$W/data $VEC"
READINGS=("cw1.0:model.head.classifier_weight=1.0"
          "cw0.8:model.head.classifier_weight=0.8"
          "keys0.8:model.head.classifier_weight=0.8 model.head.inference_read=keys"
          "keys0.5:model.head.classifier_weight=0.5 model.head.inference_read=keys")
for seed in $SEEDS; do
  for model in bce iem; do
    cfg=$BCE; [ $model = iem ] && cfg=$IEM
    w=$W/$model-s$seed
    t1=$(date +%s)
    [ -e $w/epoch_30.pth ] || $PY tools/train.py $cfg --work-dir $w \
      --cfg-options $VEC_TRAIN randomness.seed=$seed
    echo "train $model seed $seed: $(( $(date +%s) - t1 )) s"
    readings=("default:")
    [ $model = iem ] && readings+=("${READINGS[@]}")
    for r in "${readings[@]}"; do
      name=${r%%:*}; opts=${r#*:}
      for split in val test; do
        out=$w/read-$name-$split.json
        [ -e $out ] || $PY tools/test.py $cfg $w/epoch_30.pth --work-dir $w/readings --out $out \
          --cfg-options $VEC test_dataloader.dataset.data_file=${split}_pairs.npz $opts
      done
    done
  done
done
$PY - $W <<'PYEOF'
import glob, json, os, statistics, sys
w = sys.argv[1]
res = {}   # (model, reading) -> split -> seed -> metrics
for f in glob.glob(f'{w}/*-s*/read-*.json'):
    model, seed = os.path.basename(os.path.dirname(f)).rsplit('-s', 1)
    reading, split = os.path.basename(f)[len('read-'):-len('.json')].rsplit('-', 1)
    res.setdefault((model, reading), {}).setdefault(split, {})[seed] = json.load(open(f))
def mean(d, key):
    vals = [m[key] for m in d.values()]
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)
rows, best = [], {}
for (model, reading), splits in sorted(res.items()):
    val_gap = mean(splits['val'], 'multi_label/gap')[0]
    rows.append((model, reading, val_gap, mean(splits['test'], 'multi_label/gap'),
                 mean(splits['test'], 'multi_label/mAP'), len(splits['test'])))
    if val_gap > best.get(model, ('', -1))[1]:
        best[model] = (reading, val_gap)
print('model reading   val GAP@20   test GAP@20      test mAP    seeds')
for model, reading, vg, (tg, tgs), (tm, tms), n in rows:
    mark = ' *' if best[model][0] == reading else ''
    print(f'{model:5s} {reading:8s} {vg:8.2f}   {tg:6.2f} ± {tgs:4.2f}   {tm:6.2f} ± {tms:4.2f}   {n}{mark}')
print('* chosen on val GAP@20')
json.dump(dict(rows=rows, chosen={m: r for m, (r, _) in best.items()}),
          open(f'{w}/summary.json', 'w'), indent=2)
PYEOF

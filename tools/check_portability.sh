#!/usr/bin/env bash
# Imitate other processors on this one: run the tests that compare floats (recorded or
# hand-computed values, in-run references with discrete choices) under restricted kernel sets
# and report, per setting, whether they pass.
#
#   bash tools/check_portability.sh            # the float-sensitive subset (default)
#   bash tools/check_portability.sh --all      # the whole default suite (-m "not slow")
#   bash tools/check_portability.sh -- tests/test_models/test_iem_preset.py   # given tests
#
# Settings (each a separate pytest run, OMP_NUM_THREADS=1 as in the suite):
#   native          nothing set: this CPU's own kernels
#   aten-default    ATEN_CPU_CAPABILITY=default: PyTorch's unvectorised kernels
#   aten-avx2       ATEN_CPU_CAPABILITY=avx2: the AVX2 kernels (what an AVX-512 CPU runs
#                   when restricted; on an AVX2-only CPU the same as native)
#   aten-avx512     ATEN_CPU_CAPABILITY=avx512: only on a CPU that has AVX-512
#   mkl-avx2        MKL_ENABLE_INSTRUCTIONS=AVX2, ONEDNN_MAX_CPU_ISA=AVX2: the math libraries
#                   (MKL BLAS, oneDNN convolutions) limited to AVX2
#   mkl-compatible  MKL_CBWR=COMPATIBLE, ONEDNN_MAX_CPU_ISA=SSE41: MKL's instruction-set
#                   independent code path and oneDNN's SSE4.1 kernels (other summation
#                   orders than any AVX path)
#   all-restricted  ATEN_CPU_CAPABILITY=default with the mkl-compatible settings
# The variables are read once at start-up, hence one process per setting.
#
# Environment: PYTHON (default .venv/bin/python, as tools/find_python.sh finds it), JOBS
# (pytest-xdist workers, default 2; 0 runs in one process), SETTINGS (space-separated names to
# run a subset of the settings). Exit status: 0 when every setting passes.
set -uo pipefail
cd "$(dirname "$0")/.."

# Tests that compare floats with recorded or hand-computed values, or whose in-run reference
# makes discrete choices (nearest neighbours, maxima, argmax, thresholds) on float data.
SUBSET=(tests/test_models tests/test_memory tests/test_evaluation tests/test_engine
        tests/test_tools/test_end_to_end.py)

targets=("${SUBSET[@]}")
marker='not slow'
while [ $# -gt 0 ]; do
    case "$1" in
        --all) targets=(tests); shift ;;
        --) shift; targets=("$@"); break ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "check_portability.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

. tools/find_python.sh  # PY: $PYTHON, else .venv/bin/python, else python3
JOBS=${JOBS:-2}
xdist=(-p no:xdist)
if [ "$JOBS" != 0 ]; then
    xdist=(-n "$JOBS" --dist loadfile)
fi

declare -A ENVS=(
    [native]=''
    [aten-default]='ATEN_CPU_CAPABILITY=default'
    [aten-avx2]='ATEN_CPU_CAPABILITY=avx2'
    [aten-avx512]='ATEN_CPU_CAPABILITY=avx512'
    [mkl-avx2]='MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2'
    [mkl-compatible]='MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41'
    [all-restricted]='ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41'
)
ORDER=(native aten-default aten-avx2 aten-avx512 mkl-avx2 mkl-compatible all-restricted)
declare -A RESULT
if ! grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    # no AVX-512 here: the AVX-512 kernels cannot run, and an AVX2 cap is what runs anyway
    ORDER=("${ORDER[@]/aten-avx512/}")
    for name in aten-avx2 mkl-avx2; do
        ORDER=("${ORDER[@]/$name/}")
        RESULT[$name]="skipped: the same kernels as native on this CPU (no AVX-512)"
    done
fi
if [ -n "${SETTINGS:-}" ]; then
    read -r -a ORDER <<< "$SETTINGS"
fi
REPORT=(native aten-default aten-avx2 aten-avx512 mkl-avx2 mkl-compatible all-restricted)

logdir=$(mktemp -d "${TMPDIR:-/tmp}/check_portability.XXXXXX")
echo "python: $PY; tests: ${targets[*]} (-m \"$marker\"); logs: $logdir"
status=0
for name in "${ORDER[@]}"; do
    [ -z "$name" ] && continue
    if [ -z "${ENVS[$name]+set}" ]; then
        echo "check_portability.sh: unknown setting $name; use: ${!ENVS[*]}" >&2
        exit 2
    fi
    settings=${ENVS[$name]}
    log="$logdir/$name.log"
    start=$(date +%s)
    # shellcheck disable=SC2086  # the settings are NAME=value words
    env OMP_NUM_THREADS=1 PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" $settings \
        "$PY" -c 'import torch; print("capability:", torch.backends.cpu.get_cpu_capability())' \
        > "$log" 2>&1
    # shellcheck disable=SC2086
    env OMP_NUM_THREADS=1 PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" $settings \
        "$PY" -m pytest -q -m "$marker" "${xdist[@]}" "${targets[@]}" >> "$log" 2>&1
    rc=$?
    summary=$(grep -E '(passed|failed|errors?|no tests ran).* in [0-9.]+s' "$log" | tail -1)
    capability=$(sed -n 's/^capability: //p' "$log")
    if [ $rc -eq 0 ]; then verdict=PASS; else verdict=FAIL; status=1; fi
    seconds=$(( $(date +%s) - start ))
    RESULT[$name]="$verdict  ${settings:-(nothing set)} [ATen: $capability]  $summary  ($seconds s)"
    echo "$name: ${RESULT[$name]}"
    if [ $rc -ne 0 ]; then
        grep -E '^(FAILED|ERROR) ' "$log" | head -20
    fi
done

echo
echo "== portability report =="
for name in "${REPORT[@]}"; do
    [ -n "${RESULT[$name]:-}" ] && printf '%-15s %s\n' "$name" "${RESULT[$name]}"
done
exit $status

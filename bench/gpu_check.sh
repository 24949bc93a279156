#!/usr/bin/env bash
# One command on a machine with a CUDA GPU: parity of every example against numpy with the
# kernels compiled for the device (no interpreter), then the fair benchmark (bench/gpu_step.py:
# the Adam MLP step against torch eager and three torch.compile modes, the digits CNN step
# against torch eager and torch.compile reduce-overhead, and fused elementwise bandwidth). Writes JSON and markdown under the output directory. See bench/gpu_README.md.
#
#   bash bench/gpu_check.sh [OUTDIR]                 # GPU; OUTDIR defaults to $OUT, else gpu-check/
#   bash bench/gpu_check.sh --device cpu --quick [OUTDIR]   # dry run on the CPU (Triton interpreter)
#
# Needs python with torch and triton. lark (the .nn parser) is installed from a wheel beside the
# repository (../shared/wheels, or $NNC_WHEELS) with pip --no-index when it is missing: the GPU
# machines have no network.
set -euo pipefail
cd "$(dirname "$0")/.."
device=""
quick=""
outdir="${OUT:-gpu-check}"
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --quick) quick="--quick"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) outdir="$1"; shift ;;
    esac
done
PY="${PYTHON:-python3}"
mkdir -p "$outdir"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import lark" 2>/dev/null; then
    wheels="${NNC_WHEELS:-../shared/wheels}"
    echo "lark missing: installing it from $wheels (no network)"
    "$PY" -m pip install --no-index --find-links "$wheels" lark >/dev/null
fi
if [ -z "$device" ]; then
    device=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
fi
if [ "$device" = cpu ]; then
    export TRITON_INTERPRET=1
    # the interpreter runs a step in a second where a GPU takes microseconds: a smoke test of the
    # scripts; torch.compile on the CPU needs a C++ toolchain and minutes, so it is left out
    bench_args=(--device cpu --quick --skip examples --modes "")
else
    # the CNN step (its convs are implicit-GEMM kernels) against torch eager and one
    # torch.compile mode, CUDA graphs like nnc: the other modes' compiles cost minutes
    bench_args=(--device cuda --skip examples --cnn-modes reduce-overhead $quick)
fi

start=$(date +%s)
status=0
echo "== parity against numpy ($device) =="
"$PY" bench/gpu_parity.py --device "$device" $quick --json "$outdir/parity.json" --md "$outdir/parity.md" || status=$?
echo "== benchmark ($device) =="
"$PY" bench/gpu_step.py "${bench_args[@]}" --json "$outdir/gpu_step.json" --md "$outdir/gpu_step.md" || status=$?
cat "$outdir/parity.md" "$outdir/gpu_step.md" > "$outdir/summary.md"
echo "wrote $outdir/{parity,gpu_step}.{json,md} and summary.md in $(( $(date +%s) - start )) s (status $status)"
exit $status

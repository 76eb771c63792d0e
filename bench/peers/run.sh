#!/usr/bin/env bash
# The peer benchmark in one command: writes the workloads' data once, builds nnc-step,
# times every peer and nnc at each thread count, then prints the table and writes it as
# markdown to $OUT/table.md. Run bench/peers/setup.sh once first.
#
# Usage: bench/peers/run.sh [--no-peers] [--no-nnc] [REPEATS]      (REPEATS default 3)
#
# The repeats are interleaved: REPEATS rounds, each running every implementation once,
# so that a change in the machine's speed during the run (a shared host) falls on all
# of them alike instead of on whichever ran at the time.
# Env:   THREADS    thread counts to run, default "1 2" (1: pinned to core $PIN_CORE)
#        WORKLOADS  default W1,W2,W3,W4
#        PEERS      default "numpy jax.jit torch.eager torch.compile pytensor.numba pytensor.c"
#        VENV       default target/peers-venv;  BLAS_DIR  default target/peers-blas
#        OUT        default target/peers-bench (each run in OUT/runs/<time>/)
#        PIN_CORE   default 0
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
THREADS=${THREADS:-"1 2"}
WORKLOADS=${WORKLOADS:-W1,W2,W3,W4}
PEERS=${PEERS-"numpy jax.jit torch.eager torch.compile pytensor.numba pytensor.c"}
VENV=${VENV:-$ROOT/target/peers-venv}
BLAS_DIR=${BLAS_DIR:-$ROOT/target/peers-blas}
OUT=${OUT:-$ROOT/target/peers-bench}
PIN_CORE=${PIN_CORE:-0}
NNC_TARGET=$ROOT/target/peers-nnc-step
REPEATS=3
RUN_NNC=1

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0"; }
for arg in "$@"; do
    case $arg in
        --no-peers) PEERS="" ;;
        --no-nnc) RUN_NNC=0 ;;
        -h | --help) usage; exit 0 ;;
        *[!0-9]* | "" | 0) usage >&2; exit 2 ;;
        *) REPEATS=$arg ;;
    esac
done

PY=$VENV/bin/python
[ -x "$PY" ] || { echo "no venv at $VENV: run bench/peers/setup.sh first" >&2; exit 1; }
RUN=$OUT/runs/$(date -u +%Y%m%d-%H%M%S)
DATA=$OUT/data
RESULTS=$RUN/results.jsonl
mkdir -p "$RUN/logs" "$DATA"
: > "$RESULTS"

machine() {
    local lscpu flags
    lscpu=$(lscpu)
    field() { sed -n "s/^$1: *//p" <<< "$lscpu" | head -1; }
    flags=" $(field Flags) "
    has() { [[ $flags == *" $1 "* ]] && echo yes || echo no; }
    echo "machine: $(field 'Model name'), CPU family $(field 'CPU family') model $(field Model)," \
        "$(nproc) CPUs; avx2 $(has avx2), avx512f $(has avx512f), fma $(has fma)"
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
    local commit dirty=""
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -z "$(git -C "$ROOT" status --porcelain -- crates src Cargo.toml Cargo.lock 2>/dev/null)" ] ||
        dirty=" with uncommitted changes"
    echo "nnc: commit $commit$dirty; $(rustc --version); $("$PY" --version)"
    echo "run: $(date -u '+%Y-%m-%d %H:%M UTC'), $REPEATS interleaved rounds, threads $THREADS"
}

# The thread environment of one benchmark process: every library's pool sized to $1
# (common.py sets the same for the Python peers), and one thread pinned to one core:
# XLA starts helper threads whatever its flags say. OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE, which this machine may set, are removed: they slow numpy's OpenBLAS.
with_threads() {
    local t=$1 pin=()
    shift
    [ "$t" = 1 ] && pin=(taskset -c "$PIN_CORE")
    local multi=false
    [ "$t" -gt 1 ] && multi=true
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" MKL_NUM_THREADS="$t" \
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=$multi intra_op_parallelism_threads=$t" \
        NNC_THREADS="$t" RAYON_NUM_THREADS="$t" \
        "${pin[@]}" "$@"
}

# Runs a command with its stdout on the terminal and in logs/$1.log, stderr in the log only.
logged() {
    local log=$RUN/logs/$1.log
    shift
    "$@" 2>> "$log" | tee -a "$log" || echo "  (exited with an error; see $log)"
}

peer_command() {
    case $1 in
        numpy) echo "peer_numpy.py" ;;
        jax.jit) echo "peer_jax.py" ;;
        torch.eager) echo "peer_torch.py --variant eager" ;;
        torch.compile) echo "peer_torch.py --variant compile" ;;
        pytensor.numba) echo "peer_pytensor.py --variant numba" ;;
        pytensor.c) echo "peer_pytensor.py --variant c" ;;
        *) return 1 ;;
    esac
}

# Before and after every run on more than one thread: the cross-core round trip
# (nnc-step's `cross-core`; its doc says why), recorded in the results so that
# report.py can compare runs made in the same spell of the host.
probe() {
    [ "$1" -gt 1 ] && [ -x "$NNC_TARGET/release/cross-core" ] || return 0
    "$NNC_TARGET/release/cross-core" --out "$RESULTS" > /dev/null || true
}

build_nnc_step() {
    # The workspace's lock file (cargo drops what nnc-step does not use): the same
    # dependency versions as the project's own builds and tests.
    cp "$ROOT/Cargo.lock" "$HERE/nnc-step/Cargo.lock"
    CARGO_TARGET_DIR=$NNC_TARGET RUSTFLAGS="-C target-cpu=native" \
        cargo build --release --manifest-path "$HERE/nnc-step/Cargo.toml" > "$RUN/logs/nnc-build.log" 2>&1
}

machine | tee "$RUN/machine.txt"
echo
"$PY" "$HERE/make_data.py" "$DATA" "$WORKLOADS"
if [ "$RUN_NNC" = 1 ]; then
    echo "building nnc-step (fat LTO, target-cpu=native)"
    if ! build_nnc_step; then
        tail -30 "$RUN/logs/nnc-build.log"
        echo "nnc-step does not build (log: $RUN/logs/nnc-build.log): nnc is left out of this run"
        RUN_NNC=0
    fi
fi
if [[ " $PEERS " == *" pytensor.c "* ]] && [ ! -f "$BLAS_DIR/pytensorrc" ]; then
    echo "no BLAS trampoline in $BLAS_DIR (run bench/peers/setup.sh): pytensor.c is left out"
    PEERS=${PEERS//pytensor.c/}
fi

# Compilation caches inside OUT; PyTensor's C linker linked to the trampoline.
export PYTENSORRC=$BLAS_DIR/pytensorrc
export PYTENSOR_FLAGS="base_compiledir=$OUT/cache/pytensor${PYTENSOR_FLAGS:+,$PYTENSOR_FLAGS}"
export NUMBA_CACHE_DIR=$OUT/cache/numba TORCHINDUCTOR_CACHE_DIR=$OUT/cache/inductor
export PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2

for t in $THREADS; do
    echo
    echo "== $t thread(s)$([ "$t" = 1 ] && echo ", pinned to core $PIN_CORE")"
    for round in $(seq "$REPEATS"); do
        echo "-- round $round of $REPEATS"
        for peer in $PEERS; do
            if ! script=$(peer_command "$peer"); then
                [ "$round" = 1 ] && echo "unknown peer $peer (known: numpy jax.jit torch.eager torch.compile pytensor.numba pytensor.c)"
                continue
            fi
            read -r -a script <<< "$script"
            probe "$t"
            logged "$peer-t$t" with_threads "$t" "$PY" "$HERE/${script[0]}" "${script[@]:1}" \
                --data "$DATA" --threads "$t" --repeats 1 --workloads "$WORKLOADS" --out "$RESULTS"
            probe "$t"
        done
        if [ "$RUN_NNC" = 1 ]; then
            probe "$t"
            logged "nnc-t$t" with_threads "$t" "$NNC_TARGET/release/nnc-step" \
                --data "$DATA" --repeats 1 --workloads "$WORKLOADS" --out "$RESULTS"
            probe "$t"
        fi
    done
done

echo
cat "$RUN/machine.txt"
echo
status=0
"$PY" "$HERE/report.py" "$RESULTS" --markdown "$RUN/table.md" --header "$RUN/machine.txt" || status=$?
[ -f "$RUN/table.md" ] && cp "$RUN/table.md" "$OUT/table.md"
echo
echo "records: $RESULTS; logs: $RUN/logs; markdown: $OUT/table.md"
exit "$status"

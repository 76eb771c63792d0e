#!/usr/bin/env bash
# Prepares the peer benchmark; idempotent: every step is skipped when already done.
#   1. a venv with the pinned versions of requirements.txt (default target/peers-venv);
#   2. the BLAS trampoline PyTensor's C linker links against, and the PYTENSORRC naming it
#      (default target/peers-blas).
# Env: VENV, BLAS_DIR, PYTHON (default python3.11). Needs python3.11 with venv, gcc, nm.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${VENV:-$ROOT/target/peers-venv}
BLAS_DIR=${BLAS_DIR:-$ROOT/target/peers-blas}
PYTHON=${PYTHON:-python3.11}
REQUIREMENTS=$HERE/requirements.txt

# "name==version" lines, lower case, '-', '_' and '.' in names alike, sorted.
normalise() { grep -E '^[A-Za-z0-9]' | tr 'A-Z' 'a-z' | sed -E ':a; s/^([^=]*)[_.]/\1-/; ta' | sort -u; }

# The pinned versions missing from the venv (empty: nothing to install).
missing_pins() {
    comm -23 <(normalise < "$REQUIREMENTS") <("$VENV/bin/python" -m pip freeze 2>/dev/null | normalise)
}

setup_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "creating the venv $VENV ($PYTHON)"
        "$PYTHON" -m venv "$VENV"
    fi
    local missing
    missing=$(missing_pins)
    if [ -z "$missing" ]; then
        echo "venv $VENV: every pinned version installed"
    else
        echo "venv $VENV: installing $(echo "$missing" | wc -l) pinned packages (torch is large: minutes)"
        "$VENV/bin/python" -m pip install -r "$REQUIREMENTS"
        missing=$(missing_pins)
        [ -z "$missing" ] || { echo "still missing after pip install:"; echo "$missing"; exit 1; }
    fi
    "$VENV/bin/python" -c "import numpy, jax, pytensor, torch, threadpoolctl
print('  numpy', numpy.__version__, '| jax', jax.__version__, '| pytensor', pytensor.__version__, '| torch', torch.__version__)"
}

# PyTensor's C linker wants a BLAS exporting the plain Fortran symbols (dgemm_, ...). The
# only BLAS a pip install brings is the OpenBLAS in scipy's wheel, whose symbols are
# prefixed (scipy_dgemm_). The trampoline exports each plain name as a jump to the
# prefixed one, so PyTensor's Gemm ops run that OpenBLAS.
build_blas_shim() {
    local openblas so=$BLAS_DIR/libblasshim.so
    openblas=$(ls "$VENV"/lib/python3*/site-packages/scipy.libs/libscipy_openblas*.so 2>/dev/null | head -1)
    [ -n "$openblas" ] || { echo "no scipy OpenBLAS in $VENV"; exit 1; }
    if [ -f "$so" ] && [ "$so" -nt "$openblas" ] && [ -f "$BLAS_DIR/pytensorrc" ]; then
        echo "BLAS trampoline $so: built"
        return
    fi
    mkdir -p "$BLAS_DIR"
    {
        echo ".text"
        nm -D --defined-only "$openblas" |
            awk '$2 == "T" && ($3 ~ /^scipy_[a-z0-9]+_$/ || $3 ~ /^scipy_openblas_(set|get)_num_threads$|^scipy_openblas_get_(config|corename)$/) { print substr($3, 7) }' |
            sort -u |
            while read -r name; do
                printf '.globl %s\n.type %s,@function\n%s: jmp scipy_%s@PLT\n' "$name" "$name" "$name" "$name"
            done
        echo '.section .note.GNU-stack,"",@progbits'
    } > "$BLAS_DIR/shim.s"
    gcc -shared -fPIC -o "$so" "$BLAS_DIR/shim.s" \
        -L"$(dirname "$openblas")" -l:"$(basename "$openblas")" -Wl,-rpath,"$(dirname "$openblas")"
    printf '[blas]\nldflags = -L%s -lblasshim -Wl,-rpath,%s\n' "$BLAS_DIR" "$BLAS_DIR" > "$BLAS_DIR/pytensorrc"
    echo "BLAS trampoline $so: $(grep -c jmp "$BLAS_DIR/shim.s") symbols -> $(basename "$openblas")"
}

mkdir -p "$(dirname "$VENV")"
# One setup at a time per venv: a second one waits for the first instead of racing pip.
exec 9> "$(dirname "$VENV")/.$(basename "$VENV").setup-lock"
flock 9
setup_venv
build_blas_shim

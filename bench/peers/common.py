"""What every peer shares: the workloads, their data files, the thread settings and the
timing protocol.

A peer script imports this module first and calls `start()` before it imports numpy, JAX,
torch or PyTensor: the thread-count environment variables must be set before those
libraries load. Nothing here imports numpy at module level for the same reason.

The data are written once per run by `make_data.py` (through `write_data` below) and
every peer, nnc's included, reads the same files: DATA_DIR/W1/inputs.npz and
DATA_DIR/W1/params.npz, arrays named as in the model's `.nn` file (biases are 1-D, label
vectors int64). nnc-step reads them with nnc's own npz loader.
"""

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass

# ---------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """One row of spec/workloads.md."""

    id: str
    model: str  # the .nn model (examples/models/<model>.nn)
    dtype: str  # numpy dtype name
    batch: int
    widths: tuple  # layer widths, input first: the step is a chain of these products
    lr: float
    steps: int
    inputs: tuple  # input names, as in the .nn file
    params: tuple  # parameter names, in declaration order

    @property
    def mflop(self):
        """Matmul MFLOP per step, 2mnk each: every forward product, every weight
        gradient, and the input gradient of every layer but the first."""
        pairs = sum(a * b for a, b in zip(self.widths, self.widths[1:]))
        first = self.widths[0] * self.widths[1]
        return 2 * self.batch * (3 * pairs - first) / 1e6

    # Largest relative spread between implementations that still counts as agreement,
    # for the loss of the first step (same parameters everywhere: checks the model and
    # the data) and of the last (checks the gradients and the update as well).
    @property
    def first_rtol(self):
        return 1e-12 if self.dtype == "float64" else 1e-5

    @property
    def final_rtol(self):
        if self.id == "W2":
            # lr 1.0 on a ReLU net: the trajectory amplifies rounding. Measured with
            # numpy: w1[0, 0] *= 1 + 1e-15 moves the loss after 10 000 steps by 5e-6.
            return 1e-4
        return 1e-9 if self.dtype == "float64" else 1e-4


W2_REG = 1e-3  # spiral.nn: const reg = 1e-3; loss ... + 0.5 * reg * (l2(w1) + l2(w2))
W4_DEPTH = 10

WORKLOADS = {
    w.id: w
    for w in [
        Workload("W1", "two_layer", "float64", 64, (1000, 100, 10), 1e-4, 2000,
                 ("x", "y"), ("w1", "w2")),
        Workload("W2", "spiral", "float64", 300, (2, 100, 3), 1.0, 10000,
                 ("x", "labels"), ("w1", "b1", "w2", "b2")),
        Workload("W3", "mlp784", "float32", 128, (784, 256, 128, 10), 0.1, 300,
                 ("x", "labels"), ("w1", "b1", "w2", "b2", "w3", "b3")),
        Workload("W4", "deep_tanh", "float32", 256, (500,) * (W4_DEPTH + 1) + (10,), 0.01, 50,
                 ("x", "labels"), tuple(f"w{i}" for i in range(1, W4_DEPTH + 1)) + ("w_out",)),
    ]
}

# ---------------------------------------------------------------------------- data


def generate(w):
    """The seeded inputs and initial parameters of workload `w`, as the spec and the
    model's initialisers say: (inputs, params), dicts of numpy arrays."""
    import numpy as np

    rng = np.random.default_rng({"W1": 1, "W2": 2, "W3": 3, "W4": 4}[w.id])
    normal = rng.standard_normal
    dt = np.dtype(w.dtype)

    def xavier(fan_in, fan_out):  # standard normal / sqrt(fan_in)
        return normal((fan_in, fan_out)) / np.sqrt(fan_in)

    def he(fan_in, fan_out):  # standard normal / sqrt(fan_in / 2)
        return normal((fan_in, fan_out)) / np.sqrt(fan_in / 2)

    if w.id == "W1":  # x, y, w1, w2 standard normal
        d_in, h, d_out = w.widths
        inputs = dict(x=normal((w.batch, d_in)), y=normal((w.batch, d_out)))
        params = dict(w1=normal((d_in, h)), w2=normal((h, d_out)))
    elif w.id == "W2":  # the spiral; normal(0, 0.01) weights, zero biases
        d, h, k = w.widths
        per_class = w.batch // k
        i = np.arange(per_class)
        xs, labels = [], []
        for j in range(k):
            r = i / (per_class - 1)
            t = 4 * j + 4 * i / (per_class - 1) + 0.2 * normal(per_class)
            xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
            labels.append(np.full(per_class, j))
        inputs = dict(x=np.concatenate(xs), labels=np.concatenate(labels))
        params = dict(w1=0.01 * normal((d, h)), b1=np.zeros(h),
                      w2=0.01 * normal((h, k)), b2=np.zeros(k))
    elif w.id == "W3":  # he, he, xavier; zero biases
        d, h1, h2, c = w.widths
        inputs = dict(x=normal((w.batch, d)), labels=rng.integers(0, c, w.batch))
        params = dict(w1=he(d, h1), b1=np.zeros(h1), w2=he(h1, h2), b2=np.zeros(h2),
                      w3=xavier(h2, c), b3=np.zeros(c))
    elif w.id == "W4":  # every layer xavier, no biases
        ws = w.widths
        inputs = dict(x=normal((w.batch, ws[0])), labels=rng.integers(0, ws[-1], w.batch))
        params = {name: xavier(a, b) for name, a, b in zip(w.params, ws, ws[1:])}
    else:
        raise ValueError(w.id)

    def typed(name, a):
        return a.astype(np.int64) if name == "labels" else np.ascontiguousarray(a, dtype=dt)

    inputs = {k: typed(k, v) for k, v in inputs.items()}
    params = {k: typed(k, v) for k, v in params.items()}
    assert tuple(inputs) == w.inputs and tuple(params) == w.params
    return inputs, params


def write_data(data_dir, workloads):
    import numpy as np

    for w in workloads:
        inputs, params = generate(w)
        d = os.path.join(data_dir, w.id)
        os.makedirs(d, exist_ok=True)
        np.savez(os.path.join(d, "inputs.npz"), **inputs)
        np.savez(os.path.join(d, "params.npz"), **params)


def load_data(data_dir, w):
    """(inputs, params) of workload `w` from the run's data files."""
    import numpy as np

    def read(kind, names):
        path = os.path.join(data_dir, w.id, f"{kind}.npz")
        with np.load(path) as f:
            if set(f.files) != set(names):
                raise ValueError(f"{path}: holds {sorted(f.files)}, expected {sorted(names)}")
            return {n: f[n] for n in names}

    return read("inputs", w.inputs), read("params", w.params)


# ---------------------------------------------------------------------------- threads


def thread_env(threads):
    """The environment variables that bound every library's thread pool."""
    n = str(threads)
    multi = "true" if threads > 1 else "false"
    return {
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        # XLA's CPU backend: Eigen's thread pool off for one thread. (It still starts
        # helper threads; run.sh pins one-thread runs to one core.)
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={multi} intra_op_parallelism_threads={n}",
    }


# ---------------------------------------------------------------------------- protocol

WARMUP_STEPS = 20  # untimed, from the initial parameters: JIT compilation happens here


def parse_args(variants=None):
    p = argparse.ArgumentParser(description="time one peer's training step on W1-W4")
    p.add_argument("--data", required=True, help="folder written by make_data.py")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workloads", default="W1,W2,W3,W4")
    p.add_argument("--out", help="append one JSON line per workload here")
    if variants:
        p.add_argument("--variant", choices=variants, default=variants[0])
    return p.parse_args()


def start(variants=None):
    """Parse the command line and set the thread environment. Call before importing any
    numerical library."""
    args = parse_args(variants)
    os.environ.update(thread_env(args.threads))
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(var, None)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    return args


def measure(runner, w, repeats):
    """The protocol. `runner.reset()` restores the initial parameters; `runner.run(n)`
    takes n training steps and returns the losses of its first and last step.

    Reset, then WARMUP_STEPS untimed steps. Then `repeats` times: reset (untimed), time
    `w.steps` steps with the wall clock and the process's CPU clock. ms/step = wall time
    / steps; the summary is the median, min and max over the repeats."""
    t0 = time.perf_counter()
    runner.reset()
    runner.run(min(WARMUP_STEPS, w.steps))
    warmup_s = time.perf_counter() - t0
    ms, cpu_ratio, losses = [], [], []
    for _ in range(repeats):
        runner.reset()
        c0, t0 = time.process_time(), time.perf_counter()
        first, last = runner.run(w.steps)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        ms.append(wall * 1e3 / w.steps)
        cpu_ratio.append(cpu / wall)
        losses.append((float(first), float(last)))
    return dict(
        ms_median=statistics.median(ms), ms_min=min(ms), ms_max=max(ms), ms=ms,
        cpu_over_wall=statistics.median(cpu_ratio), warmup_s=warmup_s,
        first_loss=losses[-1][0], final_loss=losses[-1][1],
        repeat_final_losses=[l for _, l in losses],
    )


def summary_line(rec):
    return (f"{rec['peer']:15s} {rec['workload']} t={rec['threads']}  "
            f"{rec['ms_median']:9.4f} ms/step [{rec['ms_min']:.4f}-{rec['ms_max']:.4f}]  "
            f"cpu/wall {rec['cpu_over_wall']:.2f}  loss {rec['first_loss']:.6g} -> "
            f"{rec['final_loss']:.8g}  (setup {rec.get('setup_s', 0):.1f} s, warm-up {rec['warmup_s']:.1f} s)")


def run_peer(peer, make_runner, args, version, details=None):
    """Time `make_runner(workload, inputs, params)` on every requested workload, print a
    line per workload and append its JSON record to args.out. A failing workload is
    reported and skipped; the exit status says whether any failed."""
    print(f"# {peer}: {version}; threads {args.threads}", flush=True)
    failed = False
    for wid in args.workloads.split(","):
        w = WORKLOADS[wid]
        try:
            inputs, params = load_data(args.data, w)
            t0 = time.perf_counter()
            runner = make_runner(w, inputs, params)
            setup_s = time.perf_counter() - t0
            rec = dict(peer=peer, workload=w.id, model=w.model, dtype=w.dtype,
                       threads=args.threads, steps=w.steps, lr=w.lr, repeats=args.repeats,
                       warmup_steps=min(WARMUP_STEPS, w.steps), mflop=w.mflop, version=version)
            rec.update(measure(runner, w, args.repeats), setup_s=setup_s)
            if details:
                rec.update(details(runner))
        except Exception as e:  # one workload failing must not hide the others
            failed = True
            print(f"FAILED {peer} {wid} t={args.threads}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stderr)
            continue
        print(summary_line(rec), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
    sys.exit(1 if failed else 0)

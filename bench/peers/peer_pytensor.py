"""PyTensor: a compiled function of no arguments returning the loss, the SGD update as its
shared-variable `updates` (Theano style), data in shared variables. Two linkers:
  numba  PyTensor 3's default mode (the Numba linker);
  c      mode CVM: the C linker and the C virtual machine, with BLAS Gemm/Dot22 ops.
The C linker needs a BLAS with plain Fortran symbols: setup.sh builds a trampoline to the
OpenBLAS inside scipy's wheel and points PYTENSORRC at it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

args = common.start(variants=["numba", "c"])
import numpy as np  # noqa: E402
import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402

MODE = dict(numba=None, c="CVM")[args.variant]  # None: the default mode


def softmax_cross_entropy(scores, labels):
    picked = scores[pt.arange(scores.shape[0]), labels]
    return pt.mean(pt.logsumexp(scores, axis=1) - picked)


def loss_w1(p, x, y):
    h = pt.sigmoid(pt.dot(x, p["w1"]))
    return pt.sum((pt.dot(h, p["w2"]) - y) ** 2)


def loss_w2(p, x, labels):
    hidden = pt.maximum(pt.dot(x, p["w1"]) + p["b1"], 0)
    scores = pt.dot(hidden, p["w2"]) + p["b2"]
    l2 = pt.sum(p["w1"] ** 2) + pt.sum(p["w2"] ** 2)
    return softmax_cross_entropy(scores, labels) + 0.5 * common.W2_REG * l2


def loss_w3(p, x, labels):
    h1 = pt.maximum(pt.dot(x, p["w1"]) + p["b1"], 0)
    h2 = pt.maximum(pt.dot(h1, p["w2"]) + p["b2"], 0)
    return softmax_cross_entropy(pt.dot(h2, p["w3"]) + p["b3"], labels)


def loss_w4(p, x, labels):
    h = x
    for i in range(1, common.W4_DEPTH + 1):
        h = pt.tanh(pt.dot(h, p[f"w{i}"]))
    return softmax_cross_entropy(pt.dot(h, p["w_out"]), labels)


LOSSES = dict(W1=loss_w1, W2=loss_w2, W3=loss_w3, W4=loss_w4)


class Runner:
    def __init__(self, w, inputs, params):
        self.init = params
        self.p = {k: pytensor.shared(v.copy(), name=k) for k, v in params.items()}
        a, b = (pytensor.shared(inputs[k], name=k) for k in w.inputs)
        loss = LOSSES[w.id](self.p, a, b)
        grads = pytensor.grad(loss, list(self.p.values()))
        lr = np.asarray(w.lr, dtype=w.dtype)  # a float64 lr would upcast f32 parameters
        updates = [(v, v - lr * g) for v, g in zip(self.p.values(), grads)]
        self.step = pytensor.function([], loss, updates=updates, mode=MODE)

    def reset(self):
        for k, v in self.init.items():
            self.p[k].set_value(v.copy(), borrow=True)

    def run(self, n):
        first = loss = self.step()
        for _ in range(n - 1):
            loss = self.step()
        return float(first), float(loss)


def details(runner):
    """The linker in use and the BLAS ops in the compiled graph (Gemm, Dot22, ...)."""
    maker = runner.step.maker
    ops = {type(n.op).__name__ for n in maker.fgraph.apply_nodes}
    return dict(linker=type(maker.linker).__name__,
                blas_ops=sorted(o for o in ops if any(s in o for s in ("Gemm", "Dot", "Gemv", "Ger"))))


if __name__ == "__main__":
    common.run_peer(f"pytensor.{args.variant}", Runner, args,
                    f"pytensor {pytensor.__version__}, blas__ldflags {pytensor.config.blas__ldflags!r}",
                    details=details)

"""numpy with hand-written gradients, in the lecture's style: every buffer is a fresh
array, the update is in place (`w -= lr * dw`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

args = common.start()
import numpy as np  # noqa: E402


def softmax_cross_entropy(scores, labels):
    """Mean softmax cross-entropy over the batch and its gradient w.r.t. the scores."""
    n = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    loss = (np.log(total[:, 0]) - shifted[np.arange(n), labels]).mean()
    dscores = e / total
    dscores[np.arange(n), labels] -= 1
    dscores /= n
    return loss, dscores


def step_w1(p, x, y, lr):
    # the lecture's 20-line network, one iteration
    w1, w2 = p["w1"], p["w2"]
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    loss = np.square(y_pred - y).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    w1 -= lr * grad_w1
    w2 -= lr * grad_w2
    return loss


def step_w2(p, x, labels, lr):
    # the lecture's spiral classifier: ReLU layer, softmax, L2 on the weights only
    reg = common.W2_REG
    w1, b1, w2, b2 = p["w1"], p["b1"], p["w2"], p["b2"]
    hidden = np.maximum(0, x.dot(w1) + b1)
    scores = hidden.dot(w2) + b2
    data_loss, dscores = softmax_cross_entropy(scores, labels)
    loss = data_loss + 0.5 * reg * np.sum(w1 * w1) + 0.5 * reg * np.sum(w2 * w2)
    dw2 = hidden.T.dot(dscores) + reg * w2
    db2 = dscores.sum(axis=0)
    dhidden = dscores.dot(w2.T)
    dhidden[hidden <= 0] = 0
    dw1 = x.T.dot(dhidden) + reg * w1
    db1 = dhidden.sum(axis=0)
    w1 -= lr * dw1
    b1 -= lr * db1
    w2 -= lr * dw2
    b2 -= lr * db2
    return loss


def step_w3(p, x, labels, lr):
    w1, b1, w2, b2, w3, b3 = (p[k] for k in ("w1", "b1", "w2", "b2", "w3", "b3"))
    h1 = np.maximum(0, x.dot(w1) + b1)
    h2 = np.maximum(0, h1.dot(w2) + b2)
    loss, ds = softmax_cross_entropy(h2.dot(w3) + b3, labels)
    dw3, db3 = h2.T.dot(ds), ds.sum(axis=0)
    dh2 = ds.dot(w3.T) * (h2 > 0)
    dw2, db2 = h1.T.dot(dh2), dh2.sum(axis=0)
    dh1 = dh2.dot(w2.T) * (h1 > 0)
    dw1, db1 = x.T.dot(dh1), dh1.sum(axis=0)
    for w, g in ((w1, dw1), (b1, db1), (w2, dw2), (b2, db2), (w3, dw3), (b3, db3)):
        w -= lr * g
    return loss


def step_w4(p, x, labels, lr):
    ws = [p[f"w{i}"] for i in range(1, common.W4_DEPTH + 1)]
    w_out = p["w_out"]
    hs = [x]
    for w in ws:
        hs.append(np.tanh(hs[-1].dot(w)))
    loss, ds = softmax_cross_entropy(hs[-1].dot(w_out), labels)
    grads = [None] * len(ws)
    dw_out = hs[-1].T.dot(ds)
    dh = ds.dot(w_out.T)
    for i in reversed(range(len(ws))):
        dpre = dh * (1 - hs[i + 1] * hs[i + 1])
        grads[i] = hs[i].T.dot(dpre)
        if i > 0:
            dh = dpre.dot(ws[i].T)
    w_out -= lr * dw_out
    for w, g in zip(ws, grads):
        w -= lr * g
    return loss


STEPS = dict(W1=step_w1, W2=step_w2, W3=step_w3, W4=step_w4)


class Runner:
    def __init__(self, w, inputs, params):
        self.step = STEPS[w.id]
        self.a, self.b = (inputs[k] for k in w.inputs)
        self.init = params
        # numpy 2 keeps a Python float "weak": an f32 array times lr stays f32
        self.lr = w.lr

    def reset(self):
        self.p = {k: v.copy() for k, v in self.init.items()}

    def run(self, n):
        first = self.step(self.p, self.a, self.b, self.lr)
        loss = first
        for _ in range(n - 1):
            loss = self.step(self.p, self.a, self.b, self.lr)
        return first, loss


def blas():
    from threadpoolctl import threadpool_info

    return dict(blas=[f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
                      for i in threadpool_info() if i.get("user_api") == "blas"])


if __name__ == "__main__":
    common.run_peer("numpy", Runner, args, f"numpy {np.__version__}", details=lambda _: blas())

"""PyTorch, two variants:
  eager    autograd (`loss.backward()`), then `p.sub_(p.grad, alpha=lr)` under no_grad;
  compile  `torch.compile` (inductor, fullgraph) of the whole functional step:
           `torch.func.grad_and_value` of the loss, then the update."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

args = common.start(variants=["eager", "compile"])
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)


def loss_w1(p, x, y):
    h = torch.sigmoid(x @ p["w1"])
    return torch.sum((h @ p["w2"] - y) ** 2)


def loss_w2(p, x, labels):
    hidden = torch.relu(x @ p["w1"] + p["b1"])
    scores = hidden @ p["w2"] + p["b2"]
    l2 = torch.sum(p["w1"] ** 2) + torch.sum(p["w2"] ** 2)
    return F.cross_entropy(scores, labels) + 0.5 * common.W2_REG * l2


def loss_w3(p, x, labels):
    h1 = torch.relu(x @ p["w1"] + p["b1"])
    h2 = torch.relu(h1 @ p["w2"] + p["b2"])
    return F.cross_entropy(h2 @ p["w3"] + p["b3"], labels)


def loss_w4(p, x, labels):
    h = x
    for i in range(1, common.W4_DEPTH + 1):
        h = torch.tanh(h @ p[f"w{i}"])
    return F.cross_entropy(h @ p["w_out"], labels)


LOSSES = dict(W1=loss_w1, W2=loss_w2, W3=loss_w3, W4=loss_w4)


class Eager:
    def __init__(self, w, inputs, params):
        self.loss_fn, self.lr = LOSSES[w.id], w.lr
        self.a, self.b = (torch.from_numpy(inputs[k]) for k in w.inputs)
        self.init = params

    def reset(self):
        self.p = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in self.init.items()}

    def step(self):
        loss = self.loss_fn(self.p, self.a, self.b)
        loss.backward()
        with torch.no_grad():
            for t in self.p.values():
                t.sub_(t.grad, alpha=self.lr)
                t.grad = None
        return loss.detach()

    def run(self, n):
        first = loss = self.step()
        for _ in range(n - 1):
            loss = self.step()
        return first.item(), loss.item()


class Compiled:
    def __init__(self, w, inputs, params):
        grad_and_value = torch.func.grad_and_value(LOSSES[w.id])
        lr = w.lr

        def step(p, a, b):
            g, loss = grad_and_value(p, a, b)
            return loss, {k: p[k] - lr * g[k] for k in p}

        self.step = torch.compile(step, fullgraph=True, dynamic=False)
        self.a, self.b = (torch.from_numpy(inputs[k]) for k in w.inputs)
        self.init = params

    def reset(self):
        self.p = {k: torch.from_numpy(v.copy()) for k, v in self.init.items()}

    def run(self, n):
        p = self.p
        first, p = self.step(p, self.a, self.b)
        loss = first
        for _ in range(n - 1):
            loss, p = self.step(p, self.a, self.b)
        self.p = p
        return first.item(), loss.item()


if __name__ == "__main__":
    runner = dict(eager=Eager, compile=Compiled)[args.variant]
    common.run_peer(f"torch.{args.variant}", runner, args,
                    f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")

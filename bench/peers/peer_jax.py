"""JAX: one `jax.jit` of the whole step (value_and_grad of the loss, then the SGD update),
parameters donated to the step, `block_until_ready` before the clock stops."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

args = common.start()
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_enable_x64", True)  # W1 and W2 are f64; f32 arrays stay f32


def softmax_cross_entropy(scores, labels):
    picked = jnp.take_along_axis(scores, labels[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(scores, axis=1) - picked)


def loss_w1(p, x, y):
    h = jax.nn.sigmoid(x @ p["w1"])
    return jnp.sum((h @ p["w2"] - y) ** 2)


def loss_w2(p, x, labels):
    hidden = jax.nn.relu(x @ p["w1"] + p["b1"])
    scores = hidden @ p["w2"] + p["b2"]
    l2 = jnp.sum(p["w1"] ** 2) + jnp.sum(p["w2"] ** 2)
    return softmax_cross_entropy(scores, labels) + 0.5 * common.W2_REG * l2


def loss_w3(p, x, labels):
    h1 = jax.nn.relu(x @ p["w1"] + p["b1"])
    h2 = jax.nn.relu(h1 @ p["w2"] + p["b2"])
    return softmax_cross_entropy(h2 @ p["w3"] + p["b3"], labels)


def loss_w4(p, x, labels):
    h = x
    for i in range(1, common.W4_DEPTH + 1):
        h = jnp.tanh(h @ p[f"w{i}"])
    return softmax_cross_entropy(h @ p["w_out"], labels)


LOSSES = dict(W1=loss_w1, W2=loss_w2, W3=loss_w3, W4=loss_w4)


class Runner:
    def __init__(self, w, inputs, params):
        loss_fn, lr = LOSSES[w.id], w.lr

        def step(p, a, b):
            loss, g = jax.value_and_grad(loss_fn)(p, a, b)
            return loss, jax.tree_util.tree_map(lambda v, dv: v - lr * dv, p, g)

        self.step = jax.jit(step, donate_argnums=0)
        self.a, self.b = (jnp.asarray(inputs[k]) for k in w.inputs)
        self.init = params

    def reset(self):
        self.p = {k: jnp.asarray(v.copy()) for k, v in self.init.items()}
        jax.block_until_ready(self.p)

    def run(self, n):
        p = self.p
        first, p = self.step(p, self.a, self.b)
        loss = first
        for _ in range(n - 1):
            loss, p = self.step(p, self.a, self.b)
        jax.block_until_ready(p)
        self.p = p
        return float(first), float(loss)


if __name__ == "__main__":
    common.run_peer("jax.jit", Runner, args, f"jax {jax.__version__}")

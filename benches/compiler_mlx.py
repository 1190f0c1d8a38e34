"""Python MLX on the graphs of benches/compiler.exs, plain and mx.compile'd, and JAX jit.

A line server (driven by benches/compiler.exs through a port): each input line
`<graph> <plain|compiled|jax> <iterations>` runs that many calls (each evaluated) and
answers with the µs per call, or `-1` where that kind is not installed (JAX). Graphs: `chain` (200 ops: 50 x dot, multiply, add, tanh on 32x32)
and `block` (a transformer block, d=768, seq=128, 12 heads). Run with OpenBLAS preloaded,
as Emily's NIF links it.
"""
import math
import sys
import time

import mlx.core as mx

STEPS = 50  # 4 ops per step: dot, multiply, add, tanh


def chain(x, w):
    for _ in range(STEPS):
        x = mx.tanh((x @ w) * 0.5 + x)
    return x


def block(x, wq, wk, wv, wo, w1, w2, g1, b1, g2, b2):
    s, d = x.shape
    heads = 12
    dh = d // heads

    def ln(t, g, b):
        mean = mx.mean(t, axis=-1, keepdims=True)
        var = mx.var(t, axis=-1, keepdims=True)
        return (t - mean) * mx.rsqrt(var + 1e-5) * g + b

    def split(t):
        return t.reshape(s, heads, dh).transpose(1, 0, 2)

    h = ln(x, g1, b1)
    q, k, v = split(h @ wq), split(h @ wk), split(h @ wv)
    scores = (q @ k.transpose(0, 2, 1)) / math.sqrt(dh)
    scores = scores - mx.max(scores, axis=-1, keepdims=True)
    e = mx.exp(scores)
    a = e / mx.sum(e, axis=-1, keepdims=True)
    att = (a @ v).transpose(1, 0, 2).reshape(s, d)
    x = x + att @ wo
    h = ln(x, g2, b2)
    u = h @ w1
    u = 0.5 * u * (1 + mx.erf(u / math.sqrt(2)))
    return x + u @ w2


def jax_graphs(chain_args, block_args):
    """The same graphs in jax.numpy, jit-compiled (XLA on the CPU: what EXLA runs)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    def jchain(x, w):
        for _ in range(STEPS):
            x = jnp.tanh((x @ w) * 0.5 + x)
        return x

    def jblock(x, wq, wk, wv, wo, w1, w2, g1, b1, g2, b2):
        s, d = x.shape
        heads = 12
        dh = d // heads

        def ln(t, g, b):
            mean = jnp.mean(t, axis=-1, keepdims=True)
            var = jnp.var(t, axis=-1, keepdims=True)
            return (t - mean) * jax.lax.rsqrt(var + 1e-5) * g + b

        def split(t):
            return t.reshape(s, heads, dh).transpose(1, 0, 2)

        h = ln(x, g1, b1)
        q, k, v = split(h @ wq), split(h @ wk), split(h @ wv)
        scores = (q @ k.transpose(0, 2, 1)) / math.sqrt(dh)
        a = jax.nn.softmax(scores, axis=-1)
        att = (a @ v).transpose(1, 0, 2).reshape(s, d)
        x = x + att @ wo
        h = ln(x, g2, b2)
        u = h @ w1
        u = 0.5 * u * (1 + jax.lax.erf(u / math.sqrt(2)))
        return x + u @ w2

    def to_jax(args):
        return [jnp.asarray(np.array(a)) for a in args]

    return {
        ("chain", "jax"): (jax.jit(jchain), to_jax(chain_args)),
        ("block", "jax"): (jax.jit(jblock), to_jax(block_args)),
    }


def rand(shape, seed):
    n = 1
    for d in shape:
        n *= d
    v = [math.sin(i * 12.9898 + seed * 78.233) * 0.999 for i in range(n)]
    return mx.array(v, dtype=mx.float32).reshape(shape)


def inputs():
    n = 32
    chain_args = [rand((n, n), 1), rand((n, n), 2) * (1.0 / n)]
    d, s = 768, 128
    sc = 1.0 / math.sqrt(d)
    block_args = [rand((s, d), 1)]
    block_args += [rand((d, d), k) * sc for k in range(2, 6)]
    block_args += [rand((d, 4 * d), 6) * sc, rand((4 * d, d), 7) * (0.5 * sc)]
    block_args += [rand((d,), 8) + 1, rand((d,), 9), rand((d,), 10) + 1, rand((d,), 11)]
    mx.eval(chain_args, block_args)
    fns = {
        ("chain", "plain"): (chain, chain_args),
        ("chain", "compiled"): (mx.compile(chain), chain_args),
        ("block", "plain"): (block, block_args),
        ("block", "compiled"): (mx.compile(block), block_args),
    }
    try:
        fns.update(jax_graphs(chain_args, block_args))
    except ImportError:
        pass
    return fns


def ready(out):
    if isinstance(out, mx.array):
        mx.eval(out)
    else:
        out.block_until_ready()


def main():
    fns = inputs()
    for line in sys.stdin:
        graph, kind, iters = line.split()
        if (graph, kind) not in fns:
            print("-1", flush=True)
            continue
        f, args = fns[(graph, kind)]
        iters = int(iters)
        t0 = time.perf_counter()
        for _ in range(iters):
            ready(f(*args))
        us = (time.perf_counter() - t0) / iters * 1e6
        print(f"{us:.3f}", flush=True)


if __name__ == "__main__":
    main()

"""The rows of benches/cpu_kernels.exs for one peer (argv[1]: jax or torch), in its own process.

Prints one line per row: "<name> <best ms>". Inputs are the same as the Elixir side's:
1M f32 values over each op's range (pow: x over [0.01, 100] to the power of y over [-3, 3]);
softmax, sum and max over the last axis of 128 x 32000 f32.
"""
import sys
import time

import numpy as np

N = 1_000_000
RANGES = {
    "exp": (-10, 10), "expm1": (-10, 10), "log": (0.01, 100), "log1p": (0, 100),
    "sin": (-10, 10), "cos": (-10, 10), "tanh": (-10, 10), "sigmoid": (-10, 10),
    "erf": (-5, 5), "erf_inv": (-0.999, 0.999), "sqrt": (0, 100), "rsqrt": (0.01, 100), "gelu": (-5, 5), "pow": (0.01, 100),
}


def inputs(op):
    lo, hi = RANGES[op]
    return np.linspace(lo, hi, N, dtype=np.float32)


def best_ms(fn, reps=20, rounds=5):
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps * 1000)
    return best


def pow_inputs():
    return inputs("pow"), np.linspace(-3, 3, N, dtype=np.float32)


def softmax_input():
    rng = np.random.default_rng(0)
    return rng.standard_normal((128, 32000), dtype=np.float32)


def jax_rows():
    import jax
    import jax.numpy as jnp

    fns = {
        "exp": jnp.exp, "expm1": jnp.expm1, "log": jnp.log, "log1p": jnp.log1p,
        "sin": jnp.sin, "cos": jnp.cos, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
        "erf": jax.scipy.special.erf, "erf_inv": jax.scipy.special.erfinv, "sqrt": jnp.sqrt, "rsqrt": jax.lax.rsqrt,
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    }
    for op, f in fns.items():
        g = jax.jit(f)
        x = jnp.asarray(inputs(op))
        yield op, best_ms(lambda: g(x).block_until_ready())
    pw = jax.jit(jnp.power)
    x, y = (jnp.asarray(v) for v in pow_inputs())
    yield "pow", best_ms(lambda: pw(x, y).block_until_ready())
    x = jnp.asarray(softmax_input())
    for name, f in [("softmax", lambda x: jax.nn.softmax(x, axis=-1)),
                    ("sum_last", lambda x: x.sum(axis=-1)), ("max_last", lambda x: x.max(axis=-1))]:
        g = jax.jit(f)
        yield name, best_ms(lambda: g(x).block_until_ready(), reps=5)


def torch_rows():
    import torch

    fns = {
        "exp": torch.exp, "expm1": torch.expm1, "log": torch.log, "log1p": torch.log1p,
        "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
        "erf": torch.erf, "erf_inv": torch.erfinv, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
        "gelu": torch.nn.functional.gelu,
    }
    with torch.no_grad():
        for op, f in fns.items():
            x = torch.from_numpy(inputs(op))
            yield op, best_ms(lambda: f(x))
        x, y = (torch.from_numpy(v) for v in pow_inputs())
        yield "pow", best_ms(lambda: torch.pow(x, y))
        x = torch.from_numpy(softmax_input())
        yield "softmax", best_ms(lambda: torch.softmax(x, dim=-1), reps=5)
        yield "sum_last", best_ms(lambda: x.sum(dim=-1), reps=5)
        yield "max_last", best_ms(lambda: x.amax(dim=-1), reps=5)


if __name__ == "__main__":
    rows = jax_rows() if sys.argv[1] == "jax" else torch_rows()
    for name, ms in rows:
        print(name, ms, flush=True)

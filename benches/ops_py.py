"""Python side of benches/ops.exs: the same measurements with Python MLX or numpy.

    python benches/ops_py.py mlx     # round trip, graph build, matmul (mlx.core)
    python benches/ops_py.py numpy   # matmul only

Prints one `name value` line per figure (roundtrip_us, build_us, matmul_<n> in GFLOP/s). Run by benches/ops.exs, each library in its own process (two BLAS
libraries in one process interfere; see benches/README.md).
"""
import statistics
import sys
import time

SIZES = [256, 512, 1024, 2048]


def per_op_us(fn, iters, batches=7):
    """Median over batches of the mean time of one call, in µs."""
    fn()
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        out.append((time.perf_counter() - t0) / iters * 1e6)
    return statistics.median(out)


def reps_for(n):
    return max(3, int(2e10 / (2 * n**3)))


def gflops(run, n):
    run()  # warm up
    reps = reps_for(n)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n**3 / best / 1e9


def bench_mlx():
    import mlx.core as mx
    import numpy as np

    mx.set_default_device(mx.cpu)
    a = mx.array(np.arange(1000, dtype=np.float32))
    b = mx.array(np.ones(1000, dtype=np.float32))
    mx.eval(a, b)

    def roundtrip():
        c = mx.add(a, b)
        mx.eval(c)
        np.asarray(c)

    def build():
        mx.add(a, b)

    res = {
        "roundtrip_us": per_op_us(roundtrip, 500),
        "build_us": per_op_us(build, 20000),
    }
    rng = np.random.default_rng(0)
    for n in SIZES:
        x = mx.array(rng.standard_normal((n, n), dtype=np.float32))
        y = mx.array(rng.standard_normal((n, n), dtype=np.float32))
        mx.eval(x, y)
        res[f"matmul_{n}"] = gflops(lambda: mx.eval(mx.matmul(x, y)), n)
    return res


def bench_numpy():
    import numpy as np

    rng = np.random.default_rng(0)
    res = {}
    for n in SIZES:
        x = rng.standard_normal((n, n), dtype=np.float32)
        y = rng.standard_normal((n, n), dtype=np.float32)
        res[f"matmul_{n}"] = gflops(lambda: x @ y, n)
    return res


if __name__ == "__main__":
    which = sys.argv[1]
    for k, v in (bench_mlx() if which == "mlx" else bench_numpy()).items():
        print(k, v)

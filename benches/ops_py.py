"""Python side of benches/ops.exs: the same measurements with Python MLX or numpy.

    python benches/ops_py.py mlx     # serves: roundtrip, build, matmul <n>
    python benches/ops_py.py numpy   # serves: matmul <n>

Reads one measurement name per line on stdin and answers one number per line (µs for
roundtrip/build, GFLOP/s for matmul), so that benches/ops.exs can interleave its rounds with
Emily's. Each library runs in its own process (two BLAS libraries in one process interfere).
"""
import statistics
import sys
import time


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


def gflops(run, n):
    """Best of 3 batches, in GFLOP/s."""
    run()
    reps = max(3, int(2e10 / (2 * n**3)))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n**3 / best / 1e9


def mlx_bench():
    import mlx.core as mx
    import numpy as np

    mx.set_default_device(mx.cpu)
    a = mx.array(np.arange(1000, dtype=np.float32))
    b = mx.array(np.ones(1000, dtype=np.float32))
    mx.eval(a, b)
    rng = np.random.default_rng(0)

    def roundtrip():
        c = mx.add(a, b)
        mx.eval(c)
        np.asarray(c)

    def build():
        mx.add(a, b)

    def matmul(n):
        x = mx.array(rng.standard_normal((n, n), dtype=np.float32))
        y = mx.array(rng.standard_normal((n, n), dtype=np.float32))
        mx.eval(x, y)
        return gflops(lambda: mx.eval(mx.matmul(x, y)), n)

    return {
        "roundtrip": lambda: per_op_us(roundtrip, 500),
        "build": lambda: per_op_us(build, 20000),
        "matmul": matmul,
    }


def numpy_bench():
    import numpy as np

    rng = np.random.default_rng(0)

    def matmul(n):
        x = rng.standard_normal((n, n), dtype=np.float32)
        y = rng.standard_normal((n, n), dtype=np.float32)
        return gflops(lambda: x @ y, n)

    return {"matmul": matmul}


if __name__ == "__main__":
    bench = mlx_bench() if sys.argv[1] == "mlx" else numpy_bench()
    print("ready", flush=True)
    for line in sys.stdin:
        name, *args = line.split()
        try:
            print(bench[name](*map(int, args)), flush=True)
        except KeyError:
            print("nan", flush=True)

"""PyTorch's figures for benches/gpu/README.md's table, on the same GPU in the same run as
benches/gpu/bench.exs (which runs first and leaves its transformer block's inputs and
output in BLOCK_DIR):

  (a) matmul TFLOP/s, bf16 and f32 (TF32 off, PyTorch's default), n = 4096 and 8192
  (b) round trip of one op: 1k-element f32 add on the GPU and .cpu(), in µs
  (c) .cpu() of 256 MiB f32 freshly computed on the GPU, GB/s
  (d) the same transformer block forward, eager, on Emily's weights; Emily's output is
      checked against PyTorch's, and both against a float64 reference for bf16

    python3 benches/gpu/bench_torch.py OUT.json [BLOCK_DIR]
"""
import json
import math
import os
import statistics
import sys
import time
import zlib

import torch
import torch.nn.functional as F

TF32 = os.environ.get("EMILY_BENCH_ONLY") == "tf32"  # only f32 matmuls, TF32 allowed
torch.backends.cuda.matmul.allow_tf32 = TF32
torch.backends.cudnn.allow_tf32 = TF32
QUICK = os.environ.get("EMILY_BENCH_QUICK") == "1"
dev = torch.device("cuda")


def sync():
    torch.cuda.synchronize()


def timed(fn, reps):
    out = []
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def matmul():
    res = {}
    kinds = (("f32", torch.float32),) if TF32 else (("bf16", torch.bfloat16), ("f32", torch.float32))
    suffix = "_tf32" if TF32 else ""
    for name, dt in kinds:
        for n in (256, 512) if QUICK else (4096, 8192):
            a = (torch.rand(n, n, device=dev) - 0.5).to(dt)
            b = (torch.rand(n, n, device=dev) - 0.5).to(dt)
            ref = a[:64].double() @ b.double()
            err = ((a[:64] @ b).double() - ref).norm() / ref.norm()
            per = 10

            def batch():
                for _ in range(per):
                    torch.matmul(a, b)

            batch()
            t = timed(batch, 5) / per
            tf = 2 * n**3 / t / 1e12
            print(f"matmul {name} {n}: {tf:.1f} TFLOP/s (rel err vs f64 {err:.2e})")
            res[f"matmul_{name}_{n}{suffix}"] = {"tflops": tf, "seconds": t, "rel_err": float(err)}
    return res


def round_trip():
    a = torch.rand(1000, device=dev)
    b = torch.rand(1000, device=dev)

    def per_op(f):
        for _ in range(200):
            f()
        xs = []
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(500):
                f()
            xs.append((time.perf_counter() - t) / 500 * 1e6)
        return statistics.median(xs)

    r = per_op(lambda: (a + b).cpu())

    def ev():
        a + b
        sync()

    e = per_op(ev)
    print(f"round trip (add 1k f32 + .cpu()): {r:.1f} µs; add + synchronize only: {e:.1f} µs")
    return {"round_trip_us": r, "eval_only_us": e}


def to_host():
    n = (1 if QUICK else 64) * 1024 * 1024
    x = torch.rand(n, device=dev)
    ts, t0s = [], []
    for _ in range(6):
        y = x + 0
        sync()
        t = time.perf_counter()
        h = y.cpu()
        t0 = time.perf_counter() - t
        zlib.crc32(h.numpy())
        ts.append(time.perf_counter() - t)
        t0s.append(t0)
        assert h.numel() == n
    t, t0 = statistics.median(ts), statistics.median(t0s)
    g = 4 * n / t / 1e9
    print(f".cpu() {4 * n >> 20} MiB f32 from GPU memory, then crc32 over it: {g:.2f} GB/s "
          f"({t * 1e3:.1f} ms; .cpu() alone {t0 * 1e3:.1f} ms)")
    return {"to_binary_gbs": g, "to_binary_ms": t * 1e3, "to_binary_only_ms": t0 * 1e3}


def load(d, dt, name, shape, tdt):
    with open(os.path.join(d, f"{dt}_{name}.bin"), "rb") as f:
        raw = bytearray(f.read())
    return torch.frombuffer(raw, dtype=tdt).reshape(shape).to(dev)


def block_fn(p, B, L, D, H):
    hd = D // H

    def heads(t):
        return t.view(B, L, H, hd).transpose(1, 2)

    def fwd():
        x = p["x"]
        h = F.layer_norm(x, (D,), p["g1"], p["b1"], 1e-5)
        q, k, v = heads(h @ p["wq"]), heads(h @ p["wk"]), heads(h @ p["wv"])
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / math.sqrt(hd))
        a = a.transpose(1, 2).reshape(B, L, D)
        x1 = x + a @ p["wo"]
        h2 = F.layer_norm(x1, (D,), p["g2"], p["b2"], 1e-5)
        m = F.gelu(h2 @ p["w1"] + p["c1"])
        return x1 + (m @ p["w2"] + p["c2"])

    return fwd


def transformer(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    B, L, D, H, Fd = meta["b"], meta["l"], meta["d"], meta["h"], meta["f"]
    shapes = {
        "x": (B, L, D), "g1": (D,), "b1": (D,), "wq": (D, D), "wk": (D, D), "wv": (D, D),
        "wo": (D, D), "g2": (D,), "b2": (D,), "w1": (D, Fd), "c1": (Fd,), "w2": (Fd, D),
        "c2": (D,), "out": (B, L, D),
    }
    res = {}
    for dt, tdt in (("bf16", torch.bfloat16), ("f32", torch.float32)):
        p = {k: load(d, dt, k, s, tdt) for k, s in shapes.items()}
        emily_out = p.pop("out")
        fwd = block_fn(p, B, L, D, H)
        with torch.no_grad():
            out = fwd()
            p64 = {k: v.double() for k, v in p.items()}
            ref = block_fn(p64, B, L, D, H)()
            err_e = float((emily_out.double() - ref).norm() / ref.norm())
            err_t = float((out.double() - ref).norm() / ref.norm())
            for _ in range(3):
                fwd()
            t = timed(fwd, 20)
        flops = 2 * B * L * (4 * D * D + 2 * D * Fd) + 4 * B * L * L * D
        print(
            f"transformer block {dt}: {t * 1e3:.3f} ms, {flops / t / 1e12:.1f} TFLOP/s; "
            f"rel err vs f64: Emily {err_e:.2e}, PyTorch {err_t:.2e}"
        )
        res[f"block_{dt}"] = {"ms": t * 1e3, "tflops": flops / t / 1e12,
                              "emily_rel_err": err_e, "torch_rel_err": err_t}
    return res


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "torch_gpu.json"
    block_dir = sys.argv[2] if len(sys.argv) > 2 else "/tmp/emily_block"
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}")
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    if os.path.exists(out) and os.path.getsize(out) > 0:
        res = {**json.load(open(out)), **res}
    res.update(matmul())
    if not TF32:
        res.update(round_trip())
        res.update(to_host())
        if os.path.exists(os.path.join(block_dir, "meta.json")):
            res.update(transformer(block_dir))
    json.dump(res, open(out, "w"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Prints Emily's and PyTorch's GPU figures side by side (markdown), from the JSON files of
benches/gpu/bench.exs and benches/gpu/bench_torch.py.

    python3 benches/gpu/table.py emily.json torch.json
"""
import json
import sys


def main():
    e = json.load(open(sys.argv[1]))
    t = json.load(open(sys.argv[2]))
    print(f"\nEmily (MLX {e.get('mlx')}, CUDA backend) and PyTorch {t.get('torch')} on {t.get('device')}, one run\n")
    print("| figure | Emily | PyTorch | Emily / PyTorch | better |")
    print("|---|---:|---:|---:|---|")

    def row(label, key, sub, unit, higher_better, digits=1):
        if key not in e or key not in t:
            return
        ev = e[key][sub] if sub else e[key]
        tv = t[key][sub] if sub else t[key]
        ratio = ev / tv if tv else float("nan")
        better = "higher" if higher_better else "lower"
        print(f"| {label} | {ev:.{digits}f} {unit} | {tv:.{digits}f} {unit} | {ratio:.2f} | {better} |")

    for dt in ("bf16", "f32"):
        for n in (4096, 8192, 256, 512):
            row(f"matmul {dt} {n}x{n}", f"matmul_{dt}_{n}", "tflops", "TFLOP/s", True)
    for n in (4096, 8192, 256, 512):
        row(f"matmul f32 {n}x{n}, TF32 allowed", f"matmul_f32_{n}_tf32", "tflops", "TFLOP/s", True)
    row("round trip: 1k f32 add + read back", "round_trip_us", None, "µs", False)
    row("1k f32 add + eval (no read)", "eval_only_us", None, "µs", False)
    row("to_binary / .cpu() of 256 MiB from GPU memory + crc32 over it", "to_binary_gbs", None, "GB/s", True, 2)
    row("to_binary / .cpu() call alone (256 MiB)", "to_binary_only_ms", None, "ms", False, 2)
    for dt in ("bf16", "f32"):
        row(f"transformer block forward {dt}", f"block_{dt}", "ms", "ms", False, 3)
        row(f"transformer block forward {dt}", f"block_{dt}", "tflops", "TFLOP/s", True)

    print("\nAccuracy (relative error, ||out - ref|| / ||ref||):\n")
    for k in sorted(e):
        if k.startswith("matmul_") and k in t:
            print(f"- {k}: Emily {e[k]['rel_err']:.2e} (vs the CPU in f32), PyTorch {t[k]['rel_err']:.2e} (vs f64)")
    for dt in ("bf16", "f32"):
        k = f"block_{dt}"
        if k in t:
            print(f"- {k}: Emily {t[k]['emily_rel_err']:.2e}, PyTorch {t[k]['torch_rel_err']:.2e} (both vs float64 on the same weights)")
        if k in e and "build_us" in e[k]:
            print(f"- {k}: Emily builds the block's graph (about 30 ops) in {e[k]['build_us']:.0f} µs of the forward")


if __name__ == "__main__":
    main()

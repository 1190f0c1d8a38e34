# Calls every op of Emily.Native with odd but well-typed arguments (as
# tests/elixir/core/native_fuzz_test.exs does) on one worker, printing each call before it
# is made and evaluated, so that a call that kills the VM (an illegal memory access in a
# GPU kernel poisons the CUDA context; a C++ exception escaping) is the last line printed.
# Run it in a VM of its own, with CUDA_LAUNCH_BLOCKING=1 so a kernel's fault is reported
# by the call that launched it:
#
#     EMILY_FUZZ_DEVICE=gpu CUDA_LAUNCH_BLOCKING=1 mix run benches/gpu/fuzz_trace.exs
alias Emily.Native, as: N

device = String.to_existing_atom(System.get_env("EMILY_FUZZ_DEVICE", "gpu"))
w = Emily.Worker.start(device)

t = fn values, shape, type ->
  Emily.from_binary(Emily.Case.bin(values, type), shape, type) |> then(&N.copy(&1, w))
end

base = %{
  A: t.([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], {:f, 32}),
  I: [0],
  F: 1.0,
  N: 0,
  B: false,
  D: :f32
}

base = Map.put(base, :AS, [base[:A], base[:A]])

odd = %{
  A: [
    N.scalar(2.0, :f32, w),
    N.zeros([0], :f32, w),
    N.zeros([0, 3], :s32, w),
    t.([1, 0, 1, 1, 0, 1], [3, 1, 2], :bool),
    t.([{1.0, 2.0}, {3.0, 4.0}], [2], {:c, 64}),
    t.([18_446_744_073_709_551_615], [1], {:u, 64}),
    t.([-128, 127, 0, 1, 2, 3], [2, 3], {:s, 8}),
    t.([:nan, :infinity, :neg_infinity, 0.0], [4], {:f, 16}),
    N.transpose(base[:A], [1, 0], w),
    N.broadcast_to(N.scalar(1.0, :bf16, w), [4, 5, 6], w)
  ],
  AS: [[], [N.scalar(1.0, :f32, w)], [base[:A], t.([1], [1], {:u, 8})]],
  I: [
    [],
    [-1],
    [-7],
    [1, -1],
    [2 ** 31 - 1],
    [-(2 ** 31)],
    [0, 0, 0, 0, 0, 0, 0, 0, 0],
    [100_000, 100_000],
    [1, 2, 3, 4, 5, 6, 7],
    [0, 1, 0]
  ],
  N: [-1, 7, -(2 ** 31), 2 ** 31 - 1, 2 ** 40, 100_000],
  F: [-0.0, 1.0e308, -1.0e308, 3.5, 4_000_000_000],
  B: [true, false],
  D: [:bool, :u8, :s32, :s64, :f16, :bf16, :f32, :f64, :c64]
}

only = System.get_env("EMILY_FUZZ_ONLY")
counts = :counters.new(2, [])

# Argument kinds as the maps above name them; an enum argument takes each of its values.
kind = fn
  {:enum, _name, values} -> {:E, values}
  k -> %{array: :A, arrays: :AS, ints: :I, int: :N, float: :F, bool: :B, dtype: :D}[k]
end

for {_family, name, args, _many, _cpu} <- N.op_signatures(),
    only == nil or to_string(name) == only do
  kinds = Enum.map(args, fn {_, k} -> kind.(k) end)

  base_of = fn
    {:E, [v | _]} -> v
    k -> base[k]
  end

  odd_of = fn
    {:E, values} -> values
    k -> odd[k]
  end

  base_args = Enum.map(kinds, base_of) ++ [w]

  cases =
    [{-1, nil}] ++ for({kind, i} <- Enum.with_index(kinds), v <- odd_of.(kind), do: {i, v})

  for {i, v} <- cases do
    args = if i < 0, do: base_args, else: List.replace_at(base_args, i, v)
    IO.puts(:stderr, "#{name} arg #{i} = #{inspect(v, limit: 4)}")

    try do
      for r <- List.wrap(apply(N, name, args)) do
        if N.nbytes(r) <= 16 * 1024 * 1024 do
          Emily.eval(r)
          Emily.to_binary(r)
        end
      end

      :counters.add(counts, 1, 1)
    rescue
      e in [ArgumentError, Emily.Error] ->
        :counters.add(counts, 2, 1)
        if e.message =~ ~r/cuda|illegal|CUDA/, do: IO.puts(:stderr, "  CUDA error: #{e.message}")
    end
  end
end

IO.puts(
  "fuzz trace done: #{:counters.get(counts, 1)} calls evaluated, #{:counters.get(counts, 2)} raised"
)

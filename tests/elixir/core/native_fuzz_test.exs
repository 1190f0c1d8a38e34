defmodule Emily.NativeFuzzTest do
  # Every NIF of Emily.Native called with malformed arguments: each call must raise (or,
  # for arguments that are well-typed but odd, raise or return a tensor that evaluates
  # or fails cleanly), and the VM must survive all of it.
  #
  # Heap corruption often shows only later: run it under glibc's checking allocator, e.g.
  #   LD_PRELOAD=/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 MALLOC_CHECK_=3 \
  #   FUZZ_TRACE=/tmp/fuzz.trace FUZZ_ROUNDS=1000 mix test <this file> --seed N
  # (glibc >= 2.34 ignores MALLOC_CHECK_ without that library preloaded).
  use ExUnit.Case, async: false
  alias Emily.Native, as: N

  @moduletag timeout: 600_000

  # Terms of the wrong type for any argument of any NIF.
  defp junk,
    do: [
      :junk,
      "bin",
      2 ** 70,
      -(2 ** 70),
      -1,
      1.5,
      {1, 2},
      [],
      [:a],
      %{},
      self(),
      make_ref(),
      nil
    ]

  # Junk terms that are a NIF's legitimate argument: eval/2 and async_eval/1 of no tensors,
  # binary_ptr/1 (a bridge diagnostic) of any binary, and
  # pressure_register/1 of any pid (not called here: it would take the VM's memory-pressure
  # requests away from Emily.Memory.Pressure).
  defp junk_accepted(:eval, []), do: :call
  defp junk_accepted(:async_eval, []), do: :call
  defp junk_accepted(:binary_ptr, bin) when is_binary(bin), do: :call
  defp junk_accepted(:pressure_register, pid) when is_pid(pid), do: :skip
  defp junk_accepted(_name, _junk), do: false

  defp w, do: Emily.Worker.current()
  defp t(values, shape, type), do: Emily.Case.t(values, shape, type)

  # A NIF's exception says what was wrong: rustler's "argument error" for a term of the
  # wrong type, else a message naming the NIF.
  defp assert_says_what(name, e) do
    message = Exception.message(e)

    assert message == "argument error" or message =~ to_string(name),
           "#{name} raised #{inspect(e.__struct__)} without naming itself: #{message}"
  end

  # Whether `fun` (a call of NIF `name`) raises, with a message that says what was wrong.
  defp raises?(name, fun) do
    fun.()
    false
  rescue
    e in [ArgumentError, Emily.Error] ->
      assert_says_what(name, e)
      true
  end

  test "the op NIFs are the ops declared in src/ops/*.ops, both ways" do
    native = N.op_signatures()
    assert length(native) > 200

    declared =
      for fam <- N.__families__(), op <- fam.ops do
        {fam.family, op.name, op.args, op.many, op.cpu}
      end

    assert native -- declared == [], "in the native library, not in src/ops/*.ops"
    assert declared -- native == [], "in src/ops/*.ops, not in the native library"

    for {_family, name, args, _many, _cpu} <- native do
      assert {name, length(args) + 1} in N.__nifs__(),
             "#{name}/#{length(args) + 1} is not exported"
    end
  end

  # {name, [kind]} of every op, kinds as the generators below take them.
  defp sigs do
    for {_family, name, args, _many, _cpu} <- N.op_signatures() do
      {name, Enum.map(args, fn {_, kind} -> kind(kind) end)}
    end
  end

  defp kind(:array), do: :A
  defp kind(:arrays), do: :AS
  defp kind(:ints), do: :I
  defp kind(:int), do: :N
  defp kind(:float), do: :F
  defp kind(:bool), do: :B
  defp kind(:dtype), do: :D
  defp kind({:enum, _name, values}), do: {:E, values}

  test "every NIF raises on junk arguments" do
    for {name, arity} <- N.__nifs__(), arity > 0, j <- junk() do
      args = List.duplicate(j, arity)

      case junk_accepted(name, j) do
        :call ->
          apply(N, name, args)

        :skip ->
          :ok

        false ->
          assert raises?(name, fn -> apply(N, name, args) end),
                 "#{name}/#{arity} accepted #{inspect(args, limit: 3)}"
      end
    end

    # the argument-less NIFs answer
    assert is_binary(N.mlx_version())
    assert is_map(N.memory_stats())
    assert N.clear_cache() == :ok
    assert N.reset_peak_memory() == :ok
  end

  # Well-formed arguments per kind (a starting point; some ops reject some of them).
  defp base(:A), do: t([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], {:f, 32})
  defp base(:AS), do: [base(:A), base(:A)]
  defp base(:I), do: [0]
  defp base(:F), do: 1.0
  defp base(:N), do: 0
  defp base(:B), do: false
  defp base(:D), do: :f32
  defp base({:E, [first | _]}), do: first

  # Terms of the wrong type for an argument of `kind`: the call must raise.
  defp wrong(:A), do: [:junk, 1, 1.0, "bin", [], nil, w(), make_ref(), [base(:A)]]
  defp wrong(:AS), do: [:junk, [:junk], [1], "bin", [base(:A), :junk], [w()], base(:A)]

  defp wrong(:I),
    do: [:junk, [2 ** 70], [-(2 ** 70)], [1.5], [:a], "bin", [base(:A)], 2 ** 70, [2 ** 40]]

  defp wrong(:F), do: [:junk, 2 ** 1100, "x", nil, []]
  defp wrong(:N), do: [2 ** 70, -(2 ** 70), 1.5, :junk, "1", []]
  defp wrong(:B), do: [:junk, 1, nil, "true", 0]
  defp wrong(:D), do: [:f99, :F32, "f32", 32, nil, :bool_, {:f, 32}]
  defp wrong({:E, [first | _]}), do: [:not_a_value, 0, 1, Atom.to_string(first), nil, [first]]

  # Well-typed but odd values: the call may raise or return, never crash.
  defp odd(:A) do
    other = Emily.Worker.start()
    # an unevaluated tensor of another worker's stream
    foreign = N.add(base(:A), base(:A), other)
    Emily.Worker.stop(other)

    [
      N.scalar(2.0, :f32, w()),
      N.zeros([0], :f32, w()),
      N.zeros([0, 3], :s32, w()),
      t([1, 0, 1, 1, 0, 1], [3, 1, 2], :bool),
      t([{1.0, 2.0}, {3.0, 4.0}], [2], {:c, 64}),
      t([18_446_744_073_709_551_615], [1], {:u, 64}),
      t([-128, 127, 0, 1, 2, 3], [2, 3], {:s, 8}),
      t([:nan, :infinity, :neg_infinity, 0.0], [4], {:f, 16}),
      t([1.0, 2.0], [2], {:f, 64}),
      N.transpose(base(:A), [1, 0], w()),
      N.broadcast_to(N.scalar(1.0, :bf16, w()), [4, 5, 6], w()),
      N.slice(t(Enum.to_list(0..9), [10], {:s, 64}), [9], [-11], [-3], w()),
      # empty and non-finite matrices (LAPACK's corner cases)
      N.zeros([0, 0], :f32, w()),
      t([:nan, 1.0, 1.0, :nan], [2, 2], {:f, 32}),
      t([:infinity, 0.0, 0.0, :neg_infinity], [1, 2, 2], {:f, 32}),
      # index-like values far out of range, both signs
      t([7, -9, 2_147_483_647, -2_147_483_648], [4], {:s, 32}),
      t([-1, 0, 1, 5, -6, 9], [3, 2], {:s, 64}),
      t([300, 0, 65_535], [3, 1], {:u, 16}),
      foreign
    ]
  end

  defp odd(:AS) do
    [
      [],
      [N.scalar(1.0, :f32, w())],
      [base(:A), t([1], [1], {:u, 8})],
      List.duplicate(t([1, 2], [2], {:s, 16}), 40),
      [t([5, -3], [2], {:s, 32}), t([-1, 1], [2], {:s, 32})],
      [t([2_147_483_647], [1], {:s, 32}), t([4_294_967_295], [1], {:u, 32})],
      [t([-2, 9, 0], [3, 1], {:s, 64})]
    ]
  end

  defp odd(:I) do
    [
      [],
      [-1],
      [-7],
      [1, -1],
      [2 ** 31],
      [2 ** 31 - 1],
      [-(2 ** 31)],
      [-(2 ** 31) - 1],
      [0, 0, 0, 0, 0, 0, 0, 0, 0],
      [2 ** 31 - 1, 2 ** 31 - 1],
      [100_000, 100_000],
      [1, 2, 3, 4, 5, 6, 7],
      [0, 1, 0]
    ]
  end

  defp odd(:N),
    do: [-1, 7, -(2 ** 31), 2 ** 31 - 1, 2 ** 31, 2 ** 40, -(2 ** 63), 2 ** 63 - 1, 100_000]

  defp odd(:F), do: [-0.0, 1.0e308, -1.0e308, 1.0e-320, 3.5, -7.25, 4_000_000_000]
  defp odd(:B), do: [true, false]

  defp odd(:D),
    do: [:bool, :u8, :u16, :u32, :u64, :s8, :s16, :s32, :s64, :f16, :bf16, :f32, :f64, :c64]

  defp odd({:E, values}), do: values

  # The result of a well-typed call: a tensor (or list), evaluated and read when small.
  defp settle(result) do
    for r <- List.wrap(result) do
      assert is_reference(r)
      assert is_list(N.shape(r))

      if N.nbytes(r) <= 16 * 1024 * 1024 do
        try do
          Emily.eval(r)
          bin = Emily.to_binary(r)
          assert byte_size(bin) == N.nbytes(r)
        rescue
          # a failure found when the graph runs, reported by the call that ran it
          e in [ArgumentError, Emily.Error] ->
            assert Exception.message(e) =~ ~r/\b(eval|to_binary)\b/, Exception.message(e)
        end
      end
    end
  end

  # FUZZ_TRACE=1 prints each call (tensors as dtype and shape) to stderr before it runs;
  # FUZZ_TRACE=<file> appends it to the file, written through before the call (stderr is
  # buffered: a crash may lose its last lines), so after a crash the last line names the
  # culprit.
  defp trace(name, args) do
    case System.get_env("FUZZ_TRACE") do
      nil -> :ok
      "1" -> IO.puts(:stderr, line(name, args))
      path -> File.write!(path, line(name, args) <> "\n", [:append])
    end
  end

  defp line(name, args), do: "#{name} " <> Enum.map_join(args, " ", &describe/1)

  defp describe(list) when is_list(list), do: "[" <> Enum.map_join(list, ", ", &describe/1) <> "]"

  defp describe(ref) when is_reference(ref) do
    "#{N.dtype(ref)}#{inspect(N.shape(ref))}"
  rescue
    _ -> "worker"
  end

  defp describe(term), do: inspect(term)

  # MLX's active-memory counter stays sane (a buffer freed twice or a size header overwritten
  # by an out-of-bounds write shows up here first).
  defp check_memory_counter(name) do
    active = N.memory_stats().active
    assert active < 2 ** 48, "#{name}: MLX's active memory counter reads #{active}"
  end

  defp call_settled(name, args) do
    trace(name, args)
    result = apply(N, name, args)
    settle(result)
    check_memory_counter(name)
  rescue
    e in [ArgumentError, Emily.Error] -> assert_says_what(name, e)
  end

  test "every op raises on a wrong-typed argument in any position" do
    for {name, kinds} <- sigs() do
      base_args = Enum.map(kinds, &base/1) ++ [w()]

      for {kind, i} <- Enum.with_index(kinds), bad <- wrong(kind) do
        args = List.replace_at(base_args, i, bad)

        assert raises?(name, fn -> apply(N, name, args) end),
               "#{name} accepted #{inspect(bad, limit: 3)} as #{inspect(kind)} argument #{i}"
      end

      # and a wrong worker argument
      assert raises?(name, fn -> apply(N, name, Enum.map(kinds, &base/1) ++ [base(:A)]) end)
      assert raises?(name, fn -> apply(N, name, Enum.map(kinds, &base/1) ++ [:cpu]) end)
    end
  end

  test "every op survives odd values in any position" do
    odd = Map.new([:A, :AS, :I, :N, :F, :B, :D], &{&1, odd(&1)})

    for {name, kinds} <- sigs() do
      base_args = Enum.map(kinds, &base/1) ++ [w()]
      call_settled(name, base_args)

      for {kind, i} <- Enum.with_index(kinds),
          value <- Map.get_lazy(odd, kind, fn -> odd(kind) end) do
        call_settled(name, List.replace_at(base_args, i, value))
      end
    end

    assert_alive()
  end

  # ExUnit seeds the random generator with the run's seed: `mix test --seed N` replays.
  test "every op survives random combinations of odd values" do
    odd = Map.new([:A, :AS, :I, :N, :F, :B, :D], &{&1, odd(&1) ++ [base(&1)]})

    # FUZZ_ROUNDS=n runs more rounds (200 by default).
    rounds = String.to_integer(System.get_env("FUZZ_ROUNDS") || "200")

    for _round <- 1..rounds, {name, kinds} <- sigs() do
      args =
        Enum.map(kinds, &Enum.random(Map.get_lazy(odd, &1, fn -> odd(&1) ++ [base(&1)] end))) ++
          [w()]

      call_settled(name, args)
    end

    assert_alive()
  end

  defp assert_alive do
    x = t([1.0, 2.0], [2], {:f, 32})
    assert Emily.Case.read(N.add(x, x, w())) == [2.0, 4.0]
  end
end

if Code.ensure_loaded?(Nx) do
  defmodule Emily.CompilerTest.Defs do
    import Nx.Defn

    defn(add_mul(x, y), do: {x + y, x * y})

    defn hooked(x) do
      y = hook(x * 2, :doubled)
      z = hook(y + 1, :plus_one)
      z * 10
    end

    defn hooked_in_while(x) do
      {x, _i} =
        while {x, i = 0}, i < 3 do
          {hook(x + 1, :step), i + 1}
        end

      x
    end

    defn with_runtime_call(x) do
      y = Nx.runtime_call(x, x, &__MODULE__.double_it/2)
      y + 1
    end

    def double_it(t, _opts), do: Nx.multiply(t, 2)

    defn(with_reduce_fun(x), do: Nx.reduce(x, 0, fn a, b -> a + b end))

    defn(iota_plus(x), do: x + Nx.iota({3}) + Nx.eye(3)[0])

    defn(identity(x), do: x)

    defn(const_only(_x), do: Nx.tensor([1.0, 2.0]) * 3)
  end

  defmodule Emily.CompilerTest do
    use ExUnit.Case, async: true
    @moduletag :nx

    import Emily.CompilerCase
    alias Emily.CompilerTest.Defs

    defp jit(fun, opts), do: Nx.Defn.jit(fun, [compiler: Emily.Compiler] ++ opts)

    describe "options" do
      test "unknown options raise" do
        assert_raise ArgumentError, ~r/unknown option\(s\) \[:client\]/, fn ->
          jit(&Defs.identity/1, client: :cuda).(Nx.tensor(1))
        end

        assert_raise ArgumentError, ~r/:lane must be one of/, fn ->
          jit(&Defs.identity/1, lane: :turbo).(Nx.tensor(1))
        end

        assert_raise ArgumentError, ~r/:native_fallback/, fn ->
          jit(&Defs.identity/1, native_fallback: :sometimes).(Nx.tensor(1))
        end

        assert_raise ArgumentError, ~r/:device/, fn ->
          jit(&Defs.identity/1, device: :tpu).(Nx.tensor(1))
        end

        assert_raise ArgumentError, ~r/:max_concurrency/, fn ->
          Emily.Compiler.__partitions_options__(max_concurrency: 0)
        end

        assert_raise ArgumentError, ~r/:debug_options/, fn ->
          jit(&Defs.identity/1, debug_options: [verbose: true]).(Nx.tensor(1))
        end
      end

      test "__to_backend__, __partitions_options__ and __shard_jit__" do
        device = Emily.Worker.default_device()
        assert Emily.Compiler.__to_backend__([]) == {Emily.Backend, device: device}
        assert Nx.Defn.to_backend(compiler: Emily.Compiler) == {Emily.Backend, device: device}

        assert [[max_concurrency: 1]] = Emily.Compiler.__partitions_options__(max_concurrency: 1)
        parts = Emily.Compiler.__partitions_options__(max_concurrency: 3, lane: :fused)
        assert length(parts) == 3
        workers = Enum.map(parts, & &1[:worker])
        assert Enum.all?(parts, &(&1[:lane] == :fused))
        ids = Enum.map(workers, &Emily.Worker.info(&1).id)
        assert length(Enum.uniq(ids)) == 3
        refute Emily.Worker.info(Emily.Worker.current()).id in ids

        assert_raise ArgumentError, ~r/does not support sharding/, fn ->
          Emily.Compiler.__shard_jit__(nil, nil, [], nil, [], [])
        end
      end

      test "app config picks the default lane" do
        x = Nx.tensor([1.0, 2.0])

        for lane <- lanes() do
          Application.put_env(:emily, :lane, lane)

          try do
            assert %{lane: ^lane} = Emily.Compiler.validate!([])
          after
            Application.delete_env(:emily, :lane)
          end
        end

        assert %{lane: :native} = Emily.Compiler.validate!([])

        assert_identical(
          on_lane(&Defs.add_mul/2, [x, x], :native),
          {Nx.tensor([2.0, 4.0]), Nx.tensor([1.0, 4.0])},
          "add_mul"
        )
      end
    end

    describe "native lane" do
      test "creation ops, constants-only outputs, and identity" do
        x = Nx.tensor([1.0, 2.0, 3.0])
        check_lanes(&Defs.iota_plus/1, [x])
        %{native: c} = check_lanes(&Defs.const_only/1, [x])
        assert Nx.to_flat_list(c) == [3.0, 6.0]
        %{native: i} = check_lanes(&Defs.identity/1, [x])
        assert Nx.to_flat_list(i) == [1.0, 2.0, 3.0]
      end

      test "captures once and replays: one program per function and worker" do
        x = Nx.tensor([1.0, 2.0])
        f = jit(&Defs.add_mul/2, debug_options: [stats: self()])

        for k <- 1..5 do
          {a, b} = f.(x, Nx.tensor([k * 1.0, 1.0]))
          assert Nx.to_flat_list(a) == [1.0 + k, 3.0]
          assert Nx.to_flat_list(b) == [k * 1.0, 2.0]
        end

        # The cache is keyed by function and argument templates: one capture at most here
        # (none if another test already compiled add_mul for these templates).
        captures = drain_stats()
        assert length(captures) <= 1

        # New shapes: a new program.
        f.(Nx.tensor([1.0, 2.0, 3.0]), Nx.tensor([1.0, 2.0, 3.0]))
        assert [%{nodes: 2, inputs: 2, outputs: 2}] = drain_stats()
      end

      test "Nx.Defn.compile keeps its program in the function and lowers per worker" do
        template = Nx.template({3}, {:f, 32})

        f =
          Nx.Defn.compile(&Defs.add_mul/2, [template, template],
            compiler: Emily.Compiler,
            debug_options: [stats: self()]
          )

        assert [%{worker: w1}] = drain_stats()
        x = Nx.tensor([1.0, 2.0, 3.0])

        for _ <- 1..3,
            do: assert_identical(f.(x, x), {Nx.multiply(x, 2), Nx.multiply(x, x)}, "compiled")

        assert drain_stats() == []

        device = Emily.Worker.default_device()
        other = Emily.Worker.start(device)

        r =
          Task.async(fn ->
            Process.put({Emily.Worker, device}, other)
            {a, _} = f.(x, x)
            {Nx.to_flat_list(a), Emily.Native.tensor_worker(a.data.ref)}
          end)
          |> Task.await()

        assert r == {[2.0, 4.0, 6.0], Emily.Worker.info(other).id}
        assert [%{worker: w2}] = drain_stats()
        assert w2 == Emily.Worker.info(other).id and w2 != w1
      end

      test "results are evaluated Emily tensors on the device" do
        {a, _} = jit(&Defs.add_mul/2, []).(Nx.tensor([1.0]), Nx.tensor([2.0]))
        device = Emily.Worker.default_device()
        assert %Emily.Backend{device: ^device} = a.data
        assert Emily.Native.program_foreign_pending([a.data.ref], Emily.Worker.start()) == []
      end
    end

    describe "hooks" do
      test "hooks run on every lane with the hooked values" do
        x = Nx.tensor([1.0, 2.0])
        me = self()

        for lane <- lanes() do
          hooks = %{
            doubled: &send(me, {lane, :doubled, &1}),
            plus_one: &send(me, {lane, :plus_one, &1})
          }

          r = jit(&Defs.hooked/1, lane: lane, hooks: hooks).(x)
          assert Nx.to_flat_list(r) == [30.0, 50.0]
          assert_received {^lane, :doubled, d}
          assert Nx.to_flat_list(d) == [2.0, 4.0]
          assert_received {^lane, :plus_one, p}
          assert Nx.to_flat_list(p) == [3.0, 5.0]
        end

        # Without callbacks hooks are transparent.
        assert Nx.to_flat_list(jit(&Defs.hooked/1, []).(x)) == [30.0, 50.0]
        refute_received _
      end

      test "a hook with a callback inside while falls back to the evaluator" do
        me = self()
        ref = attach_fallback()

        f =
          jit(&Defs.hooked_in_while/1,
            lane: :native,
            hooks: %{step: &send(me, {:step, Nx.to_number(&1)})}
          )

        assert Nx.to_number(f.(Nx.tensor(0.0))) == 3.0
        assert_received {:step, 1.0}
        assert_received {:step, 2.0}
        assert_received {:step, 3.0}
        assert_received {:fallback, ^ref, %{reason: reason, lane: :native}}
        assert reason =~ "hook"
        # Without the callback the loop is native.
        assert Nx.to_number(jit(&Defs.hooked_in_while/1, lane: :native).(Nx.tensor(0.0))) == 3.0
        refute_received {:fallback, ^ref, _}
      end
    end

    describe "fallbacks" do
      test "runtime_call runs on the evaluator lane, with telemetry" do
        ref = attach_fallback()

        for lane <- [:native, :fused] do
          r = jit(&Defs.with_runtime_call/1, lane: lane).(Nx.tensor([1.0, 2.0]))
          assert Nx.to_flat_list(r) == [3.0, 5.0]
          assert %Emily.Backend{} = r.data
        end

        # Emitted when the function is compiled; the decision is cached with the program.
        assert_received {:fallback, ^ref, %{reason: reason, lane: :native}}
        assert reason =~ "runtime_call"
        refute_received {:fallback, ^ref, _}

        f =
          Nx.Defn.compile(&Defs.with_runtime_call/1, [Nx.template({2}, {:f, 32})],
            compiler: Emily.Compiler,
            lane: :fused
          )

        assert Nx.to_flat_list(f.(Nx.tensor([1.0, 2.0]))) == [3.0, 5.0]
        assert_received {:fallback, ^ref, %{lane: :fused}}
      end

      test "reduce with an Elixir function falls back" do
        ref = attach_fallback()
        r = jit(&Defs.with_reduce_fun/1, lane: :native).(Nx.tensor([1, 2, 3]))
        assert Nx.to_number(r) == 6
        assert_received {:fallback, ^ref, %{reason: _}}
      end

      test "float64 on a GPU falls back (MLX's GPU has no float64); on the CPU it is native" do
        f = fn device ->
          jit(&Nx.exp(Nx.multiply(&1, 0.5)), device: device, native_fallback: :raise).(
            Nx.iota({4, 3}, type: {:f, 64}, backend: {Emily.Backend, device: device})
          )
        end

        assert f.(:cpu).type == {:f, 64}

        if Emily.Native.device_available(:gpu) do
          assert_raise ArgumentError, ~r/float64 on the GPU/, fn -> f.(:gpu) end
        end
      end

      test "native_fallback: :raise" do
        assert_raise ArgumentError,
                     ~r/cannot run this function on the native lane: .*runtime_call/,
                     fn ->
                       jit(&Defs.with_runtime_call/1, native_fallback: :raise).(Nx.tensor([1.0]))
                     end
      end
    end

    defp drain_stats(acc \\ []) do
      receive do
        {:emily_compiler, stats} -> drain_stats([stats | acc])
      after
        0 -> Enum.reverse(acc)
      end
    end

    def handle_fallback(_event, %{count: 1}, meta, {pid, ref}) do
      # Only this test's events (tests run concurrently).
      if self() == pid, do: send(pid, {:fallback, ref, meta})
    end

    defp attach_fallback do
      ref = make_ref()
      me = self()

      :telemetry.attach(
        "fallback-#{inspect(ref)}",
        [:emily, :compiler, :fallback],
        &__MODULE__.handle_fallback/4,
        {me, ref}
      )

      on_exit(fn -> :telemetry.detach("fallback-#{inspect(ref)}") end)
      ref
    end
  end

  defmodule Emily.CompilerGlobalTest do
    # Changes global defaults: not async.
    use ExUnit.Case, async: false
    @moduletag :nx

    import Nx.Defn

    defn(softplus(x), do: Nx.log1p(Nx.exp(x)))

    test "clear_cache forgets the programs of jit calls" do
      f = Nx.Defn.jit(&softplus/1, compiler: Emily.Compiler, debug_options: [stats: self()])
      x = Nx.tensor([1.0, 2.0])
      f.(x)
      f.(x)
      assert_received {:emily_compiler, %{nodes: _}}
      refute_received {:emily_compiler, _}
      assert Emily.Compiler.clear_cache() == :ok
      f.(x)
      assert_received {:emily_compiler, %{nodes: _}}
    end

    test "Nx.Defn.global_default_options(compiler: Emily.Compiler) runs every defn on MLX" do
      prev = Nx.Defn.global_default_options(compiler: Emily.Compiler)
      prev_backend = Nx.global_default_backend(Emily.Backend)

      try do
        x = Nx.tensor([0.0, 1.0, -1.0])
        r = softplus(x)
        assert %Emily.Backend{} = r.data
        expected = Enum.map([0.0, 1.0, -1.0], &:math.log(1 + :math.exp(&1)))
        for {g, w} <- Enum.zip(Nx.to_flat_list(r), expected), do: assert_in_delta(g, w, 1.0e-6)
        g = Nx.Defn.grad(x, fn x -> Nx.sum(softplus(x)) end)
        sig = Enum.map([0.0, 1.0, -1.0], &(1 / (1 + :math.exp(-&1))))
        for {a, b} <- Enum.zip(Nx.to_flat_list(g), sig), do: assert_in_delta(a, b, 1.0e-6)
      after
        Nx.Defn.global_default_options(prev)
        Nx.global_default_backend(prev_backend)
      end
    end
  end
end

if Code.ensure_loaded?(Nx) do
  defmodule Emily.BackendTest do
    @moduledoc """
    Emily.Backend's own behaviour: zero-copy to_binary, devices, fallback telemetry and
    modes, and the compile-time debug flags (recompiled here with each setting).
    """
    # Changes application config and recompiles modules: not async.
    use ExUnit.Case, async: false
    @moduletag :nx

    import ExUnit.CaptureLog

    setup do
      Nx.default_backend(Emily.Backend)
      :ok
    end

    describe "to_binary" do
      test "f8_e4m3fn bytes read back as they were written, -0.0 included" do
        # (0x7F and 0xFF are both NaN: they read back as one NaN)
        bytes = for b <- 0..254, into: <<>>, do: <<b>>
        t = Nx.from_binary(bytes, {:f8_e4m3fn, 8}, backend: Emily.Backend)
        assert Nx.to_binary(t) == bytes
        assert Nx.to_binary(Nx.backend_transfer(Nx.backend_copy(t, Nx.BinaryBackend))) == bytes
      end

      test "Nx.to_binary of an evaluated contiguous tensor aliases MLX's buffer (no copy)" do
        t = Nx.iota({256, 1024}, type: :f32)
        t = Nx.add(t, 1)
        # evaluate once; the first read lays out the result
        _ = Nx.to_binary(t)
        before = Emily.memory_stats()
        bin = Nx.to_binary(t)
        later = Emily.memory_stats()
        assert byte_size(bin) == 256 * 1024 * 4
        assert later.bytes_copied == before.bytes_copied
        assert later.aliases_created > before.aliases_created
        <<first::float-32-native, _::binary>> = bin
        assert first == 1.0
        # a limit is a sub-binary of the same buffer
        assert Nx.to_binary(t, limit: 3) == binary_part(bin, 0, 12)
      end

      test "a strided view is laid out once" do
        t = Nx.iota({64, 64}, type: :s32) |> Nx.transpose()
        before = Emily.memory_stats()
        bin = Nx.to_binary(t)
        later = Emily.memory_stats()
        assert later.bytes_copied - before.bytes_copied == byte_size(bin)
        assert Nx.to_flat_list(t) |> Enum.take(3) == [0, 64, 128]
      end
    end

    describe "integer division never traps" do
      test "quotient and remainder by zero and MIN by -1, every integer type" do
        for {t, min} <- [
              s8: -128,
              s16: -32768,
              s32: -2_147_483_648,
              s64: -9_223_372_036_854_775_808
            ] do
          a = Nx.tensor([7, -7, min, min], type: t)
          b = Nx.tensor([0, 0, -1, 0], type: t)
          assert Nx.to_flat_list(Nx.quotient(a, b)) == [0, 0, min, 0]
          assert Nx.to_flat_list(Nx.remainder(a, b)) == [7, -7, 0, min]

          assert Nx.to_flat_list(Nx.quotient(a, Nx.tensor(-2, type: t))) == [
                   -3,
                   3,
                   div(min, -2),
                   div(min, -2)
                 ]
        end

        for t <- [:u8, :u16, :u32, :u64] do
          a = Nx.tensor([7, 9], type: t)
          assert Nx.to_flat_list(Nx.quotient(a, Nx.tensor([0, 2], type: t))) == [0, 4]
          assert Nx.to_flat_list(Nx.remainder(a, Nx.tensor([0, 2], type: t))) == [7, 1]
        end
      end

      test "sign keeps NaN" do
        assert [nan, -1.0, 1.0, +0.0] =
                 Nx.to_flat_list(Nx.sign(Nx.tensor([:nan, :neg_infinity, 2.0, 0.0])))

        assert nan == :nan
      end
    end

    describe "devices" do
      test "default device is Emily.Worker.default_device/0 (the CPU unless configured) and tensors remember it" do
        t = Nx.tensor([1, 2, 3])
        device = Emily.Worker.default_device()
        assert %Emily.Backend{device: ^device} = t.data
        t = Nx.tensor([1, 2, 3], backend: {Emily.Backend, device: :cpu})
        assert %Emily.Backend{device: :cpu} = t.data
      end

      test "device: :gpu without a GPU raises a clear error" do
        if Emily.Native.device_available(:gpu) do
          t = Nx.tensor([1.0, 2.0], backend: {Emily.Backend, device: :gpu})
          assert %Emily.Backend{device: :gpu} = t.data
          assert Nx.to_flat_list(Nx.add(t, 1)) == [2.0, 3.0]
        else
          assert_raise ArgumentError, ~r/device: :gpu was requested but MLX has no GPU/, fn ->
            Nx.tensor([1, 2, 3], backend: {Emily.Backend, device: :gpu})
          end
        end
      end

      test "bad options raise" do
        assert_raise ArgumentError, ~r/:device must be :cpu or :gpu/, fn ->
          Nx.tensor([1], backend: {Emily.Backend, device: :tpu})
        end

        assert_raise ArgumentError, ~r/accepts only the :device option/, fn ->
          Nx.tensor([1], backend: {Emily.Backend, client: :host})
        end
      end

      test "backend_transfer and backend_copy between backends keep values" do
        t = Nx.tensor([[1.5, 2.5], [3.5, 4.5]])
        b = Nx.backend_transfer(t, Nx.BinaryBackend)
        assert %Nx.BinaryBackend{} = b.data
        e = Nx.backend_copy(b, Emily.Backend)
        assert %Emily.Backend{} = e.data
        assert Nx.to_binary(e) == Nx.to_binary(b)
        assert Nx.backend_deallocate(e) == :ok
      end

      test "pointers are not supported, as in Nx.BinaryBackend" do
        t = Nx.tensor([1, 2])

        assert_raise ArgumentError, ~r/does not support pointer/, fn ->
          Emily.Backend.to_pointer(t, [])
        end

        assert_raise ArgumentError, ~r/does not support pointer/, fn ->
          Emily.Backend.from_pointer(nil, {:s, 32}, {2}, [], [])
        end
      end

      test "real, imag and conjugate of real tensors" do
        t = Nx.tensor([1.5, -2.0])
        assert Nx.to_flat_list(Nx.real(t)) == [1.5, -2.0]
        assert Nx.to_flat_list(Nx.imag(t)) == [0.0, 0.0]
        c = Nx.conjugate(t)
        assert c.type == {:c, 64}
        assert Nx.to_flat_list(c) == [Complex.new(1.5, -0.0), Complex.new(-2.0, -0.0)]
        assert Nx.to_flat_list(Nx.imag(Nx.tensor([1, 2]))) == [0.0, 0.0]
      end

      test "{:c, 128} raises clearly" do
        assert_raise ArgumentError, ~r/\{:c, 128\} is not supported/, fn ->
          Nx.tensor([1.0], type: :c128)
        end
      end
    end

    describe "fallbacks" do
      setup do
        previous = Application.get_env(:emily, :fallback)
        Emily.Backend.Fallback.reset_warnings()

        on_exit(fn ->
          if previous,
            do: Application.put_env(:emily, :fallback, previous),
            else: Application.delete_env(:emily, :fallback)
        end)
      end

      def forward(event, measurements, meta, pid),
        do: send(pid, {:event, event, measurements, meta})

      defp attach(events) do
        test_pid = self()
        id = "fallback-test-#{inspect(make_ref())}"

        :telemetry.attach_many(
          id,
          events,
          &__MODULE__.forward/4,
          test_pid
        )

        on_exit(fn -> :telemetry.detach(id) end)
      end

      test "emit [:emily, :fallback, :start | :stop] with the op and return Emily tensors" do
        Application.put_env(:emily, :fallback, :silent)
        attach([[:emily, :fallback, :start], [:emily, :fallback, :stop]])
        t = Nx.tensor([[1, 2], [3, 4]])
        r = Nx.reduce(t, 0, [axes: [1]], &Nx.add/2)
        assert %Emily.Backend{} = r.data
        assert Nx.to_flat_list(r) == [3, 7]
        assert_received {:event, [:emily, :fallback, :start], _, %{op: :reduce}}
        assert_received {:event, [:emily, :fallback, :stop], %{duration: d}, %{op: :reduce}}
        assert d >= 0

        w = Nx.window_reduce(t, 0, {1, 2}, &Nx.max/2)
        assert Nx.to_flat_list(w) == [2, 4]
        assert_received {:event, [:emily, :fallback, :start], _, %{op: :window_reduce}}
      end

      test "native ops emit no fallback events" do
        Application.put_env(:emily, :fallback, :silent)
        attach([[:emily, :fallback, :start]])
        t = Nx.iota({3, 4}, type: :f32)
        _ = t |> Nx.sum(axes: [0]) |> Nx.window_max({2}) |> Nx.sort() |> Nx.to_binary()

        _ =
          Nx.conv(Nx.iota({1, 1, 5}, type: :f64), Nx.iota({1, 1, 2}, type: :f64))
          |> Nx.to_binary()

        refute_received {:event, [:emily, :fallback, :start], _, _}
      end

      test ":warn logs once per op" do
        Application.put_env(:emily, :fallback, :warn)
        t = Nx.tensor([1, 2, 3])

        log =
          capture_log(fn ->
            Nx.reduce(t, 0, &Nx.add/2)
            Nx.reduce(t, 0, &Nx.add/2)
          end)

        assert log =~ "reduce runs on Nx.BinaryBackend"
        assert length(String.split(log, "reduce runs on")) == 2

        log = capture_log(fn -> Nx.reduce(t, 0, &Nx.add/2) end)
        refute log =~ "runs on Nx.BinaryBackend"

        log = capture_log(fn -> Nx.window_reduce(t, 0, {2}, &Nx.add/2) end)
        assert log =~ "window_reduce runs on Nx.BinaryBackend"
      end

      test ":raise raises naming the op; :silent logs nothing" do
        Application.put_env(:emily, :fallback, :raise)

        assert_raise ArgumentError, ~r/reduce has no MLX implementation.*fallback: :raise/, fn ->
          Nx.reduce(Nx.tensor([1, 2]), 0, &Nx.add/2)
        end

        Application.put_env(:emily, :fallback, :silent)
        assert capture_log(fn -> Nx.reduce(Nx.tensor([1, 2]), 0, &Nx.add/2) end) == ""
      end
    end

    describe "debug flags (modules recompiled with each setting)" do
      @index "lib/emily/backend/index.ex"
      @lin_alg "lib/emily/backend/lin_alg.ex"
      @fast "lib/emily/fast.ex"

      # Recompiles the three modules with `flags`; returns %{module => BEAM binary}.
      defp recompile(flags) do
        for {k, v} <- flags, do: Application.put_env(:emily, k, v)
        Code.compiler_options(ignore_module_conflict: true)

        try do
          for f <- [@index, @lin_alg, @fast],
              {mod, bin} <- Code.compile_file(f),
              into: %{},
              do: {mod, bin}
        after
          Code.compiler_options(ignore_module_conflict: false)
        end
      end

      # {function, arity} of every function in a module's BEAM code that calls one of the
      # checks (check_bounds!/4, check_finite!/3), read from the disassembled code.
      defp check_callers(mod, bin) do
        {:beam_file, ^mod, _, _, _, code} = :beam_disasm.file(bin)

        callers =
          for {:function, name, arity, _, instrs} <- code,
              instr <- instrs,
              callee(instr) in [:check_bounds!, :check_finite!],
              uniq: true,
              do: {name, arity}

        Enum.sort(callers)
      end

      defp callee({call, _, {_m, f, _a}}) when call in [:call, :call_only], do: f
      defp callee({:call_last, _, {_m, f, _a}, _}), do: f

      defp callee({call, _, {:extfunc, _m, f, _a}}) when call in [:call_ext, :call_ext_only],
        do: f

      defp callee({:call_ext_last, _, {:extfunc, _m, f, _a}, _}), do: f
      defp callee(_), do: nil

      # The instructions of `name/arity` in a module's BEAM code.
      defp instructions(mod, bin, name, arity) do
        {:beam_file, ^mod, _, _, _, code} = :beam_disasm.file(bin)
        [instrs] = for {:function, ^name, ^arity, _, instrs} <- code, do: instrs
        instrs
      end

      defp compiled_default(mod) do
        {^mod, bin, _path} = :code.get_object_code(mod)
        bin
      end

      setup do
        on_exit(fn ->
          recompile(debug_bounds_check: false, debug_detect_nan_inf: false)
          Application.delete_env(:emily, :debug_bounds_check)
          Application.delete_env(:emily, :debug_detect_nan_inf)
        end)
      end

      test "off (the default): the compiled modules hold no check and no test of the flags" do
        # The BEAM files the build made (config without the flags): no function calls a
        # check, and the flags' readers return the constant false.
        for mod <- [Emily.Backend.Index, Emily.Backend.LinAlg, Emily.Fast] do
          assert check_callers(mod, compiled_default(mod)) == [], inspect(mod)
        end

        for {mod, reader} <- [
              {Emily.Backend.Index, :bounds_check?},
              {Emily.Backend.LinAlg, :nan_inf_check?}
            ] do
          code = instructions(mod, compiled_default(mod), reader, 0)
          assert {:move, {:atom, false}, {:x, 0}} in code, inspect(code)
          refute Enum.any?(code, &(is_tuple(&1) and elem(&1, 0) in [:test, :select_val]))
        end

        # The same sources compiled with the flags on: each checked op calls its check, so
        # the search above finds them where they are compiled in.
        on = recompile(debug_bounds_check: true, debug_detect_nan_inf: true)

        assert check_callers(Emily.Backend.Index, on[Emily.Backend.Index]) == [
                 # gather, take, take_along_axis; indexed/6 is indexed_add's and indexed_put's
                 gather: 4,
                 indexed: 6,
                 take: 6,
                 take_along_axis: 5
               ]

        assert check_callers(Emily.Backend.LinAlg, on[Emily.Backend.LinAlg]) == [dot: 7]
        # Emily.Fast's native/3 runs every fused kernel: RMS norm, layer norm, attention
        assert check_callers(Emily.Fast, on[Emily.Fast]) == [native: 3]

        # and off again, from source: nothing
        off = recompile(debug_bounds_check: false, debug_detect_nan_inf: false)
        for {mod, bin} <- off, do: assert(check_callers(mod, bin) == [], inspect(mod))
      end

      test "off (the default): bad indices do not raise" do
        recompile(debug_bounds_check: false, debug_detect_nan_inf: false)
        refute Emily.Backend.Index.bounds_check?()
        refute Emily.Backend.LinAlg.nan_inf_check?()

        t = Nx.tensor([1, 2, 3])
        # out-of-range indices are clamped for reads and dropped for writes (never
        # outside the array)
        assert Nx.to_flat_list(Nx.take(t, Nx.tensor([5, 1_000_000_000]))) == [3, 3]
        assert Nx.to_flat_list(Nx.gather(t, Nx.tensor([[-1], [1]]))) == [1, 2]
        assert Nx.to_flat_list(Nx.take_along_axis(t, Nx.tensor([7, -7, 1]), axis: 0)) == [3, 1, 2]
        added = Nx.indexed_add(t, Nx.tensor([[3], [1], [-1]]), Nx.tensor([10, 20, 30]))
        assert Nx.to_flat_list(added) == [1, 22, 3]
        put = Nx.indexed_put(t, Nx.tensor([[3], [0], [99]]), Nx.tensor([10, 20, 30]))
        assert Nx.to_flat_list(put) == [20, 2, 3]
        nan = Nx.tensor([[:nan, 1.0]])
        _ = Nx.dot(nan, Nx.tensor([[1.0], [1.0]])) |> Nx.to_binary()
      end

      test "debug_bounds_check: gather, take, take_along_axis, indexed_add, indexed_put raise" do
        recompile(debug_bounds_check: true)
        assert Emily.Backend.Index.bounds_check?()

        t = Nx.tensor([[1, 2, 3], [4, 5, 6]])

        assert_raise ArgumentError, ~r/gather: index out of bounds/, fn ->
          Nx.gather(t, Nx.tensor([[0, 3]]))
        end

        assert_raise ArgumentError, ~r/gather: index out of bounds/, fn ->
          Nx.gather(t, Nx.tensor([[-1, 0]]))
        end

        assert_raise ArgumentError, ~r/take: index out of bounds/, fn ->
          Nx.take(t, Nx.tensor([2]))
        end

        assert_raise ArgumentError, ~r/take_along_axis: index out of bounds/, fn ->
          Nx.take_along_axis(t, Nx.tensor([[0, 3, 0], [0, 0, 0]]), axis: 1)
        end

        assert_raise ArgumentError, ~r/indexed_add: index out of bounds/, fn ->
          Nx.indexed_add(t, Nx.tensor([[2, 0]]), Nx.tensor([1]))
        end

        assert_raise ArgumentError, ~r/indexed_put: index out of bounds/, fn ->
          Nx.indexed_put(t, Nx.tensor([[0, -1]]), Nx.tensor([1]))
        end

        # Emily.Compiler: the check reads values, which tracing cannot, so the function runs
        # on the evaluator lane, and raises there
        take = Nx.Defn.jit(&Nx.take/2, compiler: Emily.Compiler, lane: :native)

        assert_raise ArgumentError, ~r/take: index out of bounds/, fn ->
          take.(t, Nx.tensor([2]))
        end

        assert Nx.to_flat_list(take.(t, Nx.tensor([0]))) == [1, 2, 3]

        # in-range indices still work
        assert Nx.to_flat_list(Nx.take(t, Nx.tensor([1]))) == [4, 5, 6]
        assert Nx.to_flat_list(Nx.gather(t, Nx.tensor([[1, 2]]))) == [6]
      end

      test "debug_detect_nan_inf: dot, fast norms and attention raise on NaN/Inf" do
        recompile(debug_detect_nan_inf: true)
        assert Emily.Backend.LinAlg.nan_inf_check?()

        ok = Nx.tensor([[1.0, 2.0]])
        assert Nx.to_flat_list(Nx.dot(ok, Nx.tensor([[1.0], [1.0]]))) == [3.0]

        assert_raise ArgumentError, ~r/dot: result holds NaN or Inf/, fn ->
          Nx.dot(Nx.tensor([[:nan, 1.0]]), Nx.tensor([[1.0], [1.0]]))
        end

        assert_raise ArgumentError, ~r/dot: result holds NaN or Inf/, fn ->
          Nx.dot(Nx.tensor([[3.0e38, 3.0e38]]), Nx.tensor([[3.0e38], [3.0e38]]))
        end

        assert_raise ArgumentError, ~r/rms_norm: result holds NaN or Inf/, fn ->
          Emily.Fast.rms_norm(Nx.tensor([[:infinity, 1.0]]))
        end

        assert_raise ArgumentError, ~r/layer_norm: result holds NaN or Inf/, fn ->
          Emily.Fast.layer_norm(Nx.tensor([[:nan, 1.0]]))
        end

        q = Nx.broadcast(Nx.tensor(:nan), {1, 1, 2, 4})
        k = Nx.broadcast(1.0, {1, 1, 2, 4})

        # both variants: without a mask (and causal), and with one
        for opts <- [[], [causal: true], [mask: Nx.broadcast(0.0, {1, 1, 2, 2})]] do
          assert_raise ArgumentError,
                       ~r/scaled_dot_product_attention: result holds NaN or Inf/,
                       fn ->
                         Emily.Fast.scaled_dot_product_attention(q, k, k, opts)
                       end
        end

        ok_q = Nx.broadcast(1.0, {1, 1, 2, 4})

        fine =
          Emily.Fast.scaled_dot_product_attention(ok_q, k, k,
            mask: Nx.broadcast(0.0, {1, 1, 2, 2})
          )

        assert Nx.to_flat_list(fine) == List.duplicate(1.0, 8)

        assert Emily.Fast.rms_norm(Nx.tensor([[1.0, 1.0]])) |> Nx.to_flat_list() |> length() == 2
      end
    end
  end
end

if Code.ensure_loaded?(Nx) do
  defmodule Emily.CompilerCase do
    @moduledoc false
    # Runs a function on every lane and on Nx.Defn.Evaluator over Nx.BinaryBackend, and
    # compares the results.
    import ExUnit.Assertions

    @lanes [:evaluator, :native, :fused]

    def lanes, do: @lanes

    @doc "The reference: Nx.Defn.Evaluator over Nx.BinaryBackend, inputs copied there."
    def reference(fun, args) do
      args = Enum.map(args, &to_binary_backend/1)

      Nx.with_default_backend(Nx.BinaryBackend, fn ->
        Nx.Defn.jit_apply(fun, args, compiler: Nx.Defn.Evaluator)
      end)
      |> to_binary_backend()
    end

    @doc """
    Runs `fun` on `lane` (inputs as given), results copied to Nx.BinaryBackend. The native
    lanes must not fall back to the evaluator unless `native_fallback: :evaluator` is given.
    """
    def on_lane(fun, args, lane, opts \\ []) do
      opts = Keyword.put_new(opts, :native_fallback, :raise)

      Nx.Defn.jit_apply(fun, args, [compiler: Emily.Compiler, lane: lane] ++ opts)
      |> check_backend!()
      |> to_binary_backend()
    end

    @doc """
    Runs `fun` on every lane and on the reference. Asserts every lane is close to the
    reference (`atol`, `rtol`), and that the native lane is bit-identical to the evaluator
    lane (same MLX ops) unless `identical: false`. Returns the results by lane.
    """
    def check_lanes(fun, args, opts \\ []) do
      atol = Keyword.get(opts, :atol, 1.0e-5)
      rtol = Keyword.get(opts, :rtol, 1.0e-5)
      ref = Keyword.get_lazy(opts, :expected, fn -> reference(fun, args) end)
      lane_opts = Keyword.get(opts, :lane_opts, [])

      results = Map.new(@lanes, fn lane -> {lane, on_lane(fun, args, lane, lane_opts)} end)

      for {lane, res} <- results do
        assert_close(res, ref, atol, rtol, "lane #{lane} vs Nx.BinaryBackend")
      end

      if Keyword.get(opts, :identical, true) do
        assert_identical(results.native, results.evaluator, "native vs evaluator lane")
      end

      results
    end

    def assert_close(got, want, atol, rtol, what) do
      pairs = Enum.zip(flat(got), flat(want))
      assert length(flat(got)) == length(flat(want)), "#{what}: different number of outputs"

      for {g, w} <- pairs do
        assert g.vectorized_axes == w.vectorized_axes, "#{what}: vectorized axes differ"
        {g, w} = {Nx.devectorize(g), Nx.devectorize(w)}

        assert g.shape == w.shape and g.type == w.type,
               "#{what}: got #{inspect(g.type)}#{inspect(g.shape)}, want #{inspect(w.type)}#{inspect(w.shape)}"

        ok = Nx.all_close(g, w, atol: atol, rtol: rtol, equal_nan: true) |> Nx.to_number()

        assert ok == 1,
               "#{what}: not close (atol #{atol}, rtol #{rtol})\ngot:  #{inspect(g, limit: 20)}\nwant: #{inspect(w, limit: 20)}"
      end
    end

    def assert_identical(got, want, what) do
      for {g, w} <- Enum.zip(flat(got), flat(want)) do
        {g, w} = {Nx.devectorize(g), Nx.devectorize(w)}

        assert {g.type, g.shape, Nx.to_binary(g)} == {w.type, w.shape, Nx.to_binary(w)},
               "#{what}: not bit-identical\ngot:  #{inspect(g, limit: 20)}\nwant: #{inspect(w, limit: 20)}"
      end
    end

    defp flat(c), do: Nx.Defn.Composite.flatten_list([c])

    defp check_backend!(result) do
      for t <- flat(result) do
        assert %Nx.Tensor{data: %Emily.Backend{}} = t
      end

      result
    end

    def to_binary_backend(c) do
      Nx.Defn.Composite.traverse(c, fn
        %Nx.Tensor{data: %Nx.BinaryBackend{}} = t -> t
        %Nx.Tensor{} = t -> Nx.backend_copy(t, Nx.BinaryBackend)
        n when is_number(n) -> Nx.tensor(n, backend: Nx.BinaryBackend)
      end)
    end

    @doc "A deterministic tensor of `shape` with values in [-1, 1)."
    def rand(shape, type \\ {:f, 32}, seed \\ 0) do
      n = Tuple.product(shape)

      for(i <- 0..(n - 1)//1, do: :math.sin(i * 12.9898 + seed * 78.233) * 0.999)
      |> Nx.tensor(type: type, backend: Nx.BinaryBackend)
      |> Nx.reshape(shape)
    end
  end
end

if Code.ensure_loaded?(Nx) do
  defmodule Emily.CompilerServingTest do
    use ExUnit.Case, async: true
    @moduletag :nx

    import Nx.Defn
    import Emily.CompilerCase

    defn predict(x, w, b) do
      h = Nx.tanh(Nx.dot(x, w) + b)
      m = Nx.reduce_max(h, axes: [1], keep_axes: true)
      e = Nx.exp(h - m)
      e / Nx.sum(e, axes: [1], keep_axes: true)
    end

    @w rand({6, 4}, {:f, 32}, 21)
    @b rand({4}, {:f, 32}, 22)

    defp expected(x) do
      reference(&predict/3, [x, @w, @b])
    end

    defp serving(opts) do
      w = @w
      b = @b

      Nx.Serving.new(
        fn defn_opts -> Nx.Defn.jit(&predict(&1, w, b), defn_opts) end,
        [compiler: Emily.Compiler, native_fallback: :raise] ++ opts
      )
      |> Nx.Serving.client_preprocessing(fn x -> {Nx.Batch.stack([x]), :ok} end)
      |> Nx.Serving.client_postprocessing(fn {out, _meta}, :ok -> Nx.squeeze(out, axes: [0]) end)
    end

    defp start(name, opts, partitions?) do
      start_supervised!(
        {Nx.Serving,
         serving: serving(opts),
         name: name,
         batch_size: 4,
         batch_timeout: 20,
         partitions: partitions?},
        id: name
      )
    end

    # 16 concurrent clients, each with its own input; every answer checked.
    defp hammer(name) do
      1..16
      |> Task.async_stream(
        fn i ->
          x = Nx.multiply(rand({6}, {:f, 32}, 100 + i), i / 4)
          got = Nx.Serving.batched_run(name, x)
          {x, got}
        end,
        max_concurrency: 16,
        timeout: 60_000
      )
      |> Enum.map(fn {:ok, r} -> r end)
      |> Enum.each(fn {x, got} ->
        assert %Emily.Backend{} = got.data
        want = x |> Nx.new_axis(0) |> expected() |> Nx.squeeze(axes: [0])
        assert_close(to_binary_backend(got), want, 1.0e-6, 1.0e-5, "serving answer")
      end)
    end

    for lane <- [:native, :fused, :evaluator] do
      test "a batched serving on the #{lane} lane answers 16 concurrent clients" do
        name = :"serving_#{unquote(lane)}_#{System.unique_integer([:positive])}"
        start(name, [lane: unquote(lane)], false)
        hammer(name)
      end
    end

    # Twelve residual layers, each reading its input three times: the expression is a DAG
    # whose tree form has 3^12 copies of the first layer.
    defp residual_stack(x) do
      Enum.reduce(1..12, x, fn _, x -> Nx.add(Nx.multiply(Nx.tanh(x), x), x) end)
    end

    for lane <- [:native, :fused, :evaluator] do
      test "a compiled function of a deep residual stack copies to another process in its " <>
             "own size on the #{lane} lane, and a batched serving runs it" do
        opts = [compiler: Emily.Compiler, lane: unquote(lane), native_fallback: :raise]
        f = Nx.Defn.compile(&residual_stack/1, [Nx.template({4, 6}, :f32)], opts)

        # What a message, a spawn or Nx.Serving's batch task copies.
        assert :erts_debug.flat_size(f) <= 4 * :erts_debug.size(f)

        x = rand({4, 6}, {:f, 32}, 31)
        want = x |> Nx.backend_copy(Nx.BinaryBackend) |> residual_stack()
        got = Task.async(fn -> to_binary_backend(f.(x)) end) |> Task.await(60_000)
        assert_close(got, want, 1.0e-5, 1.0e-4, "compiled in another process")

        name = :"serving_stack_#{unquote(lane)}_#{System.unique_integer([:positive])}"

        serving =
          Nx.Serving.new(fn _opts -> f end)
          |> Nx.Serving.client_preprocessing(fn x -> {Nx.Batch.concatenate([x]), :ok} end)
          |> Nx.Serving.client_postprocessing(fn {out, _}, :ok -> out end)

        start_supervised!(
          {Nx.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20},
          id: name
        )

        got = Nx.Serving.batched_run(name, x) |> to_binary_backend()
        assert_close(got, want, 1.0e-5, 1.0e-4, "served")
      end
    end

    test "partitions: one worker per partition, requests spread over them" do
      name = :"serving_parts_#{System.unique_integer([:positive])}"
      start(name, [lane: :native, max_concurrency: 3, debug_options: [stats: self()]], true)
      hammer(name)
      # Each partition lowered the function for its own worker: the 4 batches ran on at
      # least 2 of the 3 partitions.
      workers = for {:emily_compiler, %{worker: w}} <- drain(), uniq: true, do: w
      assert length(workers) >= 2
    end

    defp drain(acc \\ []) do
      receive do
        {:emily_compiler, _} = m -> drain([m | acc])
      after
        0 -> acc
      end
    end

    test "partitions: outputs of each partition's worker are usable anywhere" do
      [o1, o2] = Emily.Compiler.__partitions_options__(max_concurrency: 2)
      x = rand({2, 6})
      f1 = Nx.Defn.jit(&predict/3, [compiler: Emily.Compiler] ++ o1)
      f2 = Nx.Defn.jit(&predict/3, [compiler: Emily.Compiler] ++ o2)
      r1 = f1.(x, @w, @b)
      r2 = f2.(x, @w, @b)
      assert Emily.Native.tensor_worker(r1.data.ref) == Emily.Worker.info(o1[:worker]).id
      assert Emily.Native.tensor_worker(r2.data.ref) == Emily.Worker.info(o2[:worker]).id
      assert_identical(r1, r2, "two partitions")
      # Used by this process (its own worker) in further ops.
      sum = Nx.add(r1, r2) |> to_binary_backend()
      assert_close(sum, Nx.multiply(expected(x), 2), 1.0e-6, 1.0e-5, "sum")
    end
  end
end

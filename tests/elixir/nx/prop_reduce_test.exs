if Code.ensure_loaded?(Nx) do
  defmodule Emily.PropReduceTest do
    @moduledoc """
    Properties: reductions (sum, product, reduce_max, reduce_min, all, any, argmax,
    argmin, reduce), window ops (window_sum/product/max/min, window_reduce,
    window_scatter_max/min), sort, argsort, top_k and cumulative ops agree with
    Nx.BinaryBackend.
    """
    use ExUnit.Case, async: true
    @moduletag :nx

    import Emily.Prop

    @n 30

    setup_all do
      previous = Application.get_env(:emily, :fallback)
      Application.put_env(:emily, :fallback, :silent)
      on_exit(fn -> if previous, do: Application.put_env(:emily, :fallback, previous) end)
    end

    defp reduce_opts(s) do
      opts = if bool(), do: [axes: axes(s)], else: []
      if bool(), do: Keyword.put(opts, :keep_axes, true), else: opts
    end

    test "sum, product over all types and random axes" do
      check(
        @n * 2,
        fn ->
          s = shape(max_rank: 4)
          type = pick(all_types())
          # small values keep float products inside the f16 range
          # (complex magnitudes up to 1.4: a product of 128 stays finite)
          range = if type == {:c, 64}, do: {-1, 1}, else: {-3, 3}
          [tensor(s, type, range: range), reduce_opts(s), pick([:sum, :product])]
        end,
        fn [t, opts, op] -> apply(Nx, op, [t, opts]) end,
        atol: 1.0e-2,
        rtol: 1.0e-2
      )
    end

    test "reduce_max, reduce_min with NaN and infinities" do
      check(
        @n * 2,
        fn ->
          s = shape(max_rank: 4)

          [
            tensor(s, pick(real_types()), specials: true),
            reduce_opts(s),
            pick([:reduce_max, :reduce_min])
          ]
        end,
        fn [t, opts, op] -> apply(Nx, op, [t, opts]) end
      )
    end

    test "all, any" do
      check(
        @n,
        fn ->
          s = shape(max_rank: 4)
          [tensor(s, pick(all_types()), range: {-1, 1}), reduce_opts(s), pick([:all, :any])]
        end,
        fn [t, opts, op] -> apply(Nx, op, [t, opts]) end
      )
    end

    test "argmax, argmin with ties, NaN, tie_break and keep_axis" do
      check(
        @n * 3,
        fn ->
          s = shape(max_rank: 3)
          type = pick(real_types())
          # few distinct values: many ties
          t = tensor(s, type, range: {-2, 2}, specials: bool(), integers: true)
          opts = [tie_break: pick([:low, :high])]

          opts =
            if tuple_size(s) > 0 and bool(),
              do: Keyword.put(opts, :axis, int(0, tuple_size(s) - 1)),
              else: opts

          opts = if bool(), do: Keyword.put(opts, :keep_axis, true), else: opts
          [t, opts, pick([:argmax, :argmin])]
        end,
        fn [t, opts, op] -> apply(Nx, op, [t, opts]) end
      )
    end

    test "reduce with an Elixir function (fallback)" do
      check(
        @n,
        fn ->
          s = shape(max_rank: 3)
          [tensor(s, pick([{:s, 32}, {:f, 32}]), range: {-5, 5}), reduce_opts(s)]
        end,
        fn [t, opts] -> Nx.reduce(t, 0, opts, &Nx.add/2) end
      )
    end

    defp window_args(s) do
      rank = tuple_size(s)
      window = s |> Tuple.to_list() |> Enum.map(&int(1, min(&1, 3))) |> List.to_tuple()
      strides = for _ <- 1..rank//1, do: int(1, 2)
      padding = pick([:valid, :same, for(_ <- 1..rank//1, do: {int(0, 2), int(0, 2)})])
      dilations = for _ <- 1..rank//1, do: int(1, 2)
      {window, strides, padding, dilations}
    end

    defp windows_fit?(s, window, strides, padding, dilations) do
      # the output must not be empty
      pads =
        case padding do
          :valid -> List.duplicate({0, 0}, tuple_size(s))
          :same -> List.duplicate({1, 1}, tuple_size(s))
          list -> list
        end

      Enum.zip([Tuple.to_list(s), Tuple.to_list(window), pads, dilations, strides])
      |> Enum.all?(fn {d, w, {lo, hi}, dil, _} -> d + lo + hi >= (w - 1) * dil + 1 end)
    end

    test "window_sum, window_product, window_max, window_min" do
      check(
        @n * 3,
        fn ->
          s = shape(min_rank: 1, max_rank: 3, max_dim: 5)
          {window, strides, padding, dilations} = window_args(s)
          padding = if padding == :same, do: :valid, else: padding

          # Nx does not reject windows larger than the padded input (BinaryBackend then
          # returns garbage): keep the dilated window inside.
          dilations =
            if windows_fit?(s, window, strides, padding, dilations),
              do: dilations,
              else: List.duplicate(1, tuple_size(s))

          op = pick([:window_sum, :window_product, :window_max, :window_min])
          type = pick(real_types())

          [
            tensor(s, type, range: {-3, 3}, specials: op in [:window_max, :window_min]),
            window,
            [strides: strides, padding: padding, window_dilations: dilations],
            op
          ]
        end,
        fn [t, window, opts, op] -> apply(Nx, op, [t, window, opts]) end,
        atol: 1.0e-2,
        rtol: 1.0e-2,
        # MLX's CUDA window product accumulates in the half type (a rounding per factor,
        # 2^-8 each in bf16: 7.88 for 7.8 over nine factors); BinaryBackend rounds once.
        type_tolerance: %{{:bf, 16} => {5.0e-2, 5.0e-2}, {:f, 16} => {2.0e-2, 2.0e-2}}
      )
    end

    test "window_reduce with an Elixir function (fallback)" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 2, max_dim: 4)
          window = s |> Tuple.to_list() |> Enum.map(&int(1, min(&1, 2))) |> List.to_tuple()
          [tensor(s, {:s, 32}, range: {-5, 5}), window]
        end,
        fn [t, window] -> Nx.window_reduce(t, 0, window, &Nx.max/2) end
      )
    end

    test "window_scatter_max, window_scatter_min" do
      check(
        @n * 2,
        fn ->
          s = shape(min_rank: 1, max_rank: 3, max_dim: 5)
          window = s |> Tuple.to_list() |> Enum.map(&int(1, min(&1, 3))) |> List.to_tuple()
          strides = for d <- Tuple.to_list(window), do: int(1, d)
          padding = pick([:valid, for(_ <- 1..tuple_size(s), do: {int(0, 1), int(0, 1)})])
          type = pick([{:f, 32}, {:s, 32}, {:f, 64}])
          t = tensor(s, type, range: {-4, 4})
          # the source has the shape of the window reduction's output
          out = Nx.window_max(t, window, strides: strides, padding: padding)
          source = tensor(out.shape, type, range: {-4, 4})
          [t, source, window, strides, padding, pick([:window_scatter_max, :window_scatter_min])]
        end,
        fn [t, source, window, strides, padding, op] ->
          apply(Nx, op, [t, source, 0, window, [strides: strides, padding: padding]])
        end,
        # BinaryBackend adds the scattered values with Nx.add on scalars, which rounds
        # them through f32 even for f64 tensors.
        atol: 1.0e-6,
        rtol: 1.0e-6
      )
    end

    test "sort and argsort: stable, both directions, NaN ordering" do
      check(
        @n * 3,
        fn ->
          s = shape(max_rank: 3, max_dim: 6)
          type = pick(real_types())
          t = tensor(s, type, range: {-3, 3}, specials: true)

          t =
            if bool(),
              do: tensor(s, type, range: {-3, 3}, specials: true, integers: true),
              else: t

          axis = if tuple_size(s) > 0, do: int(0, tuple_size(s) - 1), else: 0
          [t, [axis: axis, direction: pick([:asc, :desc])]]
        end,
        fn [t, opts] ->
          if t.shape == {},
            do: Nx.sort(t),
            else: {Nx.sort(t, opts), Nx.argsort(t, Keyword.put(opts, :stable, true))}
        end
      )
    end

    test "top_k" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3, max_dim: 6)
          t = tensor(s, pick(real_types()), range: {-3, 3})
          [t, int(1, elem(s, tuple_size(s) - 1))]
        end,
        fn [t, k] -> Nx.top_k(t, k: k) end
      )
    end

    test "cumulative sum, product, min, max in both directions" do
      check(
        @n * 2,
        fn ->
          s = shape(min_rank: 1, max_rank: 3)
          op = pick([:cumulative_sum, :cumulative_product, :cumulative_min, :cumulative_max])

          t =
            tensor(s, pick(real_types()),
              range: {-2, 2},
              specials: op in [:cumulative_min, :cumulative_max]
            )

          [t, [axis: int(0, tuple_size(s) - 1), reverse: bool()], op]
        end,
        fn [t, opts, op] -> apply(Nx, op, [t, opts]) end,
        # BinaryBackend's composite truncates every bf16 step (up to 2^-7 each)
        atol: 1.0e-2,
        rtol: 1.0e-2,
        type_tolerance: %{{:bf, 16} => {0.1, 0.05}}
      )
    end
  end
end

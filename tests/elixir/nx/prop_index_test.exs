if Code.ensure_loaded?(Nx) do
  defmodule Emily.PropIndexTest do
    @moduledoc """
    Properties: gather, indexed_add, indexed_put, take and take_along_axis (with Nx's
    index layout and `axes:`) agree with Nx.BinaryBackend.
    """
    use ExUnit.Case, async: true
    @moduletag :nx

    import Emily.Prop

    # On a GPU, MLX's CUDA backend compiles (NVRTC) a gather/scatter kernel for each new
    # combination of types and ranks, ~2-3 s each on the H100: 40 random cases per test
    # took over 200 s there, so the GPU tier draws fewer.
    @n if Emily.Worker.default_device() == :gpu, do: 10, else: 40

    defp index_type, do: pick([{:s, 32}, {:s, 64}, {:u, 8}, {:u, 32}, {:s, 16}])

    # Indices [batch..., k] into `axes` of shape `s`.
    defp indices(s, axes, batch) do
      dims = Enum.map(axes, &elem(s, &1))
      n = Tuple.product(batch)
      itype = index_type()

      values =
        for _ <- 1..n, d <- dims do
          int(0, d - 1)
        end

      values
      |> Nx.tensor(type: itype, backend: Nx.BinaryBackend)
      |> Nx.reshape(List.to_tuple(Tuple.to_list(batch) ++ [length(axes)]))
    end

    # Positions along an axis of size `d`, in a tensor of shape `ishape`.
    defp positions(ishape, d) do
      values = for _ <- 1..Tuple.product(ishape), do: int(0, d - 1)

      values
      |> Nx.tensor(type: index_type(), backend: Nx.BinaryBackend)
      |> Nx.reshape(ishape)
    end

    defp pick_axes(s) do
      all = Enum.to_list(0..(tuple_size(s) - 1))
      k = int(1, length(all))
      Enum.take(Enum.shuffle(all), k) |> then(&if(bool(), do: Enum.sort(&1), else: &1))
    end

    test "gather with random axes and index batches" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3)
          axes = pick_axes(s)
          batch = shape(min_rank: 1, max_rank: 2)
          [tensor(s, pick(all_types())), indices(s, axes, batch), axes]
        end,
        fn [t, idx, axes] -> Nx.gather(t, idx, axes: axes) end
      )
    end

    test "gather with default axes (leading)" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3)
          k = int(1, tuple_size(s))
          axes = Enum.to_list(0..(k - 1))
          [tensor(s, pick(all_types())), indices(s, axes, shape(min_rank: 1, max_rank: 2))]
        end,
        fn [t, idx] -> Nx.gather(t, idx) end
      )
    end

    defp updates_shape(s, axes, batch) do
      rest = for i <- 0..(tuple_size(s) - 1), i not in axes, do: elem(s, i)
      List.to_tuple(Tuple.to_list(batch) ++ rest)
    end

    test "indexed_add with duplicates, mixed types and axes" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3)
          axes = pick_axes(s)
          batch = {int(1, 6)}
          t1 = pick(real_types())
          t2 = pick(real_types())

          [
            tensor(s, t1, range: {-5, 5}),
            indices(s, axes, batch),
            tensor(updates_shape(s, axes, batch), t2, range: {-5, 5}),
            axes
          ]
        end,
        fn [t, idx, upd, axes] -> Nx.indexed_add(t, idx, upd, axes: axes) end
      )
    end

    test "indexed_put without duplicate indices" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3)
          axes = pick_axes(s)
          # distinct index rows (which of several updates wins is unspecified on MLX)
          dims = Enum.map(axes, &elem(s, &1))
          rows = for(_ <- 1..6, do: Enum.map(dims, &int(0, &1 - 1))) |> Enum.uniq()
          idx = Nx.tensor(rows, type: index_type(), backend: Nx.BinaryBackend)
          batch = {length(rows)}

          [
            tensor(s, pick(all_types())),
            idx,
            tensor(updates_shape(s, axes, batch), pick(all_types() -- [{:f, 64}, {:c, 64}])),
            axes
          ]
        end,
        fn [t, idx, upd, axes] ->
          if {t.type, upd.type} in [{{:f, 64}, {:c, 64}}, {{:c, 64}, {:f, 64}}],
            do: :skip,
            else: Nx.indexed_put(t, idx, upd, axes: axes)
        end
      )
    end

    test "take along an axis with any index shape" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3)
          axis = int(0, tuple_size(s) - 1)
          ishape = shape(max_rank: 2)
          idx = positions(ishape, elem(s, axis))
          [tensor(s, pick(all_types())), idx, axis]
        end,
        fn [t, idx, axis] -> Nx.take(t, idx, axis: axis) end
      )
    end

    test "take_along_axis" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3)
          axis = int(0, tuple_size(s) - 1)
          ishape = put_elem(s, axis, int(1, 5))
          idx = positions(ishape, elem(s, axis))
          [tensor(s, pick(all_types())), idx, axis]
        end,
        fn [t, idx, axis] -> Nx.take_along_axis(t, idx, axis: axis) end
      )
    end
  end
end

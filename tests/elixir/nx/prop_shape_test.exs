if Code.ensure_loaded?(Nx) do
  defmodule Emily.PropShapeTest do
    @moduledoc """
    Properties: shape and data-movement callbacks (reshape, squeeze, broadcast, transpose,
    pad, reverse, slice, put_slice, concatenate, stack, to_batched, backend_copy /
    backend_transfer, inspect, to_binary) agree with Nx.BinaryBackend.
    """
    use ExUnit.Case, async: true
    @moduletag :nx

    import Emily.Prop

    @n 30

    defp any_type, do: pick(all_types())

    test "reshape and squeeze" do
      check(
        @n,
        fn ->
          s = shape(max_rank: 4)
          [tensor(s, any_type())]
        end,
        fn [t] ->
          dims = Tuple.to_list(t.shape)
          flat = Nx.reshape(t, {Nx.size(t)})
          ones = List.to_tuple(Enum.flat_map(dims, &[&1, 1]))
          {flat, Nx.reshape(t, ones), Nx.squeeze(Nx.reshape(t, ones))}
        end
      )
    end

    test "broadcast with explicit axes" do
      check(
        @n,
        fn ->
          s = shape(max_rank: 3)
          extra = shape(max_rank: 2, min_rank: 0)
          [tensor(s, any_type()), extra]
        end,
        fn [t, extra] ->
          # t's dims map to the trailing axes, or to chosen axes of a larger shape
          out = List.to_tuple(Tuple.to_list(extra) ++ Tuple.to_list(t.shape))
          r = tuple_size(extra)
          axes = Enum.to_list(r..(r + tuple_size(t.shape) - 1)//1)
          {Nx.broadcast(t, out), Nx.broadcast(t, out, axes: axes)}
        end
      )
    end

    test "transpose with random permutations" do
      check(
        @n,
        fn ->
          s = shape(max_rank: 4)
          [tensor(s, any_type()), Enum.shuffle(Enum.to_list(0..(tuple_size(s) - 1)//1))]
        end,
        fn [t, perm] -> Nx.transpose(t, axes: perm) end
      )
    end

    test "pad with negative, positive and interior padding" do
      check(
        @n * 2,
        fn ->
          s = shape(min_rank: 0, max_rank: 3)
          type = pick(real_types() ++ [{:c, 64}])

          config =
            for d <- Tuple.to_list(s) do
              lo = int(-min(d, 2), 3)
              hi = int(-min(d, 2), 3)
              interior = int(0, 2)
              # the padded size must stay positive
              size = d + max(d - 1, 0) * interior + lo + hi
              if size <= 0, do: {0, 0, interior}, else: {lo, hi, interior}
            end

          [tensor(s, type), config, value(type)]
        end,
        fn [t, config, v] -> Nx.pad(t, v, config) end
      )
    end

    test "reverse over random axes" do
      check(
        @n,
        fn ->
          s = shape(max_rank: 4)
          [tensor(s, any_type()), axes(s)]
        end,
        fn [t, axes] -> Nx.reverse(t, axes: axes) end
      )
    end

    defp slice_args(s) do
      dims = Tuple.to_list(s)
      lengths = Enum.map(dims, &int(1, &1))
      # starts may be out of range: Nx clamps them
      starts = Enum.zip_with(dims, lengths, fn d, _l -> int(-2, d + 1) end)
      strides = Enum.map(dims, fn _ -> int(1, 3) end)
      {starts, lengths, strides}
    end

    test "slice with integer starts and strides" do
      check(
        @n * 2,
        fn ->
          s = shape(min_rank: 1, max_rank: 4, max_dim: 6)
          {starts, lengths, strides} = slice_args(s)
          [tensor(s, any_type()), starts, lengths, strides]
        end,
        fn [t, starts, lengths, strides] ->
          starts =
            Enum.zip_with(starts, Tuple.to_list(t.shape), fn st, d -> min(max(st, 0), d) end)

          Nx.slice(t, starts, lengths, strides: strides)
        end
      )
    end

    test "slice with tensor starts (clamped like Nx)" do
      check(
        @n * 2,
        fn ->
          s = shape(min_rank: 1, max_rank: 3, max_dim: 6)
          {starts, lengths, strides} = slice_args(s)
          itype = pick([{:s, 32}, {:s, 64}, {:s, 16}])
          starts = Enum.map(starts, fn st -> tensor({}, itype, range: {st, st}) end)
          [tensor(s, any_type()), starts, lengths, strides]
        end,
        fn [t, starts, lengths, strides] -> Nx.slice(t, starts, lengths, strides: strides) end
      )
    end

    test "put_slice with integer and tensor starts" do
      check(
        @n * 2,
        fn ->
          s = shape(min_rank: 1, max_rank: 3, max_dim: 5)
          upd_shape = s |> Tuple.to_list() |> Enum.map(&int(1, &1)) |> List.to_tuple()
          starts = for d <- Tuple.to_list(s), do: int(-2, d + 1)
          tensor_starts? = bool()

          starts =
            if tensor_starts?,
              do: Enum.map(starts, &tensor({}, {:s, 64}, range: {&1, &1})),
              else: starts

          t1 = pick(real_types())
          [tensor(s, t1), starts, tensor(upd_shape, pick(real_types()))]
        end,
        fn [t, starts, upd] ->
          starts =
            Enum.zip_with(starts, Tuple.to_list(t.shape), fn
              st, d when is_integer(st) -> min(max(st, 0), d)
              st, _ -> st
            end)

          Nx.put_slice(t, starts, upd)
        end
      )
    end

    test "concatenate and stack of mixed types" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3)
          axis = int(0, tuple_size(s) - 1)
          k = int(1, 4)

          ts =
            for _ <- 1..k do
              s2 = put_elem(s, axis, int(1, 4))
              tensor(s2, pick(real_types()))
            end

          same = for _ <- 1..k, do: tensor(s, pick(real_types()))
          [ts, same, axis]
        end,
        fn [ts, same, axis] ->
          {Nx.concatenate(ts, axis: axis), Nx.stack(same, axis: axis),
           Nx.stack(same, axis: tuple_size(hd(same).shape))}
        end
      )
    end

    test "to_batched with and without leftover" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3, max_dim: 7)
          [tensor(s, any_type()), int(1, elem(s, 0)), pick([:repeat, :discard])]
        end,
        fn [t, batch, leftover] -> Enum.to_list(Nx.to_batched(t, batch, leftover: leftover)) end
      )
    end

    test "backend_copy, backend_transfer, to_binary round trips" do
      check(
        @n,
        fn ->
          [tensor(shape(max_rank: 4), pick(all_types() ++ narrow_types()))]
        end,
        fn [t] ->
          copy = Nx.backend_copy(t, Nx.BinaryBackend)
          back = Nx.backend_transfer(copy, Nx.default_backend())
          {Nx.to_binary(t), Nx.to_binary(back), Nx.to_binary(t, limit: 1)}
        end
      )
    end

    test "inspect prints the same as BinaryBackend (values and limits)" do
      check(
        @n,
        fn ->
          [
            tensor(shape(max_rank: 3), pick(real_types()), specials: true),
            pick([:infinity, 3, 10])
          ]
        end,
        fn [t, limit] ->
          inspect(t, limit: limit)
        end
      )
    end
  end
end

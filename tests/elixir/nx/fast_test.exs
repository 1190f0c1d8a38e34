if Code.ensure_loaded?(Nx) do
  defmodule Emily.FastTest do
    @moduledoc """
    Emily.Fast: MLX's fused kernels against the same computation in Nx ops on
    Nx.BinaryBackend.
    """
    use ExUnit.Case, async: true
    @moduletag :nx

    import Emily.Prop

    @n 20

    test "rms_norm and layer_norm, with and without weight and bias" do
      check(
        @n,
        fn ->
          s = shape(min_rank: 1, max_rank: 3, max_dim: 6)
          last = elem(s, tuple_size(s) - 1)
          type = pick([{:f, 32}, {:f, 16}])
          w = if bool(), do: tensor({last}, type), else: nil
          b = if bool(), do: tensor({last}, type), else: nil
          [tensor(s, type), w, b, pick([1.0e-5, 1.0e-3])]
        end,
        fn [x, w, b, eps] ->
          {Emily.Fast.rms_norm(x, w, eps: eps), Emily.Fast.layer_norm(x, w, b, eps: eps)}
        end,
        atol: 1.0e-2,
        rtol: 1.0e-2
      )
    end

    test "scaled_dot_product_attention: plain, causal, masks, grouped heads" do
      check(
        @n,
        fn ->
          b = int(1, 2)
          hkv = int(1, 2)
          h = hkv * int(1, 2)
          lq = int(1, 4)
          lk = lq + int(0, 3)
          d = pick([4, 8])
          mode = pick([:none, :causal, :additive, :keep])

          mask =
            case mode do
              :additive ->
                tensor({b, 1, lq, lk}, {:f, 32}, range: {-1, 0})

              :keep ->
                Nx.tensor(for(_ <- 1..(lq * lk), do: 1), type: :u8, backend: Nx.BinaryBackend)
                |> Nx.reshape({1, 1, lq, lk})

              _ ->
                nil
            end

          [
            tensor({b, h, lq, d}, {:f, 32}),
            tensor({b, hkv, lk, d}, {:f, 32}),
            tensor({b, hkv, lk, d}, {:f, 32}),
            [causal: mode == :causal, mask: mask]
          ]
        end,
        fn [q, k, v, opts] ->
          opts = Enum.reject(opts, fn {_, v} -> v in [nil, false] end)
          Emily.Fast.scaled_dot_product_attention(q, k, v, opts)
        end,
        atol: 1.0e-4,
        rtol: 1.0e-4
      )
    end
  end
end

if Code.ensure_loaded?(Nx) do
  defmodule Emily.Fast do
    @moduledoc """
    MLX's fused kernels (`mlx::core::fast`) on Nx tensors: RMS norm, layer norm and
    scaled dot-product attention.

    Tensors on `Emily.Backend` run the fused MLX kernel; tensors on any other backend run
    the same computation made of Nx ops, so code using these functions works everywhere.

    With `config :emily, debug_detect_nan_inf: true` (compile time) the fused results are
    checked and `ArgumentError` is raised when they hold NaN or Inf (this evaluates them).
    """

    alias Emily.Native, as: N

    alias Emily.Backend.Core
    alias Nx.Tensor, as: T

    require Emily.Config
    @nan_inf_check Emily.Config.compile_env(:debug_detect_nan_inf)

    @doc """
    `x / sqrt(mean(x^2, last axis) + eps) * weight` over the last axis.

    Options: `:eps` (default `1.0e-5`).
    """
    def rms_norm(%T{} = x, weight \\ nil, opts \\ []) do
      eps = Keyword.get(opts, :eps, 1.0e-5)

      if emily?([x, weight]) do
        native(
          x,
          fn w, type ->
            N.rms_norm(Core.ref(x, type, w), optional(weight, type, w), eps * 1.0, w)
          end,
          :rms_norm
        )
      else
        ms = x |> Nx.multiply(x) |> Nx.mean(axes: [-1], keep_axes: true)
        y = Nx.multiply(x, Nx.rsqrt(Nx.add(ms, eps)))
        if weight, do: Nx.multiply(y, weight), else: y
      end
    end

    @doc """
    `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis.

    Options: `:eps` (default `1.0e-5`).
    """
    def layer_norm(%T{} = x, weight \\ nil, bias \\ nil, opts \\ []) do
      eps = Keyword.get(opts, :eps, 1.0e-5)

      if emily?([x, weight, bias]) do
        native(
          x,
          fn w, type ->
            N.layer_norm(
              Core.ref(x, type, w),
              optional(weight, type, w),
              optional(bias, type, w),
              eps * 1.0,
              w
            )
          end,
          :layer_norm
        )
      else
        mean = Nx.mean(x, axes: [-1], keep_axes: true)
        var = Nx.variance(x, axes: [-1], keep_axes: true)
        y = Nx.divide(Nx.subtract(x, mean), Nx.sqrt(Nx.add(var, eps)))
        y = if weight, do: Nx.multiply(y, weight), else: y
        if bias, do: Nx.add(y, bias), else: y
      end
    end

    @doc """
    `softmax(q . k^T * scale + mask) . v` for q `{b, h, lq, d}` and k, v `{b, h_kv, lk, d}`
    (`h` a multiple of `h_kv`: grouped-query attention).

    Options: `:scale` (default `1 / sqrt(d)`), `:causal` (default false), `:mask` (an
    additive float mask or a 0/1 keep mask broadcastable to `{b, h, lq, lk}`; not with
    `:causal`).
    """
    def scaled_dot_product_attention(%T{} = q, %T{} = k, %T{} = v, opts \\ []) do
      d = elem(q.shape, 3)
      scale = Keyword.get(opts, :scale, 1 / :math.sqrt(d))
      causal = Keyword.get(opts, :causal, false)
      mask = Keyword.get(opts, :mask)

      if emily?([q, k, v, mask]) do
        native(
          q,
          fn w, type ->
            m =
              case mask do
                nil -> []
                %T{type: {:u, 8}} = m -> [N.astype(Core.ref(m, w), :bool, w)]
                m -> [Core.ref(m, type, w)]
              end

            N.scaled_dot_product_attention(
              Core.ref(q, type, w),
              Core.ref(k, type, w),
              Core.ref(v, type, w),
              scale * 1.0,
              causal,
              m,
              [],
              w
            )
          end,
          :scaled_dot_product_attention
        )
      else
        composite_sdpa(q, k, v, scale, causal, mask)
      end
    end

    defp composite_sdpa(q, k, v, scale, causal, mask) do
      # (the causal mask aligns the last query with the last key, like MLX's)
      {b, h, lq, d} = q.shape
      {_, hkv, lk, _} = k.shape
      rep = div(h, hkv)
      # repeat k/v heads for grouped-query attention
      k = k |> Nx.new_axis(2) |> Nx.broadcast({b, hkv, rep, lk, d}) |> Nx.reshape({b, h, lk, d})
      v = v |> Nx.new_axis(2) |> Nx.broadcast({b, hkv, rep, lk, d}) |> Nx.reshape({b, h, lk, d})
      scores = Nx.dot(q, [3], [0, 1], k, [3], [0, 1]) |> Nx.multiply(scale)

      scores =
        cond do
          causal ->
            keep =
              Nx.greater_equal(
                Nx.iota({lq, lk}, axis: 0) |> Nx.add(lk - lq),
                Nx.iota({lq, lk}, axis: 1)
              )

            Nx.select(
              Nx.broadcast(keep, scores.shape),
              scores,
              Nx.Constants.neg_infinity(scores.type)
            )

          match?(%T{type: {:u, 8}}, mask) ->
            Nx.select(
              Nx.broadcast(mask, scores.shape),
              scores,
              Nx.Constants.neg_infinity(scores.type)
            )

          mask != nil ->
            Nx.add(scores, mask)

          true ->
            scores
        end

      max = Nx.reduce_max(scores, axes: [-1], keep_axes: true)
      e = Nx.exp(Nx.subtract(scores, max))
      p = Nx.divide(e, Nx.sum(e, axes: [-1], keep_axes: true))
      Nx.dot(p, [3], [0, 1], v, [2], [0, 1])
    end

    defp emily?(tensors) do
      Enum.any?(tensors, &match?(%T{data: %Emily.Backend{}}, &1))
    end

    defp optional(nil, _type, _w), do: []
    defp optional(%T{} = t, type, w), do: [Core.ref(t, type, w)]

    defp native(%T{type: type} = like, fun, op) do
      type = Nx.Type.to_floating(type)
      device = Core.device_of([like])
      w = Core.worker(device)
      r = fun.(w, type)

      if @nan_inf_check do
        Emily.Backend.LinAlg.check_finite!(op, r, w)
      end

      shape = List.to_tuple(N.shape(r))

      Core.wrap(
        r,
        %T{type: type, shape: shape, names: List.duplicate(nil, tuple_size(shape))},
        device
      )
    end
  end
end

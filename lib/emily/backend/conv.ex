if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Conv do
    @moduledoc false
    # Nx's conv on MLX's (channels-last) convolution, or as windows times the kernel.

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, LinAlg, MX, Shape}
    alias Nx.Tensor, as: T

    import Core, only: [on_device: 3, ref: 3, fit: 3]

    ## conv

    @doc """
    Nx conv. f32/f16/bf16 with 1 to 3 spatial axes run on MLX's convolution (grouped
    ones with 1 or 2); other types (f64, c64), grouped 3-D and more spatial axes run as
    windows (as_strided) times the kernel (matmul), on MLX as well.
    """
    def conv(%T{type: type} = out, %T{shape: shape} = t, k, opts) do
      on_device([t, k], out, fn w ->
        rank = tuple_size(shape)

        x =
          LinAlg.permute(
            ref(t, type, w),
            opts[:input_permutation] || Enum.to_list(0..(rank - 1)),
            w
          )

        kk =
          LinAlg.permute(
            ref(k, type, w),
            opts[:kernel_permutation] || Enum.to_list(0..(rank - 1)),
            w
          )

        fg = opts[:feature_group_size] || 1
        bg = opts[:batch_group_size] || 1

        # Batch groups become feature groups: [bg * n, c, ...] -> [n, bg * c, ...]
        {x, groups} =
          if bg > 1 do
            [nb, c | sp] = N.shape(x)
            x = N.reshape(x, [bg, div(nb, bg), c | sp], w)
            x = N.transpose(x, [1, 0 | Enum.to_list(2..rank)], w)
            {N.reshape(x, [div(nb, bg), bg * c | sp], w), bg}
          else
            {x, fg}
          end

        conv_opts =
          {opts[:strides], opts[:padding], opts[:input_dilation], opts[:kernel_dilation]}

        # (MLX's convolution takes groups in 1-D and 2-D only)
        y =
          if type in [{:f, 32}, {:f, 16}, {:bf, 16}] and (rank - 2) in 1..3 and
               (groups == 1 or rank - 2 <= 2) do
            mlx_conv(x, kk, conv_opts, groups, type, w)
          else
            im2col_conv(x, kk, conv_opts, groups, type, w)
          end

        # y is [n, out channels, spatial...]; Nx applies the output permutation to it.
        perm = opts[:output_permutation] || Enum.to_list(0..(rank - 1))
        y = LinAlg.permute(y, Core.invert_permutation(perm), w)
        fit(y, type, w)
      end)
    end

    # MLX's convolution is channels-last.
    defp mlx_conv(x, kk, {strides, padding, idil, kdil}, groups, type, w) do
      rank = length(N.shape(x))
      last = Enum.to_list(2..(rank - 1)//1)
      x = N.transpose(x, [0 | last] ++ [1], w)
      kk = N.transpose(kk, [0 | last] ++ [1], w)

      {x, lo, hi, idil} =
        if Enum.any?(padding, fn {l, h} -> l < 0 or h < 0 end) do
          zero = Core.scalar(0, type, w)

          config =
            [{0, 0, 0}] ++
              Enum.zip_with(padding, idil, fn {l, h}, d -> {l, h, d - 1} end) ++ [{0, 0, 0}]

          zeros = List.duplicate(0, rank - 2)
          {Shape.pad(x, zero, config, w), zeros, zeros, List.duplicate(1, rank - 2)}
        else
          {x, Enum.map(padding, &elem(&1, 0)), Enum.map(padding, &elem(&1, 1)), idil}
        end

      y = N.conv_general(x, kk, strides, lo, hi, kdil, idil, groups, false, w)
      N.transpose(y, [0, rank - 1 | Enum.to_list(1..(rank - 2)//1)], w)
    end

    # x [n, c, s...], kk [o, c / groups, k...]: the (dilated, padded) input's windows,
    # [groups, n * prod(out), c / groups * prod(k)], times the kernel,
    # [groups, c / groups * prod(k), o / groups].
    defp im2col_conv(x, kk, {strides, padding, idil, kdil}, groups, type, w) do
      [n, c | _] = N.shape(x)
      [o, cg | ks] = N.shape(kk)
      sp = length(ks)
      zero = Core.scalar(0, type, w)

      config =
        [{0, 0, 0}, {0, 0, 0}] ++ Enum.zip_with(padding, idil, fn {l, h}, d -> {l, h, d - 1} end)

      xp = Shape.pad(x, zero, config, w)
      [_, _ | ps] = N.shape(xp)

      outs =
        Enum.zip_with([ps, ks, kdil, strides], fn [p, kd, d, s] ->
          eff = (kd - 1) * d + 1
          if p >= eff, do: div(p - eff, s) + 1, else: 0
        end)

      [sn, sc | st] = Core.strides(N.shape(xp))
      outer = Enum.zip_with(strides, st, &(&1 * &2))
      inner = Enum.zip_with(kdil, st, &(&1 * &2))

      view =
        N.as_strided(
          MX.contiguous(xp, w),
          [n, c] ++ outs ++ ks,
          [sn, sc] ++ outer ++ inner,
          0,
          w
        )

      view = MX.contiguous(view, w)

      pout = Enum.product(outs)
      pk = Enum.product(ks)
      og = div(o, groups)

      # [n, g, cg, outs..., ks...] -> [g, n, outs..., cg, ks...]
      view = N.reshape(view, [n, groups, cg] ++ outs ++ ks, w)
      o_axes = Enum.to_list(3..(2 + sp)//1)
      k_axes = Enum.to_list((3 + sp)..(2 + 2 * sp)//1)
      view = N.transpose(view, [1, 0] ++ o_axes ++ [2] ++ k_axes, w)
      cols = N.reshape(view, [groups, n * pout, cg * pk], w)

      kmat = N.reshape(kk, [groups, og, cg * pk], w)
      kmat = N.transpose(kmat, [0, 2, 1], w)

      y = LinAlg.matmul(cols, kmat, type, w)
      # [g, n * pout, og] -> [n, g, og, outs...]
      y = N.reshape(y, [groups, n] ++ outs ++ [og], w)
      y = N.transpose(y, [1, 0, 2 + sp] ++ Enum.to_list(2..(1 + sp)//1), w)
      N.reshape(y, [n, o] ++ outs, w)
    end
  end
end

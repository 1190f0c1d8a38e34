if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.MX do
    @moduledoc false
    # The MLX ops Emily.Backend uses, over Emily.Native, with the argument order the
    # backend code reads best in. Every function takes the worker last.

    alias Emily.Native, as: N

    for name <- N.__family__(:unary) do
      defdelegate unquote(name)(a, w), to: N
    end

    for name <- N.__family__(:binary) do
      defdelegate unquote(name)(a, b, w), to: N
    end

    defdelegate dtype(a), to: N
    defdelegate shape(a), to: N

    defdelegate astype(a, dtype, w), to: N
    defdelegate view(a, dtype, w), to: N
    def contiguous(a, w), do: N.contiguous(a, false, w)
    defdelegate eye(n, m, k, dtype, w), to: N
    defdelegate arange(start, stop, step, dtype, w), to: N

    defdelegate reshape(a, shape, w), to: N
    defdelegate transpose(a, axes, w), to: N
    defdelegate squeeze(a, axes, w), to: N
    defdelegate expand_dims(a, axes, w), to: N
    defdelegate broadcast_to(a, shape, w), to: N
    def flip(a, axis, w), do: N.flip(a, [axis], w)
    def pad(a, axes, low, high, value, w), do: N.pad(a, axes, low, high, value, :constant, w)
    defdelegate concatenate(arrays, axis, w), to: N
    defdelegate stack(arrays, axis, w), to: N
    defdelegate unstack(a, axis, w), to: N
    defdelegate slice(a, start, stop, strides, w), to: N
    defdelegate slice_dynamic(a, start, axes, sizes, w), to: N
    defdelegate slice_update(src, upd, start, stop, strides, w), to: N
    defdelegate slice_update_dynamic(src, upd, start, axes, w), to: N
    def where(c, x, y, w), do: N.select(c, x, y, w)
    defdelegate as_strided(a, shape, strides, offset, w), to: N
    defdelegate precise_unary(a, op, w), to: N

    for name <- [:sum, :prod, :max, :min, :all, :any] do
      defdelegate unquote(name)(a, axes, keepdims, w), to: N
    end

    defdelegate argmax(a, axis, keepdims, w), to: N
    defdelegate argmin(a, axis, keepdims, w), to: N

    for name <- [:cumsum, :cumprod, :cummax, :cummin] do
      defdelegate unquote(name)(a, axis, reverse, inclusive, w), to: N
    end

    defdelegate sort(a, axis, w), to: N
    defdelegate argsort(a, axis, w), to: N

    def take(a, indices, axis, w), do: N.take_axis(a, indices, axis, w)
    defdelegate take_along_axis(a, indices, axis, w), to: N
    defdelegate gather(a, indices, axes, slice_sizes, w), to: N
    defdelegate scatter(a, indices, updates, axes, w), to: N
    defdelegate scatter_add(a, indices, updates, axes, w), to: N

    defdelegate matmul(a, b, w), to: N

    defdelegate conv_general(x, k, stride, lo, hi, kdil, idil, groups, flip, w), to: N

    defdelegate cholesky(a, upper, w), to: N
    defdelegate qr(a, w), to: N
    def svd(a, w), do: N.svd(a, true, w)
    def eigh(a, w), do: N.eigh(a, false, w)
    defdelegate lu(a, w), to: N
    defdelegate solve(a, b, w), to: N
    defdelegate solve_triangular(a, b, upper, w), to: N

    for name <- [:fft, :ifft, :rfft, :irfft] do
      def unquote(name)(a, n, axis, w), do: N.unquote(name)(a, n, axis, :backward, w)
    end

    def fftn(a, n, axes, w), do: N.fftn(a, n, axes, :backward, w)

    defdelegate rms_norm(x, weight, eps, w), to: N
    defdelegate layer_norm(x, weight, bias, eps, w), to: N
    defdelegate scaled_dot_product_attention(q, k, v, scale, causal, mask, sinks, w), to: N
    def ifftn(a, n, axes, w), do: N.ifftn(a, n, axes, :backward, w)
  end
end

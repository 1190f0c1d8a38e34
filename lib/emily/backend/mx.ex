if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.MX do
    @moduledoc false
    # The few MLX ops Emily.Backend calls with fixed or reshaped arguments; everything else
    # it calls on Emily.Native directly. Every function takes the worker last.

    alias Emily.Native, as: N

    def contiguous(a, w), do: N.contiguous(a, false, w)
    def flip(a, axis, w), do: N.flip(a, [axis], w)
    def pad(a, axes, low, high, value, w), do: N.pad(a, axes, low, high, value, :constant, w)
    def where(c, x, y, w), do: N.select(c, x, y, w)
    def take(a, indices, axis, w), do: N.take_axis(a, indices, axis, w)
    def svd(a, w), do: N.svd(a, true, w)
    def eigh(a, w), do: N.eigh(a, false, w)

    for name <- [:fft, :ifft, :rfft, :irfft] do
      def unquote(name)(a, n, axis, w), do: N.unquote(name)(a, n, axis, :backward, w)
    end

    def fftn(a, n, axes, w), do: N.fftn(a, n, axes, :backward, w)
    def ifftn(a, n, axes, w), do: N.ifftn(a, n, axes, :backward, w)
  end
end

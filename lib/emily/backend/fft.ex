if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.FFT do
    @moduledoc false
    # Nx's fft and ifft, and Nx's eps rule (shared with the FFT blocks).

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, MX}
    alias Nx.Tensor, as: T

    import Core, only: [on_device: 3, ref: 3]

    ## FFT

    def fft(%T{type: type} = out, t, opts, kind) do
      on_device([t], out, fn w ->
        x = ref(t, type, w)
        n = opts[:length]
        axis = opts[:axis]
        r = if kind == :fft, do: MX.fft(x, n, axis, w), else: MX.ifft(x, n, axis, w)
        apply_eps(r, opts[:eps], w)
      end)
    end

    @doc "Zeroes the real and imaginary parts whose magnitude is at most `eps` (Nx's fft)."
    def apply_eps(r, nil, _w), do: r

    def apply_eps(r, eps, w) do
      case N.dtype(r) do
        :c64 ->
          re = zero_small(N.real(r, w), eps, w)
          im = zero_small(N.imag(r, w), eps, w)
          i = Core.scalar(Complex.new(0.0, 1.0), {:c, 64}, w)
          N.add(N.astype(re, :c64, w), N.multiply(N.astype(im, :c64, w), i, w), w)

        _ ->
          zero_small(r, eps, w)
      end
    end

    defp zero_small(x, eps, w) do
      dt = N.dtype(x)
      small = N.less_equal(N.abs(x, w), Core.mx_scalar(eps, dt, w), w)
      MX.where(small, Core.mx_scalar(0, dt, w), x, w)
    end
  end
end

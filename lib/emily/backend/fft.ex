if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.FFT do
    @moduledoc false
    # Nx's fft and ifft, and Nx's eps rule (shared with the FFT blocks).

    alias Emily.Backend.{Core, MX}
    alias Nx.Tensor, as: T

    import Core, only: [wrap: 3, ref: 3, device_of: 1, worker: 1]

    ## FFT

    def fft(%T{type: type} = out, t, opts, kind) do
      device = device_of([t])
      w = worker(device)
      x = ref(t, type, w)
      n = opts[:length]
      axis = opts[:axis]
      r = if kind == :fft, do: MX.fft(x, n, axis, w), else: MX.ifft(x, n, axis, w)
      wrap(apply_eps(r, opts[:eps], w), out, device)
    end

    @doc "Zeroes the real and imaginary parts whose magnitude is at most `eps` (Nx's fft)."
    def apply_eps(r, nil, _w), do: r

    def apply_eps(r, eps, w) do
      case MX.dtype(r) do
        :c64 ->
          re = zero_small(MX.real(r, w), eps, w)
          im = zero_small(MX.imag(r, w), eps, w)
          i = Core.scalar(Complex.new(0.0, 1.0), {:c, 64}, w)
          MX.add(MX.astype(re, :c64, w), MX.multiply(MX.astype(im, :c64, w), i, w), w)

        _ ->
          zero_small(r, eps, w)
      end
    end

    defp zero_small(x, eps, w) do
      dt = MX.dtype(x)
      small = MX.less_equal(MX.abs(x, w), Core.mx_scalar(eps, dt, w), w)
      MX.where(small, Core.mx_scalar(0, dt, w), x, w)
    end
  end
end

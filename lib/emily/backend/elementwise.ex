if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Elementwise do
    @moduledoc false
    # Element-wise ops that need more than one MLX op to follow Nx's semantics: integer
    # division and remainder, cbrt, rounding, complex tests, bit counts.

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, MX}

    ## Element-wise helpers

    @doc """
    Remainder with the sign of the dividend (Elixir's rem/2, C's fmod). Integer division
    by zero, which raises on Nx.BinaryBackend, gives the dividend (and never reaches the
    CPU's divide instruction: MIN / -1 and x / 0 trap there).
    """
    def trunc_remainder(a, b, type, w) do
      if Core.int?(type) do
        {safe, zero, _minus_one} = safe_divisor(b, type, w)
        r = python_to_trunc_remainder(N.remainder(a, safe, w), a, safe, type, w)
        MX.where(zero, a, r, w)
      else
        python_to_trunc_remainder(N.remainder(a, b, w), a, b, type, w)
      end
    end

    defp python_to_trunc_remainder(r, a, b, type, w) do
      if Core.unsigned?(type) do
        r
      else
        zero = Core.scalar(0, type, w)
        nz = N.not_equal(r, zero, w)
        differ = N.not_equal(N.less(r, zero, w), N.less(a, zero, w), w)
        MX.where(N.logical_and(nz, differ, w), N.subtract(r, b, w), r, w)
      end
    end

    @doc """
    Integer division truncating toward zero (Elixir's div/2). Division by zero gives 0
    (Nx.BinaryBackend raises); MIN / -1 wraps to MIN; neither reaches the CPU's divide
    instruction, which traps on them.
    """
    def trunc_quotient(a, b, type, w) do
      {safe, zero, minus_one} = safe_divisor(b, type, w)
      q = N.floor_divide(a, safe, w)

      q =
        if Core.unsigned?(type) do
          q
        else
          zero_s = Core.scalar(0, type, w)
          r = N.remainder(a, safe, w)
          nz = N.not_equal(r, zero_s, w)
          differ = N.not_equal(N.less(a, zero_s, w), N.less(safe, zero_s, w), w)
          fix = N.logical_and(nz, differ, w)
          MX.where(fix, N.add(q, Core.scalar(1, type, w), w), q, w)
        end

      q = if minus_one, do: MX.where(minus_one, N.negative(a, w), q, w), else: q
      MX.where(zero, Core.scalar(0, type, w), q, w)
    end

    # The divisor with 0 (and -1 for signed types) replaced by 1, and the masks of those.
    defp safe_divisor(b, type, w) do
      zero = N.equal(b, Core.scalar(0, type, w), w)

      if Core.signed?(type) do
        minus_one = N.equal(b, Core.scalar(-1, type, w), w)
        bad = N.logical_or(zero, minus_one, w)
        {MX.where(bad, Core.scalar(1, type, w), b, w), zero, minus_one}
      else
        {MX.where(zero, Core.scalar(1, type, w), b, w), zero, nil}
      end
    end

    @doc "Cube root (MLX has none): sign(x) * |x|^(1/3) for reals, x^(1/3) for complex."
    def cbrt(x, type, w) do
      third = Core.scalar(1 / 3, type, w)

      if Core.complex?(type) do
        N.power(x, third, w)
      else
        N.multiply(N.sign(x, w), N.power(N.abs(x, w), third, w), w)
      end
    end

    @doc "Rounds half away from zero (Erlang's round/1)."
    def round_half_away(x, type, w) do
      zero = Core.scalar(0, type, w)
      t = MX.where(N.less(x, zero, w), N.ceil(x, w), N.floor(x, w), w)
      d = N.abs(N.subtract(x, t, w), w)
      up = N.greater_equal(d, Core.scalar(0.5, type, w), w)
      MX.where(up, N.add(t, N.sign(x, w), w), t, w)
    end

    @doc "isnan/isinf that treats a complex number as NaN/Inf when either part is."
    def complex_test(x, type, fun, w) do
      if Core.complex?(type) do
        N.logical_or(fun.(N.real(x, w), w), fun.(N.imag(x, w), w), w)
      else
        fun.(x, w)
      end
    end

    # The unsigned MLX dtype of the same width as the storage of `type`, and its bits.
    defp unsigned_view({_, b} = type) do
      storage_bits = if Core.narrow?(type), do: 8, else: b
      {:"u#{storage_bits}", storage_bits}
    end

    defp as_unsigned(x, type, w) do
      {ud, _} = unsigned_view(type)
      u = if N.dtype(x) == ud, do: x, else: N.view(x, ud, w)

      if Core.narrow?(type) do
        {_, b} = type
        N.bitwise_and(u, Core.mx_scalar(Bitwise.bsl(1, b) - 1, ud, w), w)
      else
        u
      end
    end

    defp pattern(byte, bits),
      do: Enum.reduce(1..div(bits, 8), 0, fn _, acc -> acc * 256 + byte end)

    @doc "Number of set bits of each element (SWAR bit counting)."
    def population_count(x, type, w) do
      {ud, bits} = unsigned_view(type)
      c = fn v -> Core.mx_scalar(v, ud, w) end
      u = as_unsigned(x, type, w)
      sh = fn v, n -> N.right_shift(v, c.(n), w) end
      and_ = fn v, m -> N.bitwise_and(v, m, w) end
      m1 = c.(pattern(0x55, bits))
      m2 = c.(pattern(0x33, bits))
      m4 = c.(pattern(0x0F, bits))
      u = N.subtract(u, and_.(sh.(u, 1), m1), w)
      u = N.add(and_.(u, m2), and_.(sh.(u, 2), m2), w)
      u = and_.(N.add(u, sh.(u, 4), w), m4)

      u =
        if bits > 8 do
          sh.(N.multiply(u, c.(pattern(0x01, bits)), w), bits - 8)
        else
          u
        end

      N.astype(u, Core.dtype(type), w)
    end

    @doc "Number of leading zero bits of each element (binary search over shifts)."
    def count_leading_zeros(x, type, w) do
      {ud, bits} = unsigned_view(type)
      c = fn v -> Core.mx_scalar(v, ud, w) end
      u = as_unsigned(x, type, w)
      zero = c.(0)

      {n, _} =
        Stream.iterate(div(bits, 2), &div(&1, 2))
        |> Enum.take_while(&(&1 > 0))
        |> Enum.reduce({c.(0), u}, fn s, {n, v} ->
          top_zero = N.equal(N.right_shift(v, c.(bits - s), w), zero, w)
          n = MX.where(top_zero, N.add(n, c.(s), w), n, w)
          v = MX.where(top_zero, N.left_shift(v, c.(s), w), v, w)
          {n, v}
        end)

      n = MX.where(N.equal(u, zero, w), c.(bits), n, w)

      n =
        case type do
          {_, b} when b < bits -> N.subtract(n, c.(bits - b), w)
          _ -> n
        end

      N.astype(n, Core.dtype(type), w)
    end
  end
end

if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Elementwise do
    @moduledoc false
    # Element-wise ops that need more than one MLX op to follow Nx's semantics: integer
    # division and remainder, cbrt, rounding, complex tests, bit counts.

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
        r = python_to_trunc_remainder(MX.remainder(a, safe, w), a, safe, type, w)
        MX.where(zero, a, r, w)
      else
        python_to_trunc_remainder(MX.remainder(a, b, w), a, b, type, w)
      end
    end

    defp python_to_trunc_remainder(r, a, b, type, w) do
      if Core.unsigned?(type) do
        r
      else
        zero = Core.scalar(0, type, w)
        nz = MX.not_equal(r, zero, w)
        differ = MX.not_equal(MX.less(r, zero, w), MX.less(a, zero, w), w)
        MX.where(MX.logical_and(nz, differ, w), MX.subtract(r, b, w), r, w)
      end
    end

    @doc """
    Integer division truncating toward zero (Elixir's div/2). Division by zero gives 0
    (Nx.BinaryBackend raises); MIN / -1 wraps to MIN; neither reaches the CPU's divide
    instruction, which traps on them.
    """
    def trunc_quotient(a, b, type, w) do
      {safe, zero, minus_one} = safe_divisor(b, type, w)
      q = MX.floor_divide(a, safe, w)

      q =
        if Core.unsigned?(type) do
          q
        else
          zero_s = Core.scalar(0, type, w)
          r = MX.remainder(a, safe, w)
          nz = MX.not_equal(r, zero_s, w)
          differ = MX.not_equal(MX.less(a, zero_s, w), MX.less(safe, zero_s, w), w)
          fix = MX.logical_and(nz, differ, w)
          MX.where(fix, MX.add(q, Core.scalar(1, type, w), w), q, w)
        end

      q = if minus_one, do: MX.where(minus_one, MX.negative(a, w), q, w), else: q
      MX.where(zero, Core.scalar(0, type, w), q, w)
    end

    # The divisor with 0 (and -1 for signed types) replaced by 1, and the masks of those.
    defp safe_divisor(b, type, w) do
      zero = MX.equal(b, Core.scalar(0, type, w), w)

      if Core.signed?(type) do
        minus_one = MX.equal(b, Core.scalar(-1, type, w), w)
        bad = MX.logical_or(zero, minus_one, w)
        {MX.where(bad, Core.scalar(1, type, w), b, w), zero, minus_one}
      else
        {MX.where(zero, Core.scalar(1, type, w), b, w), zero, nil}
      end
    end

    @doc "Cube root (MLX has none): sign(x) * |x|^(1/3) for reals, x^(1/3) for complex."
    def cbrt(x, type, w) do
      third = Core.scalar(1 / 3, type, w)

      if Core.complex?(type) do
        MX.power(x, third, w)
      else
        MX.multiply(MX.sign(x, w), MX.power(MX.abs(x, w), third, w), w)
      end
    end

    @doc "Rounds half away from zero (Erlang's round/1)."
    def round_half_away(x, type, w) do
      zero = Core.scalar(0, type, w)
      t = MX.where(MX.less(x, zero, w), MX.ceil(x, w), MX.floor(x, w), w)
      d = MX.abs(MX.subtract(x, t, w), w)
      up = MX.greater_equal(d, Core.scalar(0.5, type, w), w)
      MX.where(up, MX.add(t, MX.sign(x, w), w), t, w)
    end

    @doc "isnan/isinf that treats a complex number as NaN/Inf when either part is."
    def complex_test(x, type, fun, w) do
      if Core.complex?(type) do
        MX.logical_or(fun.(MX.real(x, w), w), fun.(MX.imag(x, w), w), w)
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
      u = if MX.dtype(x) == ud, do: x, else: MX.view(x, ud, w)

      if Core.narrow?(type) do
        {_, b} = type
        MX.bitwise_and(u, Core.mx_scalar(Bitwise.bsl(1, b) - 1, ud, w), w)
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
      sh = fn v, n -> MX.right_shift(v, c.(n), w) end
      and_ = fn v, m -> MX.bitwise_and(v, m, w) end
      m1 = c.(pattern(0x55, bits))
      m2 = c.(pattern(0x33, bits))
      m4 = c.(pattern(0x0F, bits))
      u = MX.subtract(u, and_.(sh.(u, 1), m1), w)
      u = MX.add(and_.(u, m2), and_.(sh.(u, 2), m2), w)
      u = and_.(MX.add(u, sh.(u, 4), w), m4)

      u =
        if bits > 8 do
          sh.(MX.multiply(u, c.(pattern(0x01, bits)), w), bits - 8)
        else
          u
        end

      MX.astype(u, Core.dtype(type), w)
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
          top_zero = MX.equal(MX.right_shift(v, c.(bits - s), w), zero, w)
          n = MX.where(top_zero, MX.add(n, c.(s), w), n, w)
          v = MX.where(top_zero, MX.left_shift(v, c.(s), w), v, w)
          {n, v}
        end)

      n = MX.where(MX.equal(u, zero, w), c.(bits), n, w)

      n =
        case type do
          {_, b} when b < bits -> MX.subtract(n, c.(bits - b), w)
          _ -> n
        end

      MX.astype(n, Core.dtype(type), w)
    end
  end
end

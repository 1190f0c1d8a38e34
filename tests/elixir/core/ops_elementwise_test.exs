defmodule Emily.OpsElementwiseTest do
  # Every op of the unary and binary families (src/ops/unary.ops, binary.ops) against the
  # C library (Erlang's :math) or exact values; the tables must name every declared op.
  use ExUnit.Case, async: true
  import Emily.OpsCase
  alias Emily.Native, as: N

  @x [0.25, 0.5, 1.5, -0.75]
  @unit [0.25, -0.5, 0.75, 0.0]
  @big [1.0, 1.5, 2.0, 10.0]
  @pos [0.25, 0.5, 1.5, 4.0]
  @special [:nan, :infinity, :neg_infinity, 1.0]

  defp f32(values), do: tensor(values, [length(values)], {:f, 32})
  defp s32(values), do: tensor(values, [length(values)], {:s, 32})
  defp bool(values), do: tensor(values, [length(values)], :bool)
  defp c64(values), do: tensor(values, [length(values)], {:c, 64})

  defp map(values, fun), do: Enum.map(values, fun)
  defp b(v), do: if(v, do: 1, else: 0)

  # {op, input tensor, expected values, expected type}
  defp unary_cases do
    sigmoid = fn x -> 1 / (1 + :math.exp(-x)) end
    half_even = fn x -> if abs(x - trunc(x)) == 0.5, do: 2 * round(x / 2), else: round(x) end

    [
      {:abs, f32(@x), map(@x, &abs/1), {:f, 32}},
      {:negative, s32([3, -4, 0]), [-3, 4, 0], {:s, 32}},
      {:sign, f32([-2.5, 0.0, 3.0]), [-1.0, 0.0, 1.0], {:f, 32}},
      {:logical_not, bool([1, 0, 1]), [0, 1, 0], :bool},
      {:bitwise_invert, s32([0, 5, -1]), [-1, -6, 0], {:s, 32}},
      {:floor, f32(@x), map(@x, &Float.floor/1), {:f, 32}},
      {:ceil, f32(@x), map(@x, &Float.ceil/1), {:f, 32}},
      {:round, f32([0.5, 1.5, 2.5, -0.5, 2.25]), map([0.5, 1.5, 2.5, -0.5, 2.25], half_even),
       {:f, 32}},
      {:square, s32([3, -4]), [9, 16], {:s, 32}},
      {:sqrt, f32(@pos), map(@pos, &:math.sqrt/1), {:f, 32}},
      {:rsqrt, f32(@pos), map(@pos, &(1 / :math.sqrt(&1))), {:f, 32}},
      {:reciprocal, f32(@pos), map(@pos, &(1 / &1)), {:f, 32}},
      {:exp, f32(@x), map(@x, &:math.exp/1), {:f, 32}},
      {:expm1, f32([1.0e-6 | @x]), map([1.0e-6 | @x], &(:math.exp(&1) - 1)), {:f, 32}},
      {:log, f32(@pos), map(@pos, &:math.log/1), {:f, 32}},
      {:log1p, f32(@pos), map(@pos, &:math.log(1 + &1)), {:f, 32}},
      {:log2, f32(@pos), map(@pos, &:math.log2/1), {:f, 32}},
      {:log10, f32(@pos), map(@pos, &:math.log10/1), {:f, 32}},
      {:sin, f32(@x), map(@x, &:math.sin/1), {:f, 32}},
      {:cos, f32(@x), map(@x, &:math.cos/1), {:f, 32}},
      {:tan, f32(@x), map(@x, &:math.tan/1), {:f, 32}},
      {:arcsin, f32(@unit), map(@unit, &:math.asin/1), {:f, 32}},
      {:arccos, f32(@unit), map(@unit, &:math.acos/1), {:f, 32}},
      {:arctan, f32(@x), map(@x, &:math.atan/1), {:f, 32}},
      {:sinh, f32(@x), map(@x, &:math.sinh/1), {:f, 32}},
      {:cosh, f32(@x), map(@x, &:math.cosh/1), {:f, 32}},
      {:tanh, f32(@x), map(@x, &:math.tanh/1), {:f, 32}},
      {:arcsinh, f32(@x), map(@x, &:math.asinh/1), {:f, 32}},
      {:arccosh, f32(@big), map(@big, &:math.acosh/1), {:f, 32}},
      {:arctanh, f32(@unit), map(@unit, &:math.atanh/1), {:f, 32}},
      {:sigmoid, f32(@x), map(@x, sigmoid), {:f, 32}},
      {:erf, f32(@x), map(@x, &:math.erf/1), {:f, 32}},
      {:isnan, f32(@special), [1, 0, 0, 0], :bool},
      {:isinf, f32(@special), [0, 1, 1, 0], :bool},
      {:isfinite, f32(@special), [0, 0, 0, 1], :bool},
      {:isposinf, f32(@special), [0, 1, 0, 0], :bool},
      {:isneginf, f32(@special), [0, 0, 1, 0], :bool},
      {:real, c64([{1.0, 2.0}, {-3.0, 0.5}]), [1.0, -3.0], {:f, 32}},
      {:imag, c64([{1.0, 2.0}, {-3.0, 0.5}]), [2.0, 0.5], {:f, 32}},
      {:conjugate, c64([{1.0, 2.0}, {-3.0, 0.5}]), [{1.0, -2.0}, {-3.0, -0.5}], {:c, 64}},
      {:degrees, f32([:math.pi(), 1.0]), [180.0, 180 / :math.pi()], {:f, 32}},
      {:radians, f32([180.0, 90.0]), [:math.pi(), :math.pi() / 2], {:f, 32}},
      {:stop_gradient, f32(@x), @x, {:f, 32}},
      {:copy, s32([1, 2, 3]), [1, 2, 3], {:s, 32}}
    ]
  end

  test "every unary op against the C library or exact values" do
    cases = unary_cases()
    covered = Enum.map(cases, &elem(&1, 0)) ++ [:erfinv]
    assert Enum.sort(covered) == Enum.sort(N.__family__(:unary))

    for {op, input, expected, type} <- cases do
      r = apply(N, op, [input, w()])
      assert Emily.dtype(r) == type, "#{op}: #{inspect(Emily.dtype(r))}"
      assert_values(r, expected)
    end

    # erfinv inverts erf (Erlang's :math has no erfinv)
    r = Emily.Case.read(N.erfinv(f32(@unit), w()))
    Emily.Case.assert_close(Enum.map(r, &:math.erf/1), @unit, 1.0e-5)
  end

  defp binary_cases do
    a = [7.0, -7.5, 2.0, 0.5]
    b = [2.0, 2.0, -3.0, 0.25]
    zip = fn f -> Enum.zip_with(a, b, f) end
    ia = [12, -7, 5, 1]
    ib = [5, 2, 3, 4]
    izip = fn f -> Enum.zip_with(ia, ib, f) end
    fa = f32(a)
    fb = f32(b)
    sa = s32(ia)
    sb = s32(ib)

    [
      {:add, fa, fb, zip.(&(&1 + &2)), {:f, 32}},
      {:subtract, fa, fb, zip.(&(&1 - &2)), {:f, 32}},
      {:multiply, fa, fb, zip.(&(&1 * &2)), {:f, 32}},
      {:divide, fa, fb, zip.(&(&1 / &2)), {:f, 32}},
      {:floor_divide, fa, fb, zip.(&Float.floor(&1 / &2)), {:f, 32}},
      {:remainder, fa, fb, zip.(&(&1 - &2 * Float.floor(&1 / &2))), {:f, 32}},
      {:power, f32([2.0, -3.0, 0.5]), f32([3.0, 2.0, -1.0]), [8.0, 9.0, 2.0], {:f, 32}},
      {:maximum, fa, fb, zip.(&max/2), {:f, 32}},
      {:minimum, fa, fb, zip.(&min/2), {:f, 32}},
      {:arctan2, fa, fb, zip.(&:math.atan2/2), {:f, 32}},
      {:logaddexp, fa, fb, zip.(&:math.log(:math.exp(&1) + :math.exp(&2))), {:f, 32}},
      {:equal, fa, f32([7.0, 1.0, 2.0, 0.0]), [1, 0, 1, 0], :bool},
      {:not_equal, fa, f32([7.0, 1.0, 2.0, 0.0]), [0, 1, 0, 1], :bool},
      {:less, fa, fb, zip.(&b(&1 < &2)), :bool},
      {:less_equal, fa, f32([7.0, 1.0, 1.0, 0.5]), [1, 1, 0, 1], :bool},
      {:greater, fa, fb, zip.(&b(&1 > &2)), :bool},
      {:greater_equal, fa, f32([7.0, 1.0, 1.0, 0.5]), [1, 0, 1, 1], :bool},
      {:logical_and, bool([1, 1, 0, 0]), bool([1, 0, 1, 0]), [1, 0, 0, 0], :bool},
      {:logical_or, bool([1, 1, 0, 0]), bool([1, 0, 1, 0]), [1, 1, 1, 0], :bool},
      {:bitwise_and, sa, sb, izip.(&Bitwise.band/2), {:s, 32}},
      {:bitwise_or, sa, sb, izip.(&Bitwise.bor/2), {:s, 32}},
      {:bitwise_xor, sa, sb, izip.(&Bitwise.bxor/2), {:s, 32}},
      {:left_shift, sa, sb, izip.(&Bitwise.bsl/2), {:s, 32}},
      {:right_shift, sa, sb, izip.(&Bitwise.bsr/2), {:s, 32}}
    ]
  end

  test "every binary op against the C library or exact values" do
    cases = binary_cases()
    assert Enum.sort(Enum.map(cases, &elem(&1, 0))) == Enum.sort(N.__family__(:binary))

    for {op, a, b, expected, type} <- cases do
      r = apply(N, op, [a, b, w()])
      assert Emily.dtype(r) == type, "#{op}: #{inspect(Emily.dtype(r))}"
      assert_values(r, expected)
    end
  end

  test "binary ops broadcast and promote as MLX does" do
    r = N.add(tensor([1, 2, 3], [3, 1], {:s, 32}), tensor([0.5, 1.5], [1, 2], {:f, 32}), w())
    assert_tensor(r, [3, 2], {:f, 32}, [1.5, 2.5, 2.5, 3.5, 3.5, 4.5])
    r = N.multiply(tensor([2], [], {:u, 8}), tensor([3, 4], [2], {:s, 16}), w())
    assert_tensor(r, [2], {:s, 16}, [6, 8])

    assert_raise ArgumentError, ~r/add/, fn ->
      N.add(tensor([1, 2, 3], [3], {:f, 32}), tensor([1, 2], [2], {:f, 32}), w())
    end
  end
end

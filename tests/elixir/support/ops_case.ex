defmodule Emily.OpsCase do
  @moduledoc false
  # Helpers for the op-layer suites (tests/elixir/core/ops_*_test.exs): tensors of any
  # type, and checks of a result's shape, type and values.
  import ExUnit.Assertions

  @types [
    :bool,
    {:u, 8},
    {:u, 16},
    {:u, 32},
    {:u, 64},
    {:s, 8},
    {:s, 16},
    {:s, 32},
    {:s, 64},
    {:f, 16},
    {:bf, 16},
    {:f, 32},
    {:f, 64},
    {:c, 64}
  ]

  @doc "Every type MLX has here."
  def types, do: @types
  @doc "Every type but bool."
  def numeric_types, do: @types -- [:bool]
  @doc "Real numeric types (no bool, no complex)."
  def real_types, do: @types -- [:bool, {:c, 64}]
  def float_types, do: [{:f, 16}, {:bf, 16}, {:f, 32}, {:f, 64}]

  def int_types,
    do: [{:u, 8}, {:u, 16}, {:u, 32}, {:u, 64}, {:s, 8}, {:s, 16}, {:s, 32}, {:s, 64}]

  @doc "The Emily.Native dtype atom of an Nx type."
  def nat(type), do: Emily.Dtype.native_type!(type, :test)

  @doc "The calling process's worker."
  def w, do: Emily.Worker.current()

  @doc "A tensor of `type` from plain values (numbers; {re, im} for complex)."
  def tensor(values, shape, type), do: Emily.Case.t(values, shape, type)

  @doc """
  Asserts `t` has `shape` and `type` and holds `values` (row-major). Floats compare with
  a relative tolerance fitting the type; ints and bools exactly; complex as {re, im}.
  """
  def assert_tensor(t, shape, type, values) do
    assert Emily.shape(t) == shape, "shape: #{inspect(Emily.shape(t))} != #{inspect(shape)}"
    assert Emily.dtype(t) == type, "type: #{inspect(Emily.dtype(t))} != #{inspect(type)}"
    assert_values(t, values)
  end

  @doc "Asserts `t` holds `values` (see assert_tensor/4)."
  def assert_values(t, values) do
    got = Emily.Case.read(t)
    type = Emily.dtype(t)
    assert length(got) == length(values), "#{inspect(got)} != #{inspect(values)}"

    Enum.zip(got, values)
    |> Enum.each(fn {g, e} ->
      assert close?(g, e, type), "#{inspect(got)} != #{inspect(values)} (#{inspect(type)})"
    end)
  end

  defp tol({:f, 16}), do: 2.0e-3
  defp tol({:bf, 16}), do: 1.6e-2
  defp tol({:f, 32}), do: 1.0e-5
  defp tol({:c, 64}), do: 1.0e-5
  defp tol({:f, 64}), do: 1.0e-12
  defp tol(_), do: 0

  def close?(g, e, :bool), do: g == e in [true, 1]
  def close?({gr, gi}, {er, ei}, {:c, 64} = t), do: close?(gr, er, t) and close?(gi, ei, t)
  def close?({gr, gi}, e, {:c, 64} = t) when is_number(e), do: close?(gr, e, t) and gi == 0.0
  def close?(g, e, _) when is_atom(g) or is_atom(e), do: g == e

  def close?(g, e, type) do
    case tol(type) do
      0 -> g == e and is_integer(g)
      tol -> abs(g - e) <= tol * max(1.0, abs(e))
    end
  end
end

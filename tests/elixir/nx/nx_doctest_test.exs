if Code.ensure_loaded?(Nx) do
  defmodule Emily.NxDoctestTest do
    @moduledoc """
    Nx's doctests on Emily.Backend, exact match. Exclusions, each with its reason and a
    replacement that compares with a tolerance:

      * `log1p/1` - Nx.BinaryBackend computes log(1 + x) (rounding 1 + x first); Emily's
        float64 log1p is the C library's, 1 ulp apart on the doctest's [1, 2, 3].
    """
    use ExUnit.Case, async: true
    @moduletag :nx

    @rounding [log1p: 1]

    setup do
      Nx.default_backend(Emily.Backend)
      :ok
    end

    doctest Nx, except: @rounding

    for {name, arity} <- @rounding do
      test "#{name}/#{arity} doctest examples match BinaryBackend with a tolerance" do
        n =
          Emily.DoctestReplay.replay(Nx, unquote(name), unquote(arity),
            atol: 1.0e-12,
            rtol: 1.0e-12
          )

        assert n > 0
      end
    end
  end
end

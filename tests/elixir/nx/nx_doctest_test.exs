if Code.ensure_loaded?(Nx) do
  defmodule Emily.NxDoctestTest do
    @moduledoc """
    Nx's doctests on Emily.Backend, exact match. Exclusions, each with its reason and a
    replacement that compares with a tolerance:

      * `log1p/1` - Nx.BinaryBackend computes log(1 + x) (rounding 1 + x first); Emily's
        float64 log1p is the C library's, 1 ulp apart on the doctest's [1, 2, 3].
      * on a GPU (`EMILY_DEFAULT_DEVICE=gpu`) also `logsumexp/2`, `atan2/2`, `phase/1`:
        CUDA's float32 exp, log and atan2 round the last digit differently from the C
        library's (6.331412 for 6.3314114).
    """
    use ExUnit.Case, async: true
    @moduletag :nx

    @rounding [log1p: 1] ++
                if(Emily.Worker.default_device() == :gpu,
                  do: [logsumexp: 2, atan2: 2, phase: 1],
                  else: []
                )

    setup do
      Nx.default_backend(Emily.Backend)
      :ok
    end

    doctest Nx, except: @rounding

    for {name, arity} <- @rounding do
      test "#{name}/#{arity} doctest examples match BinaryBackend with a tolerance" do
        n =
          Emily.DoctestReplay.replay(Nx, unquote(name), unquote(arity),
            atol: if(unquote(name) == :log1p, do: 1.0e-12, else: 1.0e-6),
            rtol: if(unquote(name) == :log1p, do: 1.0e-12, else: 1.0e-6)
          )

        assert n > 0
      end
    end
  end
end

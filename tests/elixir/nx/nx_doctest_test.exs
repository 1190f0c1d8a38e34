if Code.ensure_loaded?(Nx) do
  defmodule Emily.NxDoctestTest do
    use ExUnit.Case, async: true
    @moduletag :nx

    setup do
      Nx.default_backend(Emily.Backend)
      :ok
    end

    doctest Nx
  end
end

if Code.ensure_loaded?(Nx) do
  defmodule Emily.Prop do
    @moduledoc false
    # Small property-testing helpers (StreamData is Hex-only): random shapes, types and
    # tensors, and `check/3`, which runs a function of Nx ops on Nx.BinaryBackend and on
    # Emily.Backend with the same random inputs and compares the results.
    #
    # Randomness is seeded from ExUnit's seed (`:rand` is seeded per test by ExUnit), so a
    # failure reproduces with `mix test --seed N`. The failing inputs are printed.

    import ExUnit.Assertions

    @counter {__MODULE__, :cases}

    ## Counting

    def count_cases(n) do
      ref =
        case :persistent_term.get(@counter, nil) do
          nil ->
            r = :counters.new(1, [:atomics])
            :persistent_term.put(@counter, r)
            r

          r ->
            r
        end

      :counters.add(ref, 1, n)
    end

    def total_cases do
      case :persistent_term.get(@counter, nil) do
        nil -> 0
        r -> :counters.get(r, 1)
      end
    end

    ## Generators

    @int_types [{:s, 8}, {:s, 16}, {:s, 32}, {:s, 64}, {:u, 8}, {:u, 16}, {:u, 32}, {:u, 64}]
    @float_types [{:f, 16}, {:bf, 16}, {:f, 32}, {:f, 64}]
    @narrow_types [{:s, 2}, {:s, 4}, {:u, 2}, {:u, 4}, {:f, 8}, {:f8_e4m3fn, 8}]

    def int_types, do: @int_types
    def float_types, do: @float_types
    def narrow_types, do: @narrow_types
    def all_types, do: @int_types ++ @float_types ++ [{:c, 64}]
    def real_types, do: @int_types ++ @float_types

    def pick(list), do: Enum.random(list)
    def int(lo, hi), do: lo + :rand.uniform(hi - lo + 1) - 1
    def bool, do: :rand.uniform(2) == 1

    @doc "A random shape of rank `min_rank..max_rank`, dims in `min_dim..max_dim`."
    def shape(opts \\ []) do
      rank = int(Keyword.get(opts, :min_rank, 0), Keyword.get(opts, :max_rank, 3))
      lo = Keyword.get(opts, :min_dim, 1)
      hi = Keyword.get(opts, :max_dim, 4)
      # Nx 0.13 rejects zero-sized dimensions ("Each dimension must be a positive
      # integer"), so there are none to generate; scalars (rank 0) are.
      dims = for _ <- 1..rank//1, do: int(lo, hi)
      List.to_tuple(dims)
    end

    @doc "A random value of `type` (`specials: true` mixes in NaN, infinities and -0.0)."
    def value(type, opts \\ []) do
      specials = Keyword.get(opts, :specials, false)

      case type do
        {:u, b} ->
          {lo, hi} = Keyword.get(opts, :range, {0, Bitwise.bsl(1, b) - 1})
          int(max(lo, 0), min(hi, Bitwise.bsl(1, b) - 1))

        {:s, b} ->
          lim = Bitwise.bsl(1, b - 1)
          {lo, hi} = Keyword.get(opts, :range, {-lim, lim - 1})
          int(max(lo, -lim), min(hi, lim - 1))

        {:c, _} ->
          Complex.new(value({:f, 32}, opts), value({:f, 32}, opts))

        _float ->
          if specials and :rand.uniform(6) == 1 do
            pick([:nan, :infinity, :neg_infinity, -0.0, 0.0])
          else
            {lo, hi} = Keyword.get(opts, :range, {-10, 10})
            v = lo + :rand.uniform() * (hi - lo)
            # `integers: true`: whole numbers only (many ties)
            v = if Keyword.get(opts, :integers, false), do: 1.0 * round(v), else: v
            # some exact halves (ties for rounding), kept inside the range
            h = Float.round(v * 2) / 2
            if :rand.uniform(4) == 1 and h >= lo and h <= hi and h != 0, do: h, else: v
          end
      end
    end

    @doc "A random Nx.BinaryBackend tensor of `shape` and `type`."
    def tensor(shape, type, opts \\ []) do
      n = Tuple.product(shape)
      values = for _ <- 1..n//1, do: value(type, opts)

      values |> Nx.tensor(type: type, backend: Nx.BinaryBackend) |> Nx.reshape(shape)
    end

    @doc "A random subset of the axes of a shape (possibly empty when allow_empty)."
    def axes(shape, allow_empty \\ true) do
      all = Enum.to_list(0..(tuple_size(shape) - 1)//1)
      sub = Enum.filter(all, fn _ -> bool() end)
      if sub == [] and not allow_empty and all != [], do: [pick(all)], else: Enum.shuffle(sub)
    end

    ## Checking

    @doc """
    Runs `fun` `n` times: `gen.()` returns a list of arguments (tensors on
    Nx.BinaryBackend, other terms as they are); `op.(args)` is evaluated with the tensors
    on each backend (and that backend as default) and the results compared.

    Options: `:atol`, `:rtol` (override the per-type tolerance), `:type_tolerance` (a map
    of type to `{atol, rtol}`, over both).

    `EMILY_PROP_TRACE=1` prints each case's arguments (types and shapes) to stderr before
    it runs, so that the last line before a hang names the case.
    """
    def check(n, gen, op, opts \\ []) do
      trace? = System.get_env("EMILY_PROP_TRACE") == "1"

      for _ <- 1..n do
        args = gen.()
        if trace?, do: IO.puts(:stderr, "prop case: " <> Enum.map_join(args, " ", &describe/1))
        expected = run(op, args, Nx.BinaryBackend)
        actual = run(op, Enum.map(args, &to_emily/1), Emily.Backend)
        compare!(actual, expected, opts, args)
      end

      count_cases(n)
      n
    end

    defp describe(%Nx.Tensor{type: {k, b}, shape: s}), do: "#{k}#{b}#{inspect(Tuple.to_list(s))}"
    defp describe(other), do: inspect(other, limit: 5)

    defp to_emily(%Nx.Tensor{} = t), do: Nx.backend_copy(t, Emily.Backend)
    defp to_emily(list) when is_list(list), do: Enum.map(list, &to_emily/1)
    defp to_emily(other), do: other

    defp run(op, args, backend) do
      previous = Nx.default_backend(backend)

      try do
        {:ok, op.(args)}
      rescue
        e -> {:raise, e}
      after
        Nx.default_backend(previous)
      end
    end

    defp compare!({:raise, e1}, {:raise, e2}, _opts, _args) do
      assert e1.__struct__ == e2.__struct__
    end

    defp compare!({:ok, a}, {:ok, e}, opts, args) do
      close!(a, e, opts, args)
    end

    defp compare!(a, e, _opts, args) do
      flunk("""
      one backend raised:
        Emily: #{inspect(a, limit: 20)}
        BinaryBackend: #{inspect(e, limit: 20)}
        args: #{inspect(args, limit: :infinity)}
      """)
    end

    def close!(%Nx.Tensor{} = a, %Nx.Tensor{} = e, opts, args) do
      assert match?(%Emily.Backend{}, a.data), "result not on Emily.Backend: #{inspect(a.data)}"
      a = Nx.backend_copy(a, Nx.BinaryBackend)

      assert {a.shape, a.type} == {e.shape, e.type},
             "shape/type mismatch: #{inspect({a.shape, a.type})} vs #{inspect({e.shape, e.type})}\nargs: #{inspect(args, limit: :infinity)}"

      {atol, rtol} = tolerance(e.type, opts)

      ok =
        if Nx.size(e) == 0 do
          true
        else
          case e.type do
            {k, _} when k in [:s, :u] ->
              Nx.to_binary(a) == Nx.to_binary(e)

            _ ->
              Nx.all_close(a, e, atol: atol, rtol: rtol, equal_nan: true) |> Nx.to_number() == 1
          end
        end

      assert ok, """
      results differ (atol #{atol}, rtol #{rtol})
        Emily:         #{inspect(a, limit: :infinity)}
        BinaryBackend: #{inspect(e, limit: :infinity)}
        args: #{inspect(args, limit: :infinity)}
      """
    end

    def close!(a, e, opts, args) when is_tuple(a) and is_tuple(e) do
      assert tuple_size(a) == tuple_size(e)

      Enum.zip(Tuple.to_list(a), Tuple.to_list(e))
      |> Enum.each(fn {x, y} -> close!(x, y, opts, args) end)
    end

    def close!(a, e, opts, args) when is_list(a) and is_list(e) do
      assert length(a) == length(e)
      Enum.zip(a, e) |> Enum.each(fn {x, y} -> close!(x, y, opts, args) end)
    end

    def close!(a, e, _opts, args),
      do: assert(a == e, "#{inspect(a)} vs #{inspect(e)}\nargs: #{inspect(args)}")

    defp tolerance(type, opts) do
      default =
        case type do
          {:f, 64} -> {1.0e-12, 1.0e-12}
          {:f, 32} -> {1.0e-5, 1.0e-5}
          {:c, 64} -> {1.0e-5, 1.0e-5}
          {:f, 16} -> {1.0e-2, 1.0e-2}
          {:bf, 16} -> {2.0e-2, 2.0e-2}
          {:f, 8} -> {0.0, 0.13}
          {:f8_e4m3fn, 8} -> {0.0, 0.07}
          _ -> {0, 0}
        end

      case Keyword.get(opts, :type_tolerance, %{}) do
        %{^type => tol} ->
          tol

        _ ->
          {Keyword.get(opts, :atol, elem(default, 0)), Keyword.get(opts, :rtol, elem(default, 1))}
      end
    end
  end
end

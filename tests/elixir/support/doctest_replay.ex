if Code.ensure_loaded?(Nx) do
  defmodule Emily.DoctestReplay do
    @moduledoc false
    # Replays the doctest examples of chosen functions on Emily.Backend and on
    # Nx.BinaryBackend and compares every result that the doctest checks with a tolerance
    # (all_close), for doctests excluded from the exact-match doctest run because of
    # rounding. An example that raises must raise the same exception on both.

    import ExUnit.Assertions

    @doc "The doctest examples of `module`'s `name/arity`: a list of tests, each a list of {code, expected}."
    def examples(module, name, arity) do
      {:docs_v1, _, _, _, _, _, docs} = Code.fetch_docs(module)

      doc =
        Enum.find_value(docs, fn
          {{:function, ^name, ^arity}, _, _, %{"en" => doc}, _} -> doc
          _ -> nil
        end) || raise "no docs for #{inspect(module)}.#{name}/#{arity}"

      parse(doc)
    end

    defp parse(doc) do
      doc
      |> String.split("\n")
      |> Enum.map(&String.trim/1)
      |> chunk_tests()
    end

    # Splits lines into tests (separated by blank lines outside code), each a list of
    # {code, expected}.
    defp chunk_tests(lines) do
      {tests, current, _} =
        Enum.reduce(lines, {[], [], nil}, fn line, {tests, cur, mode} ->
          cond do
            String.starts_with?(line, "iex>") or Regex.match?(~r/^iex\(\d+\)>/, line) ->
              code = Regex.replace(~r/^iex(\(\d+\))?>\s?/, line, "")
              {tests, [{code, ""} | cur], :code}

            String.starts_with?(line, "...>") and mode == :code ->
              [{code, exp} | rest] = cur
              {tests, [{code <> "\n" <> continuation(line), exp} | rest], :code}

            line == "" ->
              if cur == [], do: {tests, [], nil}, else: {[Enum.reverse(cur) | tests], [], nil}

            mode in [:code, :expected] ->
              [{code, exp} | rest] = cur

              {tests, [{code, if(exp == "", do: line, else: exp <> "\n" <> line)} | rest],
               :expected}

            true ->
              {tests, cur, mode}
          end
        end)

      tests = if current == [], do: tests, else: [Enum.reverse(current) | tests]
      Enum.reverse(tests)
    end

    defp continuation(line) do
      case line do
        "...> " <> rest -> rest
        "...>" <> rest -> rest
      end
    end

    @doc """
    Runs every example of `name/arity` on both backends and asserts the checked results
    are close. Returns the number of compared results.
    """
    def replay(module, name, arity, opts \\ []) do
      atol = Keyword.get(opts, :atol, 1.0e-4)
      rtol = Keyword.get(opts, :rtol, 1.0e-4)

      for test <- examples(module, name, arity), reduce: 0 do
        count ->
          emily = run(test, Emily.Backend)
          binary = run(test, Nx.BinaryBackend)

          Enum.zip([test, emily, binary])
          |> Enum.reduce(count, fn {{code, expected}, e, b}, count ->
            if expected == "" do
              count
            else
              compare!(e, b, atol, rtol, "#{inspect(module)}.#{name}/#{arity}: #{code}")
              count + 1
            end
          end)
      end
    end

    defp run(test, backend) do
      previous = Nx.default_backend(backend)

      try do
        {results, _} =
          Enum.map_reduce(test, [], fn {code, _}, binding ->
            try do
              {value, binding} = Code.eval_string(code, binding)
              {{:ok, value}, binding}
            rescue
              e -> {{:raise, e.__struct__}, binding}
            end
          end)

        results
      after
        Nx.default_backend(previous)
      end
    end

    defp compare!({:raise, m}, {:raise, m}, _, _, _), do: :ok

    defp compare!({:ok, e}, {:ok, b}, atol, rtol, what), do: close!(e, b, atol, rtol, what)

    defp compare!(e, b, _, _, what) do
      flunk("#{what}\nEmily: #{inspect(e)}\nBinaryBackend: #{inspect(b)}")
    end

    defp close!(%Nx.Tensor{} = e, %Nx.Tensor{} = b, atol, rtol, what) do
      e = e |> Nx.devectorize(keep_names: false) |> Nx.backend_copy(Nx.BinaryBackend)
      b = Nx.devectorize(b, keep_names: false)
      assert e.shape == b.shape and e.type == b.type, "#{what}\n#{inspect(e)}\n#{inspect(b)}"

      ok =
        Nx.all_close(e, b, atol: atol, rtol: rtol, equal_nan: true)
        |> Nx.backend_copy(Nx.BinaryBackend)
        |> Nx.to_number()

      assert ok == 1, "#{what}\nEmily: #{inspect(e)}\nBinaryBackend: #{inspect(b)}"
    end

    defp close!(e, b, atol, rtol, what) when is_tuple(e) and is_tuple(b) do
      Enum.zip(Tuple.to_list(e), Tuple.to_list(b))
      |> Enum.each(fn {x, y} -> close!(x, y, atol, rtol, what) end)
    end

    defp close!(e, b, atol, rtol, what) when is_list(e) and is_list(b) do
      assert length(e) == length(b), what
      Enum.zip(e, b) |> Enum.each(fn {x, y} -> close!(x, y, atol, rtol, what) end)
    end

    defp close!(e, b, atol, rtol, what) when is_float(e) and is_float(b) do
      assert abs(e - b) <= atol + rtol * abs(b), "#{what}\n#{e} vs #{b}"
    end

    defp close!(e, b, _, _, what), do: assert(e == b, "#{what}\n#{inspect(e)} vs #{inspect(b)}")
  end
end

defmodule Emily.Native.Ops do
  @moduledoc false
  # Reads the op declarations in src/ops/<family>.ops (the format is described in
  # build/ops.rs, which generates the C prototypes, the Rust wrappers and the NIFs from the
  # same files) for Emily.Native's stubs, at compile time.

  @kinds ~w(array arrays ints int float bool dtype)a

  @doc "The declaration files, in family-name order."
  def files do
    Path.join([__DIR__, "..", "..", "..", "src", "ops", "*.ops"])
    |> Path.expand()
    |> Path.wildcard()
    |> Enum.sort()
  end

  @doc """
  `%{family, doc, enums, ops}` of one file: `enums` is `[{name, values, doc}]`, `ops` is
  `[%{name, args: [{name, kind}], many, cpu, doc}]`, a kind an atom of #{inspect(@kinds)} or
  `{:enum, name, values}`.
  """
  def parse_file!(path) do
    family = path |> Path.basename(".ops") |> String.to_atom()

    {fam, pending} =
      path
      |> File.read!()
      |> String.split("\n")
      |> Enum.with_index(1)
      |> Enum.reduce({%{family: family, doc: [], enums: [], ops: []}, []}, fn {raw, n}, acc ->
        line(String.trim(raw), acc, "#{path}:#{n}")
      end)

    if pending != [], do: raise(ArgumentError, "#{path}: a `///` comment at the end")
    enums = Enum.reverse(fam.enums)

    ops =
      fam.ops
      |> Enum.reverse()
      |> Enum.map(fn op -> %{op | args: Enum.map(op.args, &kind(&1, enums, path, op.name))} end)

    %{fam | doc: Enum.reverse(fam.doc), enums: enums, ops: ops}
  end

  defp line("//!" <> rest, {fam, doc}, _at), do: {%{fam | doc: [text(rest) | fam.doc]}, doc}
  defp line("///" <> rest, {fam, doc}, _at), do: {fam, [text(rest) | doc]}
  defp line("", {fam, []}, _at), do: {fam, []}

  defp line("", _acc, at),
    do: raise(ArgumentError, "#{at}: a `///` comment without a declaration")

  defp line("//" <> _, acc, _at), do: acc

  defp line("enum " <> rest, {fam, doc}, at) do
    case String.split(rest, "=", parts: 2) do
      [name, values] ->
        values =
          values |> String.split("|") |> Enum.map(&(&1 |> String.trim() |> String.to_atom()))

        enum = {String.to_atom(String.trim(name)), values, Enum.reverse(doc)}
        {%{fam | enums: [enum | fam.enums]}, []}

      _ ->
        raise ArgumentError, "#{at}: expected `enum name = a | b`"
    end
  end

  defp line(decl, {fam, doc}, at) do
    {cpu, decl} =
      case decl do
        "[cpu]" <> rest -> {true, String.trim(rest)}
        _ -> {false, decl}
      end

    case Regex.run(~r/^([a-z][a-z0-9_]*)\((.*)\)\s*->\s*(array|arrays)$/, decl) do
      [_, name, args, ret] ->
        args =
          for a <- String.split(args, ",", trim: true) do
            [n, k] = a |> String.split(":") |> Enum.map(&String.trim/1)
            {String.to_atom(n), k}
          end

        op = %{
          name: String.to_atom(name),
          args: args,
          many: ret == "arrays",
          cpu: cpu,
          doc: Enum.reverse(doc)
        }

        {%{fam | ops: [op | fam.ops]}, []}

      nil ->
        raise ArgumentError, "#{at}: expected `name(arg: kind, ...) -> array`, got: #{decl}"
    end
  end

  defp text(" " <> rest), do: rest
  defp text(rest), do: rest

  defp kind({name, k}, enums, path, op) do
    atom = String.to_atom(k)

    cond do
      atom in @kinds ->
        {name, atom}

      enum = List.keyfind(enums, atom, 0) ->
        {name, {:enum, atom, elem(enum, 1)}}

      true ->
        raise ArgumentError, "#{path}: #{op}: unknown kind #{k} of #{name}"
    end
  end

  @doc "The `@doc` of an op's stub."
  def doc(%{family: family}, op) do
    args = Enum.map_join(op.args, ", ", fn {n, _} -> "#{n}" end)
    sep = if op.args == [], do: "", else: ", "

    kinds =
      Enum.map_join(op.args, "\n", fn
        {n, {:enum, e, values}} ->
          "  * `#{n}`: `#{e}`, one of #{Enum.map_join(values, ", ", &"`#{inspect(&1)}`")}"

        {n, k} ->
          "  * `#{n}`: #{k}"
      end)

    returns = if op.many, do: "a list of tensors", else: "a tensor"
    where = if op.cpu, do: " Built on the worker's CPU stream.", else: ""

    """
    `#{op.name}(#{args}#{sep}worker)`: #{Enum.join(op.doc, " ")}

    Returns #{returns}.#{where} Declared in `src/ops/#{family}.ops`.

    #{kinds}
    """
  end
end

defmodule Bench.Table do
  @moduledoc false
  # Prints rows of strings as a table: the first column left-aligned, the rest right-aligned.

  def print(header, rows) do
    widths =
      Enum.reduce([header | rows], List.duplicate(0, length(header)), fn row, w ->
        Enum.zip_with(row, w, &max(String.length(&1), &2))
      end)

    line = fn row ->
      row
      |> Enum.zip(widths)
      |> Enum.with_index()
      |> Enum.map_join("  ", fn {{c, w}, i} ->
        if i == 0, do: String.pad_trailing(c, w), else: String.pad_leading(c, w)
      end)
    end

    IO.puts(line.(header))
    IO.puts(String.duplicate("-", Enum.sum(widths) + 2 * (length(widths) - 1)))
    Enum.each(rows, &IO.puts(line.(&1)))
  end
end

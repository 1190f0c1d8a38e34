defmodule Bench.Measure do
  @moduledoc false
  # Timing and the figures' formatting, shared by the benches.

  @doc "The best of `rounds` calls of `fun`, in ms, after a warm-up call."
  def best_ms(fun, rounds) do
    fun.()

    Enum.reduce(1..rounds, :infinity, fn _, best ->
      {us, _} = :timer.tc(fun)
      min(best, us / 1000)
    end)
  end

  @doc """
  Runs a Python peer: writes `spec` as JSON to a temporary file named `name`.json, runs
  `python script spec rounds` and decodes the JSON on its last line of output. Without
  `python`, prints that the `skipped` columns are skipped and returns `%{}`.
  """
  def python_peer(python, script, name, spec, rounds, skipped) do
    if File.exists?(python) do
      path = Path.join(System.tmp_dir!(), "#{name}.json")
      File.write!(path, Jason.encode!(spec))
      {out, 0} = System.cmd(python, [script, path, "#{rounds}"])
      out |> String.split("\n", trim: true) |> List.last() |> Jason.decode!()
    else
      IO.puts("(no #{python}: #{skipped} columns skipped)")
      %{}
    end
  end

  @doc "The rounds the bench was asked for (its first argument), else `default`."
  def rounds(default) do
    case System.argv() do
      [n | _] -> String.to_integer(n)
      [] -> default
    end
  end

  def fmt(nil), do: "-"
  def fmt(x) when x >= 100, do: :erlang.float_to_binary(x / 1, decimals: 0)
  def fmt(x), do: :erlang.float_to_binary(x / 1, decimals: 1)

  def ratio(a, b) when is_number(a) and is_number(b),
    do: :erlang.float_to_binary(a / b, decimals: 2)

  def ratio(_, _), do: "-"
end

defmodule Emily.Case do
  @moduledoc false
  # Helpers shared by the ExUnit suites.

  @doc "Packs a list of numbers as a binary of `type` (native endianness)."
  def bin(values, type) do
    for v <- values, into: <<>>, do: pack(v, type)
  end

  @doc "Unpacks a binary of `type`."
  def unbin(binary, type) do
    size = div(bits(type), 8)
    for <<chunk::binary-size(size) <- binary>>, do: unpack(chunk, type)
  end

  def t(values, shape, type), do: Emily.from_binary(bin(values, type), shape, type)

  @doc """
  Calls `fun` until it returns a truthy value, sleeping `every` milliseconds (default 1)
  between calls; flunks with `message` (a string, or a function giving one then) after
  `tries` calls (default 2000; `:infinity` for no count) or once `within` milliseconds of
  wall time have passed (default: no time limit), whichever comes first.
  """
  def wait_until(fun, opts \\ []) do
    deadline =
      case Keyword.fetch(opts, :within) do
        {:ok, ms} -> System.monotonic_time(:millisecond) + ms
        :error -> :infinity
      end

    poll(
      fun,
      Keyword.get(opts, :tries, 2000),
      deadline,
      Keyword.get(opts, :every, 1),
      Keyword.get(opts, :message, "condition not reached")
    )
  end

  defp poll(fun, tries, deadline, every, message) do
    cond do
      fun.() ->
        :ok

      tries == 0 or System.monotonic_time(:millisecond) > deadline ->
        ExUnit.Assertions.flunk(if is_function(message, 0), do: message.(), else: message)

      true ->
        Process.sleep(every)
        poll(fun, if(tries == :infinity, do: tries, else: tries - 1), deadline, every, message)
    end
  end

  @doc "An f32 tensor."
  def f(values, shape), do: t(values, shape, {:f, 32})

  @doc "Asserts two lists of numbers (reals or `{re, im}` pairs) are equal within `tol`."
  def assert_close(actual, expected, tol \\ 1.0e-4) do
    ExUnit.Assertions.assert(
      length(actual) == length(expected),
      "#{inspect(actual)} vs #{inspect(expected)}"
    )

    for {a, e} <- Enum.zip(actual, expected) do
      {ar, ai} = parts(a)
      {er, ei} = parts(e)

      ExUnit.Assertions.assert(
        abs(ar - er) <= tol and abs(ai - ei) <= tol,
        "#{inspect(actual)} is not close to #{inspect(expected)}"
      )
    end
  end

  defp parts({re, im}), do: {re, im}
  defp parts(x), do: {x, 0.0}

  def read(t), do: unbin(Emily.to_binary(t), Emily.dtype(t))

  defp bits(:bool), do: 8
  defp bits({_, b}), do: b

  @non_finite %{
    {:f, 16} => {0x7E00, 0x7C00, 0xFC00},
    {:bf, 16} => {0x7FC0, 0x7F80, 0xFF80},
    {:f, 32} => {0x7FC00000, 0x7F800000, 0xFF800000},
    {:f, 64} => {0x7FF8000000000000, 0x7FF0000000000000, 0xFFF0000000000000}
  }

  defp pack(v, {_, b} = type) when v in [:nan, :infinity, :neg_infinity] do
    {nan, inf, neg} = Map.fetch!(@non_finite, type)
    bits = %{nan: nan, infinity: inf, neg_infinity: neg}[v]
    <<bits::unsigned-size(b)-native>>
  end

  defp pack(v, :bool), do: <<if(v in [true, 1], do: 1, else: 0)::8>>
  defp pack(v, {:u, b}), do: <<v::unsigned-size(b)-native>>
  defp pack(v, {:s, b}), do: <<v::signed-size(b)-native>>
  defp pack(v, {:f, 16}), do: <<v::float-16-native>>
  defp pack(v, {:f, b}), do: <<v::float-size(b)-native>>
  defp pack(v, {:bf, 16}), do: binary_part(<<v::float-32-big>>, 0, 2) |> native16()
  defp pack({re, im}, {:c, 64}), do: <<re::float-32-native, im::float-32-native>>
  defp pack(re, {:c, 64}), do: <<re::float-32-native, 0.0::float-32-native>>

  defp unpack(<<v::8>>, :bool), do: v != 0
  defp unpack(c, {:u, b}), do: (<<v::unsigned-size(b)-native>> = c) && v
  defp unpack(c, {:s, b}), do: (<<v::signed-size(b)-native>> = c) && v
  defp unpack(<<v::float-16-native>>, {:f, 16}), do: v
  defp unpack(c, {:f, b}) when b in [16, 32, 64], do: float(c, b)

  defp unpack(c, {:bf, 16}) do
    <<hi::binary-size(2)>> = native16(c)
    float(native32(hi <> <<0, 0>>), 32)
  end

  defp unpack(<<re::binary-size(4), im::binary-size(4)>>, {:c, 64}),
    do: {float(re, 32), float(im, 32)}

  # A native-endian float, or :nan / :infinity / :neg_infinity (as Nx names them).
  defp float(c, b) do
    case c do
      <<v::float-size(b)-native>> -> v
      _ -> non_finite(c, b)
    end
  end

  defp non_finite(c, b) do
    <<sign::1, _::bitstring>> = big(c)
    mantissa_bits = %{16 => 10, 32 => 23, 64 => 52}[b]
    <<_::1, _::size(b - 1 - mantissa_bits), m::size(mantissa_bits)>> = big(c)

    cond do
      m != 0 -> :nan
      sign == 1 -> :neg_infinity
      true -> :infinity
    end
  end

  defp big(c) do
    case System.endianness() do
      :little -> c |> :binary.bin_to_list() |> Enum.reverse() |> :binary.list_to_bin()
      :big -> c
    end
  end

  defp native32(<<a, b, c, d>>) do
    case System.endianness() do
      :little -> <<d, c, b, a>>
      :big -> <<a, b, c, d>>
    end
  end

  # bf16 is the top half of an f32; swap bytes on little-endian machines.
  defp native16(<<a, b>>) do
    case System.endianness() do
      :little -> <<b, a>>
      :big -> <<a, b>>
    end
  end
end

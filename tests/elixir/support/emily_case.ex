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
  def read(t), do: unbin(Emily.to_binary(t), Emily.dtype(t))

  defp bits(:bool), do: 8
  defp bits({_, b}), do: b

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
  defp unpack(c, {:f, b}), do: (<<v::float-size(b)-native>> = c) && v

  defp unpack(c, {:bf, 16}) do
    <<hi::binary-size(2)>> = native16(c)
    <<v::float-32-big>> = hi <> <<0, 0>>
    v
  end

  defp unpack(<<re::float-32-native, im::float-32-native>>, {:c, 64}), do: {re, im}

  # bf16 is the top half of an f32; swap bytes on little-endian machines.
  defp native16(<<a, b>>) do
    case System.endianness() do
      :little -> <<b, a>>
      :big -> <<a, b>>
    end
  end
end

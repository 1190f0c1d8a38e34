defmodule Emily.Dtype do
  @moduledoc false
  # Nx type tuples <-> the dtype atoms of Emily.Native (`:u8`, ..., `:bf16`, `:c64`, `:bool`).

  @native %{
    {:u, 8} => :u8,
    {:u, 16} => :u16,
    {:u, 32} => :u32,
    {:u, 64} => :u64,
    {:s, 8} => :s8,
    {:s, 16} => :s16,
    {:s, 32} => :s32,
    {:s, 64} => :s64,
    {:f, 16} => :f16,
    {:bf, 16} => :bf16,
    {:f, 32} => :f32,
    {:f, 64} => :f64,
    {:c, 64} => :c64,
    :bool => :bool
  }

  @nx Map.new(@native, fn {nx, native} -> {native, nx} end)

  @doc "What a dtype argument must be, for error messages."
  def expected do
    "an Nx type MLX holds ({:u, 8 | 16 | 32 | 64}, {:s, 8 | 16 | 32 | 64}, " <>
      "{:f, 16 | 32 | 64}, {:bf, 16}, {:c, 64}) or :bool"
  end

  @doc "The Emily.Native dtype atom of `type`, or `nil`."
  def native(type), do: Map.get(@native, type)

  @doc """
  The Emily.Native dtype atom of `type`; raises `ArgumentError` naming `op` and the `dtype`
  argument for anything else.
  """
  def native_type!(type, op) do
    Map.get(@native, type) ||
      raise ArgumentError, "#{op}: dtype must be #{expected()}, got: #{inspect(type)}"
  end

  @doc "The Nx type (or `:bool`) of an Emily.Native dtype atom."
  def nx_type(native), do: Map.fetch!(@nx, native)
end

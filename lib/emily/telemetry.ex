defmodule Emily.Telemetry do
  @moduledoc """
  Telemetry spans, emitted when `:telemetry` is available (it is an optional dependency).
  Shapes in metadata are lists, types Nx type tuples (or `:bool`), as `Emily.shape/1` and
  `Emily.dtype/1` give them:

    * `[:emily, :to_binary, :start | :stop | :exception]` - `Emily.to_binary/1`, and so
      `Nx.to_binary/1` on `Emily.Backend`; metadata `%{shape:, dtype:, byte_size:}`
    * `[:emily, :from_binary, :start | :stop | :exception]` - `Emily.from_binary/3`;
      metadata `%{shape:, dtype:, byte_size:}`
    * `[:emily, :mmap, :start | :stop | :exception]` - `Emily.mmap/4`; metadata
      `%{shape:, dtype:, path:, offset:}`
    * `[:emily, :eval, :start | :stop | :exception]` - `Emily.eval/1`; metadata `%{count:}`
    * `[:emily, :async_eval, :start | :stop | :exception]` - `Emily.async_eval/1`;
      metadata `%{count:}`
    * `[:emily, :fallback, :start | :stop | :exception]` - an `Emily.Backend` callback run on
      `Nx.BinaryBackend`; metadata `%{op:}` (see `Emily.Backend`, "Fallbacks")

  `:stop` carries `:duration` (native time units), as with any `:telemetry.span/3`.
  """

  @doc false
  def span(event, meta, fun) do
    if enabled?() do
      apply(:telemetry, :span, [[:emily, event], meta, fn -> {fun.(), meta} end])
    else
      fun.()
    end
  end

  @doc false
  def enabled? do
    case :persistent_term.get({__MODULE__, :enabled}, nil) do
      nil ->
        on = Code.ensure_loaded?(:telemetry) and function_exported?(:telemetry, :span, 3)
        :persistent_term.put({__MODULE__, :enabled}, on)
        on

      on ->
        on
    end
  end
end

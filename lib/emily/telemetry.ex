defmodule Emily.Telemetry do
  @moduledoc """
  Telemetry spans, emitted when `:telemetry` is available (it is an optional dependency):

    * `[:emily, :to_binary, :start | :stop | :exception]` - metadata `%{shape:, dtype:}`
    * `[:emily, :from_binary, :start | :stop | :exception]` - metadata
      `%{shape:, dtype:, byte_size:}`
    * `[:emily, :mmap, :start | :stop | :exception]` - metadata `%{shape:, dtype:, path:}`
    * `[:emily, :eval, :start | :stop | :exception]` - metadata `%{count:}`
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

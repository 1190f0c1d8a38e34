if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Fallback do
    @moduledoc false
    # Runs an Nx.Backend callback on Nx.BinaryBackend and brings the result back to MLX,
    # for the few ops MLX cannot express (see Emily.Backend's moduledoc).
    #
    # `config :emily, fallback: :silent | :warn | :raise` (read at run time; default :warn,
    # which logs once per op). Emits [:emily, :fallback, :start | :stop | :exception].

    require Logger

    alias Emily.Backend.Core
    alias Nx.Tensor, as: T

    @doc "Runs `Nx.BinaryBackend.op(args...)` with the tensors in `args` copied over."
    def run(op, [out | rest] = args) do
      case Emily.Config.get(:fallback) do
        :raise ->
          raise ArgumentError,
                "Emily.Backend: #{op} has no MLX implementation for these arguments and " <>
                  "would run on Nx.BinaryBackend (config :emily, fallback: :raise)"

        :warn ->
          warn_once(op)

        _ ->
          :ok
      end

      device = Core.device_of(tensors(args))

      Emily.Telemetry.span(:fallback, %{op: op}, fn ->
        args = [out | Enum.map(rest, &to_binary_backend/1)]
        # Tensors the op creates on its own (its function's constants) must be binary too.
        previous = Nx.default_backend(Nx.BinaryBackend)

        result =
          try do
            apply(Nx.BinaryBackend, op, args)
          after
            Nx.default_backend(previous)
          end

        back(result, device)
      end)
    end

    defp tensors(args) do
      Enum.flat_map(args, fn
        %T{} = t -> [t]
        list when is_list(list) -> Enum.filter(list, &match?(%T{}, &1))
        _ -> []
      end)
    end

    defp to_binary_backend(%T{data: %Nx.BinaryBackend{}} = t), do: t
    defp to_binary_backend(%T{} = t), do: Nx.backend_copy(t, Nx.BinaryBackend)

    defp to_binary_backend(list) when is_list(list) do
      if Enum.any?(list, &match?(%T{}, &1)),
        do: Enum.map(list, &to_binary_backend/1),
        else: list
    end

    defp to_binary_backend(other), do: other

    defp back(%T{data: %{__struct__: Emily.Backend}} = t, _device), do: t
    defp back(%T{} = t, device), do: Nx.backend_transfer(t, {Emily.Backend, device: device})

    defp back(tuple, device) when is_tuple(tuple),
      do: tuple |> Tuple.to_list() |> Enum.map(&back(&1, device)) |> List.to_tuple()

    defp back(list, device) when is_list(list), do: Enum.map(list, &back(&1, device))

    defp warn_once(op) do
      key = {__MODULE__, :warned, op}

      unless :persistent_term.get(key, false) do
        :persistent_term.put(key, true)

        Logger.warning(
          "Emily.Backend: #{op} runs on Nx.BinaryBackend (MLX cannot express it here); " <>
            "set config :emily, fallback: :silent to hide this, or :raise to forbid it"
        )
      end

      :ok
    end

    @doc false
    def reset_warnings do
      for {{__MODULE__, :warned, _} = key, _} <- :persistent_term.get() do
        :persistent_term.erase(key)
      end

      :ok
    end
  end
end

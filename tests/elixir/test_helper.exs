# Tiers: `core` (no Nx needed; always runs), `nx` (needs Nx) and `models` (needs Bumblebee
# and the real models scripts/models.sh downloads). A tier that cannot run is excluded,
# and the reason printed.
nx? = Code.ensure_loaded?(Nx)
models_dir = Emily.ModelCase.models_dir()

models_missing =
  cond do
    not Code.ensure_loaded?(Bumblebee) ->
      "Bumblebee is not available"

    (missing = Emily.ModelCase.missing_models()) != [] ->
      "missing #{Enum.join(missing, ", ")} under #{models_dir}: run scripts/models.sh"

    true ->
      nil
  end

exclude = if nx?, do: [], else: [:nx]
exclude = if models_missing, do: [:models | exclude], else: exclude
# Telemetry span tests need :telemetry (an optional dependency; present with the Nx tier).
telemetry? = Code.ensure_loaded?(:telemetry)
exclude = if telemetry?, do: exclude, else: [:telemetry | exclude]

# glibc's malloc settings (Emily.Memory): Linux with the GNU C library only.
glibc? = String.ends_with?(to_string(:erlang.system_info(:system_architecture)), "linux-gnu")
exclude = if glibc?, do: exclude, else: [:glibc | exclude]
# Thread placement under bound schedulers (/proc, CPU sets): Linux only.
exclude = if :os.type() == {:unix, :linux}, do: exclude, else: [:linux | exclude]

IO.puts(
  "Emily test tiers: ExUnit core: on; ExUnit Nx: " <>
    if(nx?,
      do: "on",
      else: "skipped (Nx is not available: no Hex and no ../shared/deps or EMILY_DEPS_PATH)"
    ) <> "; models: " <> if(models_missing, do: "skipped (#{models_missing})", else: "on")
)

IO.puts(
  "Emily telemetry span tests: " <>
    if(telemetry?, do: "on", else: "off (:telemetry is not loaded)")
)

if nx? and Code.ensure_loaded?(Emily.Prop) do
  ExUnit.after_suite(fn _ ->
    n = Emily.Prop.total_cases()
    if n > 0, do: IO.puts("Property cases run against Nx.BinaryBackend: #{n}")
  end)
end

# The GPU tier: EMILY_DEFAULT_DEVICE=gpu (or config :emily, default_device: :gpu) runs every
# test on the GPU through Emily.Worker.current/0 and Emily.Backend's default device.
# With MLX's CUDA build (on either device: its allocator serves the CPU too), from_binary and
# mmap copy, so the tests tagged :aliasing are excluded, with the reason printed.
exclude =
  if Emily.memory_stats()[:external_aliasing] == false do
    IO.puts(
      "Aliasing tests (tag :aliasing): excluded: MLX's CUDA allocator cannot wrap host " <>
        "memory, so from_binary/mmap copy (memory_stats().external_aliasing is false)"
    )

    [:aliasing | exclude]
  else
    exclude
  end

IO.puts("Default device: #{Emily.Worker.default_device()}")
ExUnit.start(exclude: exclude)

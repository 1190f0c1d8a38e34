# Tiers: `core` (no Nx needed; always runs) and `nx` (needs Nx; skipped without it).
nx? = Code.ensure_loaded?(Nx)
exclude = if nx?, do: [], else: [:nx]
# Telemetry span tests need :telemetry (an optional dependency; present with the Nx tier).
telemetry? = Code.ensure_loaded?(:telemetry)
exclude = if telemetry?, do: exclude, else: [:telemetry | exclude]

IO.puts(
  "Emily test tiers: ExUnit core: on; ExUnit Nx: " <>
    if(nx?, do: "on", else: "skipped (Nx is not available: no Hex and no EMILY_NX_PATH)") <>
    "; telemetry spans: " <> if(telemetry?, do: "on", else: "skipped (:telemetry not loaded)")
)

if nx? and Code.ensure_loaded?(Emily.Prop) do
  ExUnit.after_suite(fn _ ->
    n = Emily.Prop.total_cases()
    if n > 0, do: IO.puts("Property cases run against Nx.BinaryBackend: #{n}")
  end)
end

ExUnit.start(exclude: exclude)

# Tiers: `core` (no Nx needed; always runs) and `nx` (needs Nx; skipped without it).
nx? = Code.ensure_loaded?(Nx)
exclude = if nx?, do: [], else: [:nx]

IO.puts(
  "Emily test tiers: ExUnit core: on; ExUnit Nx: " <>
    if(nx?, do: "on", else: "skipped (Nx is not available: no Hex and no EMILY_NX_PATH)")
)

if nx? and Code.ensure_loaded?(Emily.Prop) do
  ExUnit.after_suite(fn _ ->
    n = Emily.Prop.total_cases()
    if n > 0, do: IO.puts("Property cases run against Nx.BinaryBackend: #{n}")
  end)
end

ExUnit.start(exclude: exclude)

# Tiers: `core` (no Nx needed; always runs) and `nx` (needs Nx; skipped without it).
nx? = Code.ensure_loaded?(Nx)
exclude = if nx?, do: [], else: [:nx]

IO.puts(
  "Emily test tiers: ExUnit core: on; ExUnit Nx: " <>
    if(nx?, do: "on", else: "skipped (Nx is not available: no Hex and no EMILY_NX_PATH)")
)

ExUnit.start(exclude: exclude)

import Config

# Emily's settings and their defaults:
#
#   config :emily,
#     queue_limit: 4096,          # jobs a worker queues before raising
#     await_timeout: 300_000,     # ms a caller waits for a worker's answer
#     gc_threshold: 268_435_456,  # bytes of tensor-handle growth that trigger a collection
#                                 # request to the largest holders (Emily.Memory)
#     gc_pressure: true,          # false turns those requests off
#     memory_limit: nil,          # MLX's memory limit in bytes (nil: MLX's, 80% of RAM)
#     cache_limit: nil,           # MLX's buffer cache limit in bytes (nil: MLX's, at
#                                 # least gc_threshold: see Emily.Memory)
#     malloc_mmap_threshold: 33_554_432, # glibc: blocks from this size get their own
#                                 # mapping (false: as the BEAM set it; Emily.Memory)
#     lane: :native,              # Emily.Compiler's default lane: :native, :fused, :evaluator
#     inline_eval: true,          # cheap graphs evaluated in the caller's thread (Emily.Worker);
#                                 # env EMILY_INLINE_EVAL=0 turns it off
#     default_device: :cpu,       # :cpu | :gpu; env EMILY_DEFAULT_DEVICE overrides
#     tf32: false                 # let MLX run f32 matmuls in TF32 on NVIDIA GPUs

# Bumblebee's tokenizers (the only rustler_precompiled package Emily's dependencies have)
# are built from source (their Rust crate, from crates.io) rather than downloaded, into a
# cargo target directory outside the repository that fresh clones share.
config :rustler_precompiled, force_build_all: true

config :tokenizers, Tokenizers.Native,
  target_dir:
    Path.join(System.get_env("EMILY_CACHE") || Path.expand("~/.cache/emily"), "cargo-tokenizers")

if File.exists?(Path.join(__DIR__, "#{config_env()}.exs")) do
  import_config "#{config_env()}.exs"
end

import Config

# Emily's settings and their defaults (Emily.Config documents each, with its environment
# variable and when it is read):
#
#   config :emily,
#     default_device: :cpu,       # :cpu | :gpu (env EMILY_DEFAULT_DEVICE)
#     queue_limit: 4096,          # jobs a worker queues before refusing more
#     await_timeout: 300_000,     # ms a caller waits for a worker's answer
#     inline_eval: true,          # cheap graphs evaluated in the caller's thread (env EMILY_INLINE_EVAL)
#     direct_execution: true,     # MLX's CPU kernels run in the evaluating thread (env EMILY_DIRECT_EXECUTION)
#     lane: :native,              # Emily.Compiler's default lane: :native | :fused | :evaluator
#     fallback: :warn,            # ops run on Nx.BinaryBackend: :silent | :warn | :raise
#     cpu_kernels: true,          # Emily's SLEEF CPU kernels for exp, tanh, erf, ... (env EMILY_CPU_KERNELS)
#     tf32: false,                # let MLX run f32 matmuls in TF32 on NVIDIA GPUs
#     kernel_cache_dir: nil,      # NVIDIA GPUs: MLX's compiled kernels (nil: user cache; false: MLX's /tmp)
#     gc_threshold: 268_435_456,  # bytes of tensor-handle growth that make the largest holders collect
#     gc_pressure: true,          # false turns those requests off
#     memory_limit: nil,          # MLX's memory limit in bytes (nil: MLX's, 80% of RAM)
#     cache_limit: nil,           # MLX's buffer cache limit in bytes (nil: MLX's, at least gc_threshold)
#     malloc_mmap_threshold: 33_554_432, # glibc mmap threshold, or false (env EMILY_MALLOC_MMAP_THRESHOLD)
#     debug_bounds_check: false,  # compile time: index ops raise on out-of-range indices
#     debug_detect_nan_inf: false # compile time: dot and Emily.Fast raise on NaN or Inf results

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

import Config

# Emily's settings and their defaults:
#
#   config :emily,
#     queue_limit: 4096,          # jobs a worker queues before raising
#     await_timeout: 300_000,     # ms a caller waits for a worker's answer
#     default_device: :cpu,       # :cpu | :gpu; env EMILY_DEFAULT_DEVICE overrides
#     tf32: false                 # let MLX run f32 matmuls in TF32 on NVIDIA GPUs

if File.exists?(Path.join(__DIR__, "#{config_env()}.exs")) do
  import_config "#{config_env()}.exs"
end

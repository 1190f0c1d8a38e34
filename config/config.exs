import Config

# Emily's settings and their defaults:
#
#   config :emily,
#     queue_limit: 4096,          # jobs a worker queues before raising
#     await_timeout: 300_000,     # ms a caller waits for a worker's answer
#     lane: :native               # Emily.Compiler's default lane: :native, :fused, :evaluator

if File.exists?(Path.join(__DIR__, "#{config_env()}.exs")) do
  import_config "#{config_env()}.exs"
end

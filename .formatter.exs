[
  inputs: [
    "{mix,.formatter}.exs",
    "{config,lib}/**/*.{ex,exs}",
    "tests/elixir/**/*.{ex,exs}",
    "benches/**/*.{ex,exs}"
  ]
]

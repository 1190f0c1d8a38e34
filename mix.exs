defmodule Mix.Tasks.Compile.EmilyNif do
  @shortdoc "Builds Emily's NIF library (cargo, release profile) into priv/"
  @moduledoc """
  Builds the Rust workspace's `emily_nif` crate with cargo and copies the library to
  `priv/emily_nif.so`. Cargo runs only when a Rust or C++ source is newer than the library.

  MLX is found through `EMILY_MLX_DIR` (see `scripts/setup.sh`).
  """
  use Mix.Task.Compiler

  @sources ["Cargo.toml", "Cargo.lock", "build.rs", "build", "src", "native"]

  @impl true
  def run(_args) do
    root = Path.expand(".")
    target = Path.join(root, "priv/emily_nif.so")
    # priv/ must exist before Mix links it into _build.
    File.mkdir_p!(Path.dirname(target))
    Mix.Project.build_structure()

    if stale?(root, target) do
      build!(root, target)
      {:ok, []}
    else
      {:noop, []}
    end
  end

  defp stale?(root, target) do
    case File.stat(target, time: :posix) do
      {:ok, %{mtime: built}} -> Enum.any?(sources(root), &(mtime(&1) > built))
      _ -> true
    end
  end

  defp sources(root) do
    Enum.flat_map(@sources, fn s ->
      path = Path.join(root, s)

      if File.dir?(path),
        do: Path.wildcard(Path.join(path, "**/*.{rs,cc,h,hpp,toml}")),
        else: [path]
    end)
  end

  defp mtime(path) do
    case File.stat(path, time: :posix) do
      {:ok, %{mtime: m}} -> m
      _ -> 0
    end
  end

  defp build!(root, target) do
    cargo = System.find_executable("cargo") || Mix.raise(missing("cargo (the Rust toolchain)"))
    Mix.shell().info("Compiling Emily NIF (cargo build --release -p emily_nif)")

    {_, status} =
      System.cmd(cargo, ["build", "--release", "-p", "emily_nif"],
        cd: root,
        into: IO.stream(:stdio, :line),
        stderr_to_stdout: true
      )

    if status != 0,
      do: Mix.raise("Emily: cargo build failed (exit #{status}); see the output above")

    target_dir = System.get_env("CARGO_TARGET_DIR") || Path.join(root, "target")
    lib = Path.join([target_dir, "release", "libemily_nif" <> ext()])
    File.mkdir_p!(Path.dirname(target))
    # Copy to a temporary name, then rename: never leave a half-written library behind.
    File.cp!(lib, target <> ".tmp")
    File.rename!(target <> ".tmp", target)
  end

  defp ext, do: if(match?({:unix, :darwin}, :os.type()), do: ".dylib", else: ".so")

  defp missing(what) do
    "Emily: #{what} not found. Run scripts/setup.sh, or see README.md for what Emily needs."
  end
end

defmodule Emily.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :emily,
      version: @version,
      elixir: "~> 1.17",
      start_permanent: Mix.env() == :prod,
      compilers: [:emily_nif | Mix.compilers()],
      deps: deps(),
      elixirc_paths: elixirc_paths(Mix.env()),
      test_paths: ["tests/elixir"],
      test_pattern: "*_test.exs",
      docs: [main: "Emily"],
      description: "Elixir bindings and an Nx backend for Apple's MLX",
      package: [
        licenses: ["MIT"],
        # the Rust workspace and the C++ shim build the NIF on the user's machine
        files:
          ~w(lib src build build.rs native loom-tests Cargo.toml Cargo.lock mix.exs README.md CHANGELOG.md)
      ]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {Emily.Application, []}]
  end

  defp elixirc_paths(:test), do: ["lib", "tests/elixir/support"]
  defp elixirc_paths(_), do: ["lib"]

  # Users get Nx and :telemetry from Hex, and Bumblebee when they use it (an optional
  # dependency: Emily.Bumblebee is compiled with it). Safetensors is Bumblebee's own
  # dependency, declared here (optional) because the model tier reads its reference
  # fixtures with it; it must not be test-only, or Bumblebee cannot start in dev.
  # Without Hex, the same packages come as path dependencies from a folder of source
  # checkouts whose own mix.exs files name each other by relative path: the folder in
  # EMILY_DEPS_PATH, else `../shared/deps` beside the project when it exists. Without Hex
  # and without such a folder, Emily builds with no dependencies: the core API and the op
  # layer work, the Nx and model tiers are skipped.
  defp deps do
    case local_deps_path() do
      nil ->
        if hex_available?(),
          do: [
            {:nx, "~> 0.13"},
            {:telemetry, "~> 1.0", optional: true},
            {:bumblebee, "~> 0.7", optional: true},
            {:safetensors, "~> 0.1", optional: true}
          ],
          else: []

      dir ->
        # Bumblebee 0.7 asks for nx ~> 0.12 and older jason, complex and telemetry; its
        # tokenizers need rustler to build from source. The overrides make the
        # checkouts' versions win, as `override: true` would with Hex.
        local = fn app, opts ->
          {app, [path: Path.join(dir, "#{app}"), override: true] ++ opts}
        end

        Enum.map([:nx, :complex, :telemetry, :axon, :jason, :rustler], &local.(&1, [])) ++
          [local.(:bumblebee, optional: true), local.(:safetensors, optional: true)]
    end
  end

  @doc false
  def local_deps_path do
    sibling = Path.expand("../shared/deps", __DIR__)

    cond do
      dir = System.get_env("EMILY_DEPS_PATH") -> Path.expand(dir)
      hex_available?() -> nil
      File.exists?(Path.join(sibling, "nx/mix.exs")) -> sibling
      true -> nil
    end
  end

  defp hex_available? do
    System.get_env("EMILY_NO_HEX") not in ["1", "true"] and Code.ensure_loaded?(Hex)
  end
end

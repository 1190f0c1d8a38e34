defmodule Emily.ConfigTest do
  use ExUnit.Case, async: false

  alias Emily.Config

  test "config/config.exs lists every setting, and the moduledoc's table every one" do
    listed = File.read!(Path.expand("../../../config/config.exs", __DIR__))
    {:docs_v1, _, _, _, %{"en" => moduledoc}, _, _} = Code.fetch_docs(Config)

    for {key, env, _default, _type, _read, _doc} <- Config.settings() do
      assert listed =~ "#{key}:", "config/config.exs does not list #{inspect(key)}"
      assert moduledoc =~ "`#{inspect(key)}`"
      if env, do: assert(listed =~ env, "config/config.exs does not name #{env}")
    end
  end

  test "an environment variable wins over the application environment, parsed by type" do
    previous = System.get_env("EMILY_MALLOC_MMAP_THRESHOLD")

    try do
      System.put_env("EMILY_MALLOC_MMAP_THRESHOLD", "0")
      assert Config.get(:malloc_mmap_threshold) == false
      System.put_env("EMILY_MALLOC_MMAP_THRESHOLD", "65536")
      assert Config.get(:malloc_mmap_threshold) == 65_536
      System.put_env("EMILY_MALLOC_MMAP_THRESHOLD", "lots")

      assert_raise ArgumentError,
                   ~r/EMILY_MALLOC_MMAP_THRESHOLD must be false or an integer/,
                   fn ->
                     Config.get(:malloc_mmap_threshold)
                   end
    after
      if previous,
        do: System.put_env("EMILY_MALLOC_MMAP_THRESHOLD", previous),
        else: System.delete_env("EMILY_MALLOC_MMAP_THRESHOLD")
    end
  end

  test "a value of the wrong type raises naming the setting" do
    previous = Application.fetch_env(:emily, :lane)

    try do
      Application.put_env(:emily, :lane, :fast)

      assert_raise ArgumentError,
                   ~r/config :emily, lane must be one of :native, :fused, :evaluator/,
                   fn ->
                     Config.get(:lane)
                   end

      Application.delete_env(:emily, :lane)
      assert Config.get(:lane) == :native
    after
      case previous do
        {:ok, v} -> Application.put_env(:emily, :lane, v)
        :error -> Application.delete_env(:emily, :lane)
      end
    end

    assert_raise ArgumentError, ~r/no setting :nope/, fn -> Config.get(:nope) end
  end

  test "MLX's variables are set in the C environment at start, unless set before" do
    dir = System.get_env("MLX_PTX_CACHE_DIR")
    assert is_binary(dir) and dir != ""
    assert System.get_env("MLX_ENABLE_TF32") in ["0", "1"]
    # Set already: left as it is.
    assert Emily.Native.mlx_env_default("MLX_PTX_CACHE_DIR", "/elsewhere") == dir
    name = "MLX_EMILY_TEST_#{System.unique_integer([:positive])}"
    assert Emily.Native.mlx_env_default(name, "x") == "x"
    assert Emily.Native.mlx_env_default(name, "y") == "x"

    for bad <- ["PATH", "MLX_A=B", "MLX_\0"] do
      assert_raise ArgumentError, ~r/mlx_env_default: name must be an MLX_ variable/, fn ->
        Emily.Native.mlx_env_default(bad, "v")
      end
    end
  end
end

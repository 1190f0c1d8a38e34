defmodule Mix.Tasks.Emily.Doctor do
  @shortdoc "Checks Emily's installation end to end"
  @moduledoc """
  Prints the OTP, Elixir and MLX versions, the devices MLX sees, the BLAS library MLX's
  matrix products bind to, and runs a real computation through the NIF (a matmul), checking
  its result and reporting GFLOP/s.

      mix emily.doctor
  """
  use Mix.Task

  @impl true
  def run(_args) do
    Mix.Task.run("app.start")
    info("OTP", System.otp_release())
    info("Elixir", System.version())
    info("MLX", Emily.Native.mlx_version())
    info("Devices", Enum.filter([:cpu, :gpu], &Emily.Native.device_available/1) |> inspect())
    info("BLAS", blas())

    info(
      "Nx",
      if(Code.ensure_loaded?(Nx),
        do: Application.spec(:nx, :vsn) |> to_string(),
        else: "not loaded"
      )
    )

    for device <- [:cpu, :gpu], Emily.Native.device_available(device) do
      check(device)
    end

    Mix.shell().info("emily.doctor: all checks passed")
  end

  defp info(k, v), do: Mix.shell().info(String.pad_trailing(k <> ":", 10) <> v)

  defp blas do
    maps = "/proc/self/maps"

    if File.exists?(maps) do
      libs =
        File.read!(maps)
        |> String.split("\n")
        |> Enum.map(&(String.split(&1) |> List.last()))
        |> Enum.filter(&(is_binary(&1) and &1 =~ ~r/(blas|lapack|accelerate)/i))
        |> Enum.uniq()

      if libs == [], do: "none mapped", else: Enum.join(libs, ", ")
    else
      "unknown (no /proc)"
    end
  end

  defp check(device) do
    w = Emily.Worker.start(device)
    n = 512
    ones = for _ <- 1..(n * n), into: <<>>, do: <<1.0::float-32-native>>
    a = Emily.Native.from_binary(ones, [n, n], :f32, w)
    b = Emily.Native.add(a, a, w)
    Emily.eval(b)
    <<v::float-32-native, _::binary>> = Emily.to_binary(b)
    if v != 2.0, do: Mix.raise("emily.doctor: 1 + 1 gave #{v} on #{device}")

    case matmul_gflops(a, w, n) do
      {:ok, gflops} -> info("#{device}", "ok (f32 matmul #{n}x#{n}: #{gflops} GFLOP/s)")
      :skip -> info("#{device}", "ok")
    end

    Emily.Worker.stop(w)
  end

  # matmul arrives with the op layer's linalg family; report it when it is there.
  defp matmul_gflops(a, w, n) do
    if function_exported?(Emily.Native, :matmul, 3) do
      mm = fn -> Emily.eval(apply(Emily.Native, :matmul, [a, a, w])) end
      mm.()
      {us, _} = :timer.tc(fn -> Enum.each(1..5, fn _ -> mm.() end) end)
      {:ok, Float.round(2 * n * n * n * 5 / us / 1000, 1)}
    else
      :skip
    end
  end
end

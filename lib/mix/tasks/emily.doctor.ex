defmodule Mix.Tasks.Emily.Doctor do
  @shortdoc "Checks Emily's installation end to end"
  @moduledoc """
  Prints the OTP, Elixir and MLX versions, the devices MLX sees (with MLX's description of
  the GPU: name, architecture, memory), the default device, the BLAS library MLX's matrix
  products bind to, and runs a real computation through the NIF on every device (an add
  read back with `to_binary`, then a matmul), checking results and reporting GFLOP/s.

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

    if Emily.Native.device_available(:gpu) do
      info("GPU", gpu_info(Emily.Native.device_info(:gpu)))
    end

    info(
      "Default",
      "#{Emily.Worker.default_device()} (config :emily, :default_device / EMILY_DEFAULT_DEVICE)"
    )

    info("BLAS", blas())
    info("Kernels", direct_execution())
    info("CPU kernels", cpu_kernels())
    info("malloc", malloc())

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

  defp gpu_info(m) do
    name = m[:device_name] || "?"
    arch = m[:architecture]

    cc =
      m[:compute_capability_major] &&
        "sm_#{m[:compute_capability_major]}#{m[:compute_capability_minor]}"

    mem = m[:total_memory] || m[:memory_size]
    free = m[:free_memory]

    [
      name,
      arch && "arch #{arch}",
      cc,
      mem && "#{gib(mem)} GiB",
      free && "#{gib(free)} GiB free"
    ]
    |> Enum.reject(&(&1 in [nil, false]))
    |> Enum.join(", ")
  end

  defp gib(bytes), do: Float.round(bytes / 1024 ** 3, 1)

  defp cpu_kernels do
    case Emily.Native.cpu_kernels_isa() do
      nil ->
        "MLX's (this build has no SLEEF kernels, or this CPU lacks AVX2+FMA)"

      isa ->
        on? = Emily.Config.get(:cpu_kernels)
        "Emily's, SLEEF #{isa}#{if on?, do: "", else: " (off: config :emily, :cpu_kernels)"}"
    end
  end

  defp blas do
    maps = "/proc/self/maps"

    if File.exists?(maps) do
      libs =
        File.read!(maps)
        |> String.split("\n")
        |> Enum.map(&(String.split(&1) |> List.last()))
        |> Enum.filter(&(is_binary(&1) and &1 =~ ~r/(blas|lapack|accelerate)/i))
        |> Enum.uniq()

      core =
        case Emily.Native.blas_core() do
          nil -> ""
          name -> " (OpenBLAS kernels: #{name}#{coretype()}; #{blas_threads()})"
        end

      if libs == [], do: "none mapped", else: Enum.join(libs, ", ") <> core
    else
      "unknown (no /proc)"
    end
  end

  defp malloc do
    case Emily.memory_stats().malloc_mmap_threshold do
      nil -> "as the BEAM set it (no glibc, or config :emily, malloc_mmap_threshold: false)"
      t -> "mmap threshold #{div(t, 1024)} KiB (Emily.Memory; the BEAM fixes 128 KiB)"
    end
  end

  # Fitted to the process's CPUs when the NIF loads (Emily.Native's load; src/cpp/threads.cc).
  defp blas_threads do
    case Emily.Native.blas_threads() do
      1 -> "1 thread"
      n -> "#{n} threads"
    end
  end

  defp coretype do
    case System.get_env("OPENBLAS_CORETYPE") do
      nil -> ", chosen for this CPU"
      v -> ", as OPENBLAS_CORETYPE=#{v} says"
    end
  end

  defp check(device) do
    w = Emily.Worker.start(device)
    # A GPU needs a larger product to say anything about its speed.
    n = if device == :gpu, do: 2048, else: 512
    ones = :binary.copy(<<1.0::float-32-native>>, n * n)
    a = Emily.Native.from_binary(ones, [n, n], :f32, w)
    b = Emily.Native.add(a, a, w)
    Emily.eval(b)
    # to_binary reads the result from the device's memory (on a GPU: device to host).
    out = Emily.to_binary(b)

    unless out == :binary.copy(<<2.0::float-32-native>>, n * n) do
      <<v::float-32-native, _::binary>> = out
      Mix.raise("emily.doctor: 1 + 1 gave #{v} on #{device}")
    end

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
      c = apply(Emily.Native, :matmul, [a, a, w])
      <<v::float-32-native, _::binary>> = Emily.to_binary(c)
      if v != n * 1.0, do: Mix.raise("emily.doctor: matmul of ones gave #{v}, not #{n}")
      mm.()
      {us, _} = :timer.tc(fn -> Enum.each(1..5, fn _ -> mm.() end) end)
      {:ok, Float.round(2 * n * n * n * 5 / us / 1000, 1)}
    else
      :skip
    end
  end

  # Where MLX's CPU kernels run (Emily.Worker's module doc, "Direct execution").
  defp direct_execution do
    case {Emily.Config.get(:direct_execution), Emily.Worker.direct_execution_available?()} do
      {false, _} ->
        "on MLX's stream threads (direct execution off by configuration)"

      {true, true} ->
        "in the evaluating thread (direct execution)"

      {true, false} ->
        "on MLX's stream threads (libmlx's scheduler calls do not reach Emily here)"

      {true, nil} ->
        "direct execution not probed yet"
    end
  end
end

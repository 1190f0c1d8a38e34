defmodule Emily.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # mlx::core::compile runs g++ at run time; the child's exit status is lost when the
    # BEAM ignores SIGCHLD.
    :os.set_signal(:sigchld, :default)
    set_tf32()
    set_kernel_cache()
    Emily.Worker.start_defaults()
    Emily.Worker.set_inline_eval(Emily.Config.get(:inline_eval))
    Emily.Worker.set_direct_execution(Emily.Config.get(:direct_execution))
    Emily.Native.cpu_kernels(Emily.Config.get(:cpu_kernels))
    Emily.Memory.configure_from_env()

    children = [
      {Task.Supervisor, name: Emily.TaskSupervisor},
      Emily.Memory.Pressure
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Emily.Supervisor)
  end

  # MLX's CUDA backend (and Metal on M5) runs float32 matrix products in TF32 (a 10-bit
  # mantissa: ~1e-3 relative error) unless MLX_ENABLE_TF32=0 is in the environment when its
  # first matmul runs; the value is latched then. Emily keeps {:f, 32} exact by default, as
  # PyTorch does for matmuls; `config :emily, tf32: true` opts in. A value already in the
  # environment is left alone. The NIF sets it: MLX reads the C library's environment, which
  # System.put_env/2 does not change.
  defp set_tf32 do
    put_mlx_env("MLX_ENABLE_TF32", if(Emily.Config.get(:tf32), do: "1", else: "0"))
  end

  # MLX's CUDA backend compiles its kernels with NVRTC on first use (seconds each) and keeps
  # the results on disk, by default under the system's temporary directory, which is often
  # emptied at boot. Emily points it at a folder of the user's cache instead, one per MLX
  # version (`config :emily, kernel_cache_dir: path`; `false` keeps MLX's default; a
  # MLX_PTX_CACHE_DIR already in the environment wins). Other builds never read it.
  defp set_kernel_cache do
    case Emily.Config.get(:kernel_cache_dir) do
      false ->
        :ok

      dir ->
        dir =
          dir ||
            Path.join(
              :filename.basedir(:user_cache, "emily"),
              "mlx-#{Emily.Native.mlx_version()}-ptx"
            )

        put_mlx_env("MLX_PTX_CACHE_DIR", dir)
    end
  end

  # `name=value` in the C environment unless set there; the VM's copy follows the value in
  # effect.
  defp put_mlx_env(name, value) do
    System.put_env(name, Emily.Native.mlx_env_default(name, value))
  end

  @impl true
  def stop(_state) do
    Emily.Worker.stop_defaults()
  end
end

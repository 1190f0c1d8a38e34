defmodule Emily.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # mlx::core::compile runs g++ at run time; the child's exit status is lost when the
    # BEAM ignores SIGCHLD.
    :os.set_signal(:sigchld, :default)
    set_tf32()
    Emily.Worker.start_defaults()
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
  # environment is left alone.
  defp set_tf32 do
    if System.get_env("MLX_ENABLE_TF32") in [nil, ""] do
      System.put_env("MLX_ENABLE_TF32", if(Application.get_env(:emily, :tf32, false), do: "1", else: "0"))
    end
  end

  @impl true
  def stop(_state) do
    Emily.Worker.stop_defaults()
  end
end

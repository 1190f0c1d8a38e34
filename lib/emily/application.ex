defmodule Emily.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # mlx::core::compile runs g++ at run time; the child's exit status is lost when the
    # BEAM ignores SIGCHLD.
    :os.set_signal(:sigchld, :default)
    Emily.Worker.start_defaults()
    Emily.Memory.configure_from_env()

    children = [
      {Task.Supervisor, name: Emily.TaskSupervisor},
      Emily.Memory.Pressure
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Emily.Supervisor)
  end

  @impl true
  def stop(_state) do
    Emily.Worker.stop_defaults()
  end
end

if Code.ensure_loaded?(Bumblebee) do
  defmodule Emily.Models.ServingTest do
    # MiniLM behind Nx.Serving as a user runs it: batched for concurrent callers, and
    # served from another BEAM node. Not async: it compares MLX's memory with a baseline.
    use ExUnit.Case, async: false
    @moduletag :models
    @moduletag timeout: 600_000

    import Emily.ModelCase.Fixtures
    alias Emily.ModelCase.Serving

    setup_all do
      %{ref: json!("minilm/reference.json"), want: tensors!("minilm/reference.safetensors")}
    end

    defp cosine(a, b) do
      a = Nx.backend_copy(a, Emily.Backend)
      b = Nx.backend_copy(b, Emily.Backend)

      Nx.dot(a, b)
      |> Nx.divide(Nx.multiply(Nx.LinAlg.norm(a), Nx.LinAlg.norm(b)))
      |> Nx.to_number()
    end

    # Every sentence from its own process, all at once; each answer checked.
    defp hammer(name, ref, want) do
      ref["sentences"]
      |> Enum.with_index()
      |> Task.async_stream(
        fn {s, i} -> {i, Nx.Serving.batched_run(name, s)} end,
        max_concurrency: 16,
        ordered: false,
        timeout: 300_000
      )
      |> Enum.each(fn {:ok, {i, %{embedding: got}}} ->
        assert Nx.shape(got) == {384}
        c = cosine(got, want["embeddings"][i])
        assert c >= 0.99999, "sentence #{i}: cosine #{c}"
      end)
    end

    test "16 concurrent callers on a batched serving get sentence-transformers' embeddings, " <>
           "and MLX's memory goes back to its level before",
         %{ref: ref, want: want} do
      serving = Serving.minilm(compile: [batch_size: 8, sequence_length: 96])

      start_supervised!(
        {Nx.Serving,
         serving: serving, name: __MODULE__.Batched, batch_size: 8, batch_timeout: 50},
        id: :batched
      )

      # compiles the program and warms the cache
      hammer(__MODULE__.Batched, ref, want)
      before = Serving.settle()

      for _ <- 1..3, do: hammer(__MODULE__.Batched, ref, want)

      stop_supervised!(:batched)
      after_ = Serving.settle()

      assert after_.handles <= before.handles,
             "tensor handles: #{before.handles} before, #{after_.handles} after"

      assert after_.active <= before.active + 1_048_576,
             "MLX active memory: #{before.active} bytes before, #{after_.active} after"
    end

    test "a serving on another node answers {:distributed, name} requests", %{
      ref: ref,
      want: want
    } do
      peer = start_peer!()
      name = __MODULE__.Remote
      start_remote!(peer, name, {:minilm, [compile: [batch_size: 4, sequence_length: 96]]})
      hammer({:distributed, name}, ref, want)
    end

    test "a client tokenizing on its node sends its Emily tensors to a serving on another " <>
           "node with the distributed preprocessing Nx documents; the server's MLX memory " <>
           "goes back to its level before",
         %{ref: ref, want: want} do
      peer = start_peer!()
      name = __MODULE__.RemoteTokens
      start_remote!(peer, name, {:minilm_tokens, [batch_size: 4, sequence_length: 96]})
      {:ok, tokenizer} = Bumblebee.load_tokenizer({:local, Emily.ModelCase.model_dir(:minilm)})
      tokenizer = Bumblebee.configure(tokenizer, length: 96)

      client = fn ->
        ref["sentences"]
        |> Enum.with_index()
        |> Task.async_stream(
          fn {s, i} ->
            Nx.default_backend(Emily.Backend)
            inputs = Bumblebee.apply_tokenizer(tokenizer, [s])
            assert %Emily.Backend{} = inputs["input_ids"].data
            # Emily tensors are handles of this VM's memory: they travel as binary tensors
            got = Nx.Serving.batched_run({:distributed, name}, inputs, &Nx.backend_copy/1)
            {i, got}
          end,
          max_concurrency: 16,
          ordered: false,
          timeout: 300_000
        )
        |> Enum.each(fn {:ok, {i, got}} ->
          assert Nx.shape(got) == {1, 384}
          c = cosine(got[0], want["embeddings"][i])
          assert c >= 0.99999, "sentence #{i}: cosine #{c}"
        end)
      end

      # compiles and warms the cache
      client.()
      before = :erpc.call(peer, Serving, :settle, [])
      for _ <- 1..3, do: client.()
      after_ = :erpc.call(peer, Serving, :settle, [])

      assert after_.handles <= before.handles,
             "server's tensor handles: #{before.handles} before, #{after_.handles} after"

      assert after_.active <= before.active + 1_048_576,
             "server's MLX active memory: #{before.active} bytes before, #{after_.active} after"
    end

    test "an Emily tensor sent to another node is refused there by every op with an error " <>
           "naming its node, not a crash" do
      peer = start_peer!()
      t = Nx.tensor([1.0, 2.0], backend: Emily.Backend)

      for {f, args} <- [to_list: [t], add: [t, 1], sum: [t], concatenate: [[t, t]]] do
        assert {:error, %ArgumentError{} = e} = :erpc.call(peer, Serving, :try_op, [Nx, f, args])
        assert Exception.message(e) =~ "is a tensor of node #{node()}", "Nx.#{f}"
        assert Exception.message(e) =~ "Nx.backend_copy(tensor, Nx.BinaryBackend)", "Nx.#{f}"
      end

      # the copy users make instead
      assert :erpc.call(peer, Nx, :to_list, [Nx.backend_copy(t, Nx.BinaryBackend)]) == [1.0, 2.0]
      assert :erpc.call(peer, :erlang, :node, []) == peer
    end

    # Starts a serving of Emily.ModelCase.Serving's `builder` on `peer` and waits until this
    # node sees it.
    defp start_remote!(peer, name, builder) do
      start_opts = [batch_size: 4, batch_timeout: 20]
      pid = :erpc.call(peer, Serving, :start, [name, builder, start_opts], 300_000)
      on_exit(fn -> send(pid, :stop) end)
      wait_for_remote(name)
    end

    defp wait_for_remote(name, tries \\ 100) do
      if :pg.get_members(Nx.Serving.PG, name) |> Enum.any?(&(node(&1) != node())) do
        :ok
      else
        if tries == 0, do: flunk("the remote serving #{inspect(name)} did not register")
        Process.sleep(100)
        wait_for_remote(name, tries - 1)
      end
    end

    # A second BEAM on 127.0.0.1 with this one's code paths and Emily's applications.
    defp start_peer! do
      unless Node.alive?() do
        {_, 0} = System.cmd("epmd", ["-daemon"])
        {:ok, _} = Node.start(:"emily_models_#{System.unique_integer([:positive])}@127.0.0.1")
      end

      paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])

      {:ok, peer, node} =
        :peer.start_link(%{
          name: :"emily_peer_#{System.unique_integer([:positive])}",
          host: ~c"127.0.0.1",
          longnames: true,
          args: paths
        })

      on_exit(fn -> catch_exit(:peer.stop(peer)) end)
      {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:bumblebee])
      {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:emily])
      node
    end
  end
end

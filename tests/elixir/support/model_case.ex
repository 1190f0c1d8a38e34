defmodule Emily.ModelCase do
  @moduledoc false
  # The model tier: real models downloaded by scripts/models.sh and reference outputs made
  # by tests/models/make_references.py (PyTorch + transformers), committed under
  # tests/models/fixtures.

  @models %{
    minilm: "all-minilm-l6-v2/model.safetensors",
    smollm2: "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
  }

  @doc "Emily's cache of downloads and builds: $EMILY_CACHE, else ~/.cache/emily."
  def cache_dir, do: System.get_env("EMILY_CACHE") || Path.expand("~/.cache/emily")

  @doc "Where scripts/models.sh puts the models ($EMILY_CACHE/models)."
  def models_dir, do: Path.join(cache_dir(), "models")

  @doc "The file of a model under `models_dir/0`."
  def model_path(name), do: Path.join(models_dir(), Map.fetch!(@models, name))

  @doc "The directory of a model under `models_dir/0`."
  def model_dir(name), do: Path.dirname(model_path(name))

  @doc "The models' files that are not there."
  def missing_models do
    for {_, file} <- @models, not File.exists?(Path.join(models_dir(), file)), do: file
  end

  @doc "The committed reference fixtures' directory."
  def fixtures_dir, do: Path.expand("../../models/fixtures", __DIR__)
end

if Code.ensure_loaded?(Bumblebee) do
  defmodule Emily.ModelCase.Fixtures do
    @moduledoc false
    import Emily.ModelCase, only: [fixtures_dir: 0]

    @doc "A fixture's JSON, decoded."
    def json!(rel), do: fixtures_dir() |> Path.join(rel) |> File.read!() |> Jason.decode!()

    @doc "A fixture's safetensors tensors (a map of name => tensor on Emily.Backend)."
    def tensors!(rel) do
      fixtures_dir()
      |> Path.join(rel)
      |> Safetensors.read!()
      |> Map.new(fn {k, v} -> {k, Nx.backend_copy(v, Emily.Backend)} end)
    end

    @doc "Max |a - b| over all elements, as a float (both widened to f32)."
    def max_abs_diff(a, b) do
      Nx.subtract(Nx.as_type(a, :f32), Nx.as_type(b, :f32))
      |> Nx.abs()
      |> Nx.reduce_max()
      |> Nx.to_number()
    end

    @doc "The Emily.Compiler lanes every model runs through."
    def lanes, do: [:native, :fused]
  end
end

if Code.ensure_loaded?(Bumblebee) do
  defmodule Emily.ModelCase.Serving do
    @moduledoc false
    # MiniLM's embedding serving, the way a user starts one; also run on a peer node
    # (`:erpc`), so it lives in a compiled module rather than a test file.

    @doc "Bumblebee's text embedding serving of all-MiniLM-L6-v2 on Emily.Compiler."
    def minilm(opts \\ []) do
      dir = Emily.ModelCase.model_dir(:minilm)
      {:ok, model} = Bumblebee.load_model({:local, dir}, backend: Emily.Backend)
      {:ok, tokenizer} = Bumblebee.load_tokenizer({:local, dir})
      text_embedding(model, tokenizer, :native, opts)
    end

    @doc """
    Bumblebee's text embedding serving (sentence-transformers' mean pooling and L2 norm)
    of `model` on Emily.Compiler's `lane`; `opts` go to `Bumblebee.Text.text_embedding/3`.
    """
    def text_embedding(model, tokenizer, lane, opts \\ []) do
      Bumblebee.Text.text_embedding(
        model,
        tokenizer,
        [
          output_attribute: :hidden_state,
          output_pool: :mean_pooling,
          embedding_processor: :l2_norm,
          defn_options: [compiler: Emily.Compiler, lane: lane, native_fallback: :raise]
        ] ++ opts
      )
    end

    @doc """
    All-MiniLM-L6-v2 as a serving of token tensors, for clients that tokenize themselves:
    its input is a map with `"input_ids"` and `"attention_mask"`, each `{n, length}`
    (`n <= batch_size`), its output the `{n, 384}` mean-pooled, L2-normalized embeddings.
    The model is compiled ahead of time for `{batch_size, length}` on Emily.Compiler.
    """
    def minilm_tokens(opts) do
      batch_size = Keyword.fetch!(opts, :batch_size)
      length = Keyword.fetch!(opts, :sequence_length)
      dir = Emily.ModelCase.model_dir(:minilm)
      {:ok, model} = Bumblebee.load_model({:local, dir}, backend: Emily.Backend)
      {_init, predict} = Axon.build(model.model)
      params = model.params
      template = Nx.template({batch_size, length}, :u32)

      Nx.Serving.new(
        fn defn_options ->
          embed =
            Nx.Defn.compile(
              fn params, inputs ->
                hidden = predict.(params, inputs).hidden_state
                mask = Nx.new_axis(inputs["attention_mask"], -1)

                pooled =
                  Nx.divide(Nx.sum(Nx.multiply(hidden, mask), axes: [1]), Nx.sum(mask, axes: [1]))

                Nx.divide(pooled, Nx.LinAlg.norm(pooled, axes: [-1], keep_axes: true))
              end,
              [params, %{"input_ids" => template, "attention_mask" => template}],
              defn_options
            )

          fn batch -> embed.(params, Nx.Batch.pad(batch, batch_size - batch.size)) end
        end,
        compiler: Emily.Compiler,
        native_fallback: :raise
      )
      |> Nx.Serving.batch_size(batch_size)
      |> Nx.Serving.client_preprocessing(fn inputs ->
        {Nx.Batch.concatenate([Map.take(inputs, ["input_ids", "attention_mask"])]), :ok}
      end)
      |> Nx.Serving.client_postprocessing(fn {embeddings, _meta}, :ok -> embeddings end)
    end

    @doc "Collects every process's garbage, then returns `Emily.memory_stats/0`."
    def settle do
      for p <- Process.list(), do: :erlang.garbage_collect(p)
      Process.sleep(50)
      Emily.memory_stats()
    end

    @doc "`apply(m, f, args)`, or the exception it raised (run on a peer node)."
    def try_op(m, f, args) do
      {:ok, apply(m, f, args)}
    rescue
      e -> {:error, e}
    end

    @doc """
    Starts the serving `builder` of this module makes from `builder_opts` as `name`, under a process of its own that outlives the caller (an
    `:erpc` call returns before the serving is used) and returns that process.
    """
    def start(name, {builder, builder_opts}, start_opts) do
      caller = self()

      pid =
        spawn(fn ->
          Process.flag(:trap_exit, true)
          serving = apply(__MODULE__, builder, [builder_opts])
          # Tensors do not cross nodes (Emily.Backend): results go back as Nx.BinaryBackend
          serving =
            Nx.Serving.distributed_postprocessing(serving, &Nx.backend_copy(&1, Nx.BinaryBackend))

          {:ok, sup} = Nx.Serving.start_link([serving: serving, name: name] ++ start_opts)
          send(caller, {:started, self()})

          receive do
            :stop -> Supervisor.stop(sup)
          end
        end)

      receive do
        {:started, ^pid} -> pid
      after
        120_000 -> raise "serving #{inspect(name)} did not start"
      end
    end
  end
end

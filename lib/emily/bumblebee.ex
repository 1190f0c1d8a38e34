if Code.ensure_loaded?(Bumblebee) do
  defmodule Emily.Bumblebee do
    @moduledoc """
    Loads GGUF models (llama.cpp's files) as Bumblebee models: the spec from the GGUF
    metadata, the parameters from its tensors (`Emily.GGUF`, dequantized to f32 on MLX) and
    the tokenizer from its vocabulary and merges. Compiled when Bumblebee is available.

        {:ok, model_info} = Emily.Bumblebee.load_gguf_model("SmolLM2-135M-Instruct.Q4_1.gguf")
        {:ok, tokenizer} = Emily.Bumblebee.load_gguf_tokenizer("SmolLM2-135M-Instruct.Q4_1.gguf")
        {:ok, generation_config} = Emily.Bumblebee.load_gguf_generation_config("...gguf")
        serving = Bumblebee.Text.generation(model_info, tokenizer, generation_config)

    Architectures: `llama` (Llama, SmolLM, Mistral-style models without sliding windows).
    Tokenizers: `gpt2` (byte-level BPE, with the pre-tokenizer named by
    `tokenizer.ggml.pre`: `smollm` splits digits one by one, as its Hugging Face tokenizer
    does; other names use GPT-2's byte-level split alone).

    ## From GGUF to Bumblebee's Llama

    | GGUF | Bumblebee (`Bumblebee.Text.Llama`) |
    |---|---|
    | `token_embd.weight` `{vocab, hidden}` | `embedder.token_embedding` kernel; the LM head's kernel too when there is no `output.weight` (tied) |
    | `blk.N.attn_q.weight`, `attn_k` | `decoder.blocks.N.self_attention.query`, `key` kernels, transposed, rows un-permuted (below) |
    | `blk.N.attn_v.weight`, `attn_output` | `value`, `output` kernels, transposed |
    | `blk.N.ffn_gate`, `ffn_up`, `ffn_down` | `ffn.gate`, `ffn.intermediate`, `ffn.output` kernels, transposed |
    | `blk.N.attn_norm`, `ffn_norm`, `output_norm` | `self_attention_norm`, `output_norm` (block), `output_norm` weights |

    llama.cpp's converter permutes the rows of the query and key projections of each head
    from Hugging Face's rotary layout (first half, second half) to interleaved pairs:
    row `h * d + 2 * i + j` of the GGUF tensor is row `h * d + j * d / 2 + i` of the
    original (`d` the head size, `j` in 0..1). It is undone here, as transformers does
    when it loads a GGUF file.
    """

    alias Emily.GGUF
    require Logger

    @doc """
    Loads the model of a GGUF file as Bumblebee's model info (`%{model:, params:, spec:}`)
    for `:for_causal_language_modeling` (or `opts[:architecture]`). `path` may be an
    `Emily.GGUF` read already. Options:

      * `:quantized` - when true, the projection matrices stored as Q4_0, Q4_1 or Q8_0 (and
        the LM head) stay quantized (`Emily.GGUF.quantized/3`) and their dense layers
        become `Emily.Quantized.dot/2` layers (see `quantize/2`); other types are
        dequantized, with a log line naming them. Default false: every tensor is
        dequantized.
      * `:type` - converts the float parameters, scales and biases included (default
        `{:f, 32}`)
      * `:backend` - goes to `Emily.GGUF.tensor/3`
    """
    def load_gguf_model(path_or_gguf, opts \\ []) do
      gguf = gguf!(path_or_gguf)
      arch = GGUF.fetch_metadata!(gguf, "general.architecture")

      unless arch == "llama" do
        raise ArgumentError,
              "Emily.Bumblebee: GGUF architecture #{inspect(arch)} is not supported (llama is)"
      end

      spec = llama_spec(gguf, Keyword.get(opts, :architecture, :for_causal_language_modeling))
      type = Keyword.get(opts, :type, {:f, 32})
      quantized? = Keyword.get(opts, :quantized, false)
      tensor_opts = [backend: Keyword.get(opts, :backend, [])]
      get = fn name -> GGUF.tensor(gguf, name, tensor_opts) |> Nx.as_type(type) end
      head_size = div(spec.hidden_size, spec.num_attention_heads)

      # A projection {out, in} as its layer's params: a quantized matrix, or the kernel
      # {in, out}. `rows` reorders the output rows (the query and key projections).
      matrix = fn name, rows ->
        info = Map.fetch!(gguf.tensors, name)

        if quantized? and GGUF.quantizable?(info) do
          q = GGUF.quantized(gguf, name, tensor_opts)

          q = %{
            q
            | weight: rows.(q.weight),
              scales: q.scales |> rows.() |> Nx.as_type(type),
              biases: q.biases |> rows.() |> Nx.as_type(type)
          }

          quantized_params(q)
        else
          if quantized? do
            Logger.info(
              "Emily.Bumblebee: #{name} is #{info.type}, not Q4_0, Q4_1 or Q8_0: dequantized"
            )
          end

          %{"kernel" => name |> get.() |> rows.() |> Nx.transpose()}
        end
      end

      kernel = &matrix.(&1, fn w -> w end)
      qk = fn name, heads -> matrix.(name, &unpermute(&1, heads, head_size)) end
      embedding = get.("token_embd.weight")
      head_name = if Map.has_key?(gguf.tensors, "output.weight"), do: "output.weight"

      # Bumblebee's LM head is dense_transposed: its kernel is {vocab, hidden}, as GGUF's.
      lm_head =
        case matrix.(head_name || "token_embd.weight", fn w -> w end) do
          %{"kernel" => _} when head_name == nil -> %{"kernel" => embedding}
          %{"kernel" => k} -> %{"kernel" => Nx.transpose(k)}
          quantized -> quantized
        end

      blocks =
        for n <- 0..(spec.num_blocks - 1), reduce: %{} do
          acc ->
            b = "blk.#{n}."
            p = "decoder.blocks.#{n}."

            Map.merge(acc, %{
              (p <> "self_attention.query") =>
                qk.(b <> "attn_q.weight", spec.num_attention_heads),
              (p <> "self_attention.key") => qk.(b <> "attn_k.weight", spec.num_key_value_heads),
              (p <> "self_attention.value") => kernel.(b <> "attn_v.weight"),
              (p <> "self_attention.output") => kernel.(b <> "attn_output.weight"),
              (p <> "self_attention_norm") => %{"weight" => get.(b <> "attn_norm.weight")},
              (p <> "ffn.gate") => kernel.(b <> "ffn_gate.weight"),
              (p <> "ffn.intermediate") => kernel.(b <> "ffn_up.weight"),
              (p <> "ffn.output") => kernel.(b <> "ffn_down.weight"),
              (p <> "output_norm") => %{"weight" => get.(b <> "ffn_norm.weight")}
            })
        end

      data =
        Map.merge(blocks, %{
          "embedder.token_embedding" => %{"kernel" => embedding},
          "output_norm" => %{"weight" => get.("output_norm.weight")},
          "language_modeling_head.output" => lm_head
        })

      # One evaluation for every parameter, so the model runs on materialised weights.
      data
      |> Map.values()
      |> Enum.flat_map(&Map.values/1)
      |> Enum.map(& &1.data.ref)
      |> Emily.eval()

      model = spec |> Bumblebee.build_model() |> rewrite_quantized(data)
      {:ok, %{model: model, params: Axon.ModelState.new(data), spec: spec}}
    end

    @doc """
    Quantizes the dense layers of a loaded Bumblebee model (`%{model:, params:}`, as from
    `Bumblebee.load_model/2` or `load_gguf_model/2`): each `Axon.dense` or Bumblebee
    `dense_transposed` layer whose input size is a multiple of the group size gets its
    kernel quantized with `Emily.Quantized.quantize/2` (MLX's affine quantization) and
    becomes a layer computing `Emily.Quantized.dot/2` (plus its bias), natively on
    `Emily.Backend` in every `Emily.Compiler` lane. Returns the model info with the new
    model and params.

    Options: `:bits` (4 or 8; default 4), `:group_size` (32, 64 or 128; default 64),
    `:only` (a function of the layer name; default: every dense layer).
    """
    def quantize(%{model: model, params: params} = model_info, opts \\ []) do
      opts = Keyword.validate!(opts, bits: 4, group_size: 64, only: fn _ -> true end)
      data = model_state_data(params)

      layers =
        Axon.reduce_nodes(model, %{}, fn
          %Axon.Node{op_name: op, name: name_fn}, acc when op in [:dense, :dense_transposed] ->
            Map.put(acc, name_fn.(op, %{}), op)

          _node, acc ->
            acc
        end)

      data =
        Enum.reduce(layers, data, fn {name, op}, data ->
          with %{"kernel" => kernel} = layer <- data[name],
               true <- opts[:only].(name),
               # dense kernels are {in, out}, dense_transposed ones {out, in}
               w = if(op == :dense, do: Nx.transpose(kernel), else: kernel),
               0 <- rem(elem(w.shape, 1), opts[:group_size]) do
            q = Emily.Quantized.quantize(w, bits: opts[:bits], group_size: opts[:group_size])
            bias = Map.take(layer, ["bias"])
            Map.put(data, name, Map.merge(quantized_params(q), bias))
          else
            _ -> data
          end
        end)

      %{
        model_info
        | model: rewrite_quantized(model, data),
          params: put_model_state_data(params, data)
      }
    end

    defp model_state_data(%Axon.ModelState{data: data}), do: data
    defp model_state_data(%{} = data), do: data
    defp put_model_state_data(%Axon.ModelState{} = s, data), do: %{s | data: data}
    defp put_model_state_data(%{}, data), do: data

    defp quantized_params(%Emily.Quantized{} = q),
      do: %{"weight" => q.weight, "scales" => q.scales, "biases" => q.biases}

    # Every dense/dense_transposed layer whose params are quantized ("weight", "scales",
    # "biases") becomes an Emily.Quantized.dot layer of the same name.
    defp rewrite_quantized(model, data) do
      Axon.rewrite_nodes(model, fn
        %Axon.Node{op_name: op, name: name_fn} when op in [:dense, :dense_transposed] ->
          name = name_fn.(op, %{})

          case data[name] do
            %{"weight" => w, "scales" => s, "biases" => b} = layer ->
              fn [x], _output ->
                params = [
                  Axon.param("weight", w.shape, type: w.type),
                  Axon.param("scales", s.shape, type: s.type),
                  Axon.param("biases", b.shape, type: b.type)
                ]

                {params, fun} =
                  case layer do
                    %{"bias" => bias} ->
                      {params ++ [Axon.param("bias", bias.shape, type: bias.type)],
                       &quantized_dense/6}

                    _ ->
                      {params, &quantized_dense/5}
                  end

                Axon.layer(fun, [x | params], name: name, op_name: :quantized_dense)
              end

            _ ->
              :skip
          end

        _node ->
          :skip
      end)
    end

    @doc false
    def quantized_dense(x, weight, scales, biases, bias \\ nil, _opts) do
      cols = elem(Nx.shape(x), Nx.rank(x) - 1)
      y = Emily.Quantized.dot(x, Emily.Quantized.new(weight, scales, biases, cols))
      if bias, do: Nx.add(y, bias), else: y
    end

    @doc """
    The tokenizer of a GGUF file (`tokenizer.ggml.*` metadata) as a Bumblebee tokenizer.
    Its files (`tokenizer.json`, `special_tokens_map.json`) are written to `opts[:dir]`
    (default: a directory under `System.tmp_dir!/0` named after the file's contents).
    """
    def load_gguf_tokenizer(path_or_gguf, opts \\ []) do
      gguf = gguf!(path_or_gguf)
      model = GGUF.fetch_metadata!(gguf, "tokenizer.ggml.model")

      unless model == "gpt2" do
        raise ArgumentError,
              "Emily.Bumblebee: GGUF tokenizer model #{inspect(model)} is not supported (gpt2 is)"
      end

      tokens = GGUF.fetch_metadata!(gguf, "tokenizer.ggml.tokens")
      types = Map.get(gguf.metadata, "tokenizer.ggml.token_type", [])
      merges = GGUF.fetch_metadata!(gguf, "tokenizer.ggml.merges")
      pre = Map.get(gguf.metadata, "tokenizer.ggml.pre", "default")

      # Control (3) and user-defined (4) tokens are matched before the model runs.
      added =
        for {{token, type}, id} <- Enum.with_index(Enum.zip(tokens, types)), type in [3, 4] do
          %{
            id: id,
            content: token,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: type == 3
          }
        end

      byte_level = %{
        type: "ByteLevel",
        add_prefix_space: false,
        trim_offsets: true,
        use_regex: true
      }

      pre_tokenizer =
        case pre do
          "smollm" ->
            %{
              type: "Sequence",
              pretokenizers: [%{type: "Digits", individual_digits: true}, byte_level]
            }

          _ ->
            byte_level
        end

      json = %{
        version: "1.0",
        truncation: nil,
        padding: nil,
        added_tokens: added,
        normalizer: nil,
        pre_tokenizer: pre_tokenizer,
        post_processor: %{byte_level | trim_offsets: false},
        decoder: %{byte_level | add_prefix_space: true},
        model: %{
          type: "BPE",
          dropout: nil,
          unk_token: nil,
          continuing_subword_prefix: nil,
          end_of_word_suffix: nil,
          fuse_unk: false,
          byte_fallback: false,
          vocab: tokens |> Enum.with_index() |> Map.new(),
          merges: merges
        }
      }

      token = fn key ->
        case Map.fetch(gguf.metadata, "tokenizer.ggml.#{key}_token_id") do
          {:ok, id} -> Enum.at(tokens, id)
          :error -> nil
        end
      end

      special =
        %{
          "bos_token" => token.("bos"),
          "eos_token" => token.("eos"),
          "unk_token" => token.("unknown"),
          "pad_token" => token.("padding")
        }
        |> Map.reject(fn {_, v} -> is_nil(v) end)

      encoded = Jason.encode!(json)
      dir = opts[:dir] || default_dir(encoded)
      File.mkdir_p!(dir)
      File.write!(Path.join(dir, "tokenizer.json"), encoded)
      File.write!(Path.join(dir, "special_tokens_map.json"), Jason.encode!(special))
      Bumblebee.load_tokenizer({:local, dir}, type: :llama)
    end

    @doc """
    A generation config for a GGUF model: its end-of-sequence and padding tokens, and
    `opts` (any `Bumblebee.Text.GenerationConfig` option, e.g. `max_new_tokens: 32`).
    """
    def load_gguf_generation_config(path_or_gguf, opts \\ []) do
      gguf = gguf!(path_or_gguf)
      m = gguf.metadata

      base =
        [
          bos_token_id: m["tokenizer.ggml.bos_token_id"],
          eos_token_id: m["tokenizer.ggml.eos_token_id"],
          pad_token_id: m["tokenizer.ggml.padding_token_id"] || m["tokenizer.ggml.eos_token_id"]
        ]
        |> Enum.reject(fn {_, v} -> is_nil(v) end)

      {:ok, Bumblebee.configure(Bumblebee.Text.GenerationConfig, Keyword.merge(base, opts))}
    end

    defp llama_spec(gguf, architecture) do
      m = fn key -> GGUF.fetch_metadata!(gguf, "llama." <> key) end
      heads = m.("attention.head_count")
      vocab = length(GGUF.fetch_metadata!(gguf, "tokenizer.ggml.tokens"))

      Bumblebee.configure(Bumblebee.Text.Llama,
        architecture: architecture,
        vocab_size: Map.get(gguf.metadata, "llama.vocab_size", vocab),
        max_positions: m.("context_length"),
        hidden_size: m.("embedding_length"),
        intermediate_size: m.("feed_forward_length"),
        num_blocks: m.("block_count"),
        num_attention_heads: heads,
        num_key_value_heads: Map.get(gguf.metadata, "llama.attention.head_count_kv", heads),
        rotary_embedding_base: Map.get(gguf.metadata, "llama.rope.freq_base", 10_000.0),
        layer_norm_epsilon: m.("attention.layer_norm_rms_epsilon"),
        tie_word_embeddings: not Map.has_key?(gguf.tensors, "output.weight")
      )
    end

    # {heads * d, in}: interleaved rotary pairs back to halves, per head.
    defp unpermute(w, heads, d) do
      {rows, cols} = Nx.shape(w)
      true = rows == heads * d

      w
      |> Nx.reshape({heads, div(d, 2), 2, cols})
      |> Nx.transpose(axes: [0, 2, 1, 3])
      |> Nx.reshape({rows, cols})
    end

    defp gguf!(%GGUF{} = g), do: g
    defp gguf!(path), do: GGUF.read!(path)

    defp default_dir(encoded) do
      hash =
        :crypto.hash(:sha256, encoded) |> Base.url_encode64(padding: false) |> binary_part(0, 16)

      Path.join(System.tmp_dir!(), "emily-gguf-tokenizer-" <> hash)
    end
  end
end

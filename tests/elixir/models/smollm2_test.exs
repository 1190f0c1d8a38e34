if Code.ensure_loaded?(Bumblebee) do
  defmodule Emily.Models.SmolLM2Test do
    # SmolLM2-135M-Instruct from its GGUF (Q4_1; Emily.Bumblebee loads model, tokenizer
    # and generation config) against transformers on the same dequantized weights
    # (tests/models/fixtures/smollm2; transformers loads the same GGUF file).
    use ExUnit.Case, async: true
    @moduletag :models
    @moduletag timeout: 900_000

    import Emily.ModelCase.Fixtures

    setup_all do
      path = Emily.ModelCase.model_path(:smollm2)
      gguf = Emily.GGUF.read!(path)
      {:ok, model} = Emily.Bumblebee.load_gguf_model(gguf)
      {:ok, tokenizer} = Emily.Bumblebee.load_gguf_tokenizer(gguf)
      {:ok, generation_config} = Emily.Bumblebee.load_gguf_generation_config(gguf)

      %{
        model: model,
        tokenizer: tokenizer,
        generation_config: generation_config,
        ref: json!("smollm2/reference.json"),
        want: tensors!("smollm2/reference.safetensors")
      }
    end

    defp ids(list), do: Nx.tensor([list], type: :u32)

    # Greedy generation of the reference's token count for each chat prompt, on `lane`,
    # gives transformers' ids. As the reference: pure greedy, and an end-of-sequence token
    # does not stop it.
    defp assert_greedy_ids(model, config, ref, lane) do
      config =
        Bumblebee.configure(config,
          max_new_tokens: ref["new_tokens"],
          eos_token_id: nil,
          strategy: %{type: :greedy_search}
        )

      generate =
        model.model
        |> Bumblebee.Text.Generation.build_generate(model.spec, config)
        |> Nx.Defn.jit(compiler: Emily.Compiler, lane: lane, native_fallback: :raise)

      for c <- ref["chat"] do
        ids = ids(c["input_ids"])

        inputs = %{
          "input_ids" => ids,
          "attention_mask" => Nx.broadcast(1, Nx.shape(ids)),
          "seed" => Nx.tensor([0])
        }

        %{token_ids: got} = generate.(model.params, inputs)
        assert Nx.to_flat_list(got) == c["new_ids"], "lane #{lane}, #{inspect(c["prompt"])}"
      end
    end

    test "the GGUF tokenizer gives transformers' ids for the chat and completion prompts",
         %{tokenizer: tokenizer, ref: ref} do
      for c <- ref["chat"] ++ [ref["completion"]] do
        text = c["formatted"] || c["prompt"]
        enc = Bumblebee.apply_tokenizer(tokenizer, text)
        assert Nx.to_flat_list(enc["input_ids"]) == c["input_ids"], inspect(text)
        # Bumblebee decodes without special tokens
        assert Bumblebee.Tokenizer.decode(tokenizer, c["new_ids"]) ==
                 Map.get(c, "text_skip_special", c["text"])
      end
    end

    test "layer 0 and the global weights are transformers' (dequantized, un-permuted)",
         %{model: model} do
      want = tensors!("smollm2/weights_layer0.safetensors")
      params = model.params.data
      hf = "model.layers.0."
      bb = "decoder.blocks.0."

      kernels = [
        {"self_attn.q_proj", "self_attention.query"},
        {"self_attn.k_proj", "self_attention.key"},
        {"self_attn.v_proj", "self_attention.value"},
        {"self_attn.o_proj", "self_attention.output"},
        {"mlp.gate_proj", "ffn.gate"},
        {"mlp.up_proj", "ffn.intermediate"},
        {"mlp.down_proj", "ffn.output"}
      ]

      for {h, b} <- kernels do
        w = want[hf <> h <> ".weight"]
        # Bumblebee's kernels are {in, out}; the fixture keeps transformers' first rows
        got =
          params[bb <> b]["kernel"]
          |> Nx.transpose()
          |> Nx.slice([0, 0], Tuple.to_list(Nx.shape(w)))

        assert max_abs_diff(got, w) == 0.0, h
      end

      norms = [
        {hf <> "input_layernorm.weight", params[bb <> "self_attention_norm"]["weight"]},
        {hf <> "post_attention_layernorm.weight", params[bb <> "output_norm"]["weight"]},
        {"model.norm.weight", params["output_norm"]["weight"]}
      ]

      for {h, got} <- norms, do: assert(max_abs_diff(got, want[h]) == 0.0, h)

      w = want["model.embed_tokens.weight"]

      got =
        params["embedder.token_embedding"]["kernel"]
        |> Nx.slice([0, 0], Tuple.to_list(Nx.shape(w)))

      assert max_abs_diff(got, w) == 0.0
    end

    for lane <- lanes() do
      @lane lane
      test "lane #{lane}: first-step logits within 1e-3 of transformers'",
           %{model: model, ref: ref, want: want} do
        {_init, predict} =
          Axon.build(model.model, compiler: Emily.Compiler, lane: @lane, native_fallback: :raise)

        prompts =
          Enum.with_index(ref["chat"], fn c, i -> {c, want["chat_first_step_logits"][i]} end) ++
            [{ref["completion"], want["completion_first_step_logits"]}]

        for {c, want_logits} <- prompts do
          ids = ids(c["input_ids"])
          inputs = %{"input_ids" => ids, "attention_mask" => Nx.broadcast(1, Nx.shape(ids))}
          %{logits: logits} = predict.(model.params, inputs)
          last = logits[[0, -1]]
          diff = max_abs_diff(last, want_logits)
          assert diff <= 1.0e-3, "lane #{@lane}, #{inspect(c["prompt"])}: #{diff}"

          assert Nx.to_number(Nx.argmax(last)) == c["first_step_argmax"]
        end
      end

      test "lane #{lane}: greedy generation of 32 tokens for 4 chat prompts gives " <>
             "transformers' token ids",
           %{model: model, generation_config: config, ref: ref} do
        assert_greedy_ids(model, config, ref, @lane)
      end
    end

    describe "kept quantized (load_gguf_model quantized: true)" do
      setup %{model: model} do
        path = Emily.ModelCase.model_path(:smollm2)
        {:ok, quantized} = Emily.Bumblebee.load_gguf_model(path, quantized: true)
        %{quantized: quantized, f32: model}
      end

      test "the GGUF blocks in MLX's layout dequantize to transformers' weights, bit for bit",
           %{quantized: model} do
        gguf = Emily.GGUF.read!(Emily.ModelCase.model_path(:smollm2))
        want = tensors!("smollm2/weights_layer0.safetensors")

        for {gguf_name, hf} <- [
              {"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight"},
              {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"},
              {"token_embd.weight", "model.embed_tokens.weight"}
            ] do
          q = Emily.GGUF.quantized(gguf, gguf_name)
          assert {q.bits, q.group_size} == if(gguf_name =~ "token", do: {8, 32}, else: {4, 32})
          w = want[hf]
          got = q |> Emily.Quantized.dequantize() |> Nx.slice([0, 0], Tuple.to_list(Nx.shape(w)))
          assert max_abs_diff(got, w) == 0.0, gguf_name
        end

        # the query rows un-permuted as the f32 kernels are
        w = want["model.layers.0.self_attn.q_proj.weight"]
        p = model.params.data["decoder.blocks.0.self_attention.query"]
        q = Emily.Quantized.new(p["weight"], p["scales"], p["biases"], 576)
        got = q |> Emily.Quantized.dequantize() |> Nx.slice([0, 0], Tuple.to_list(Nx.shape(w)))
        assert max_abs_diff(got, w) == 0.0
      end

      test "every projection and the LM head run quantized", %{quantized: model} do
        ops =
          Axon.reduce_nodes(model.model, %{}, fn node, acc ->
            Map.update(acc, node.op_name, 1, &(&1 + 1))
          end)

        # 7 projections in each of 30 blocks, and the LM head (tied: token_embd, Q8_0)
        assert ops[:quantized_dense] == 30 * 7 + 1
        refute Map.has_key?(ops, :dense)
        refute Map.has_key?(ops, :dense_transposed)
        assert model.params.data["language_modeling_head.output"]["weight"].type == {:u, 32}
      end

      for lane <- lanes() do
        @lane lane
        test "lane #{lane}: first-step logits within 1e-3 of transformers', greedy tokens " <>
               "for 4 chat prompts x 32 identical",
             %{quantized: model, generation_config: config, ref: ref, want: want} do
          {_init, predict} =
            Axon.build(model.model,
              compiler: Emily.Compiler,
              lane: @lane,
              native_fallback: :raise
            )

          for {c, i} <- Enum.with_index(ref["chat"]) do
            ids = ids(c["input_ids"])
            inputs = %{"input_ids" => ids, "attention_mask" => Nx.broadcast(1, Nx.shape(ids))}
            %{logits: logits} = predict.(model.params, inputs)
            diff = max_abs_diff(logits[[0, -1]], want["chat_first_step_logits"][i])
            assert diff <= 1.0e-3, "lane #{@lane}, #{inspect(c["prompt"])}: #{diff}"
          end

          assert_greedy_ids(model, config, ref, @lane)
        end
      end
    end

    test "Bumblebee's generation serving completes the prompt as transformers does",
         %{model: model, tokenizer: tokenizer, generation_config: config, ref: ref} do
      c = ref["completion"]
      config = Bumblebee.configure(config, max_new_tokens: length(c["new_ids"]))

      serving =
        Bumblebee.Text.generation(model, tokenizer, config,
          defn_options: [compiler: Emily.Compiler, native_fallback: :raise]
        )

      %{results: [%{text: text, token_summary: summary}]} = Nx.Serving.run(serving, c["prompt"])
      assert text == c["text"]
      assert summary.output == length(c["new_ids"])
    end

    test "Bumblebee's serving streams the completion as it is generated (its loop, whose " <>
           "hook sends each token, falls back to the evaluator lane)",
         %{model: model, tokenizer: tokenizer, generation_config: config, ref: ref} do
      c = ref["completion"]
      config = Bumblebee.configure(config, max_new_tokens: length(c["new_ids"]))

      serving =
        Bumblebee.Text.generation(model, tokenizer, config,
          stream: true,
          defn_options: [compiler: Emily.Compiler]
        )

      me = self()
      id = {__MODULE__, :stream_fallback}

      :telemetry.attach(
        id,
        [:emily, :compiler, :fallback],
        fn _, _, meta, _ -> send(me, {:fallback, meta.reason}) end,
        nil
      )

      try do
        chunks = serving |> Nx.Serving.run(c["prompt"]) |> Enum.to_list()
        assert length(chunks) > 1
        assert Enum.join(chunks) == c["text"]
        assert_received {:fallback, "a hook with a callback inside while or cond"}
      after
        :telemetry.detach(id)
      end
    end

    test "sampling (temperature, top-k, top-p) on the native lane draws what the evaluator " <>
           "lane draws for the same seed",
         %{model: model, tokenizer: tokenizer, generation_config: config, ref: ref} do
      c = ref["completion"]

      config =
        Bumblebee.configure(config,
          max_new_tokens: length(c["new_ids"]),
          eos_token_id: nil,
          temperature: 0.8,
          strategy: %{type: :multinomial_sampling, top_k: 20, top_p: 0.9}
        )

      sample = fn lane, seed ->
        serving =
          Bumblebee.Text.generation(model, tokenizer, config,
            defn_options: [compiler: Emily.Compiler, lane: lane, native_fallback: :raise]
          )

        %{results: [%{text: text}]} = Nx.Serving.run(serving, %{text: c["prompt"], seed: seed})
        text
      end

      drawn = sample.(:native, 7)
      assert drawn == sample.(:evaluator, 7)
      assert drawn != sample.(:native, 8)
    end
  end
end

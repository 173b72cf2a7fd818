"""What the memory estimate assumes, the trainer does: parameter dtypes, the logit-free loss, the
optimizer, offloaded checkpoints (issue 11). Tiny models on CPU; bitsandbytes 4-bit runs on CPU."""

from __future__ import annotations

import pytest
import torch

from tunesmith.core.config import RunConfig
from tunesmith.core.train.loss import chunked_causal_lm_loss
from tunesmith.core.train.models import load_model, parameter_dtypes, resolve_loss, resolve_optimizer


def cfg_for(model_dir, *overrides) -> RunConfig:
    cfg = RunConfig()
    cfg.model.name_or_path = str(model_dir)
    cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout = 8, 16, 0.0
    return cfg.with_overrides(list(overrides))


def packed_batch(vocab: int, seed: int = 0):
    """Two rows of two packed samples each, first tokens and the padding tail at -100 (as PackedCollator)."""
    from tunesmith.core.train.collate import PackedCollator

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (40,), generator=g).tolist()
    rows = [{"input_ids": ids[:12] + ids[12:20], "position_ids": list(range(12)) + list(range(8))},
            {"input_ids": ids[20:34], "position_ids": list(range(6)) + list(range(8))},
            ]
    for r in rows:
        r["labels"] = list(r["input_ids"])
    rows[1]["labels"][3] = -100  # a masked prompt token
    batch = PackedCollator(pad_token_id=0)(rows)
    batch.pop("num_tokens")
    batch.pop("use_cache")
    return batch


@pytest.fixture(scope="module")
def qlora_bf16(tiny_model_dir):
    torch.manual_seed(0)
    cfg = cfg_for(tiny_model_dir, "method.finetuning=qlora", "training.precision=bf16",
                  "model.gradient_checkpointing=true")
    return cfg, load_model(cfg)


def test_qlora_keeps_frozen_weights_in_the_compute_dtype(qlora_bf16):
    cfg, model = qlora_bf16
    base = model.get_base_model()
    assert base.get_input_embeddings().weight.dtype == torch.bfloat16
    assert base.get_output_embeddings().weight.dtype == torch.bfloat16
    assert base.model.norm.weight.dtype == torch.bfloat16
    four_bit = [p for p in base.parameters() if p.__class__.__name__ == "Params4bit"]
    assert len(four_bit) == 2 * 7  # every decoder linear layer of the 2 layers is 4-bit
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora)
    frozen = [p for n, p in model.named_parameters() if "lora_" not in n]
    assert not any(p.requires_grad for p in frozen)
    assert parameter_dtypes(cfg, "bf16") == {"quantized": "nf4", "frozen": "bf16", "adapters": "fp32",
                                             "trainable": "fp32"}
    assert base.model.gradient_checkpointing


def test_qlora_bf16_step_reduces_the_loss_and_grads_reach_every_adapter(qlora_bf16):
    _cfg, model = qlora_bf16
    model.train()
    vocab = model.get_base_model().config.vocab_size
    batch = packed_batch(vocab)
    lora = [p for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(lora, lr=1e-2)
    losses = []
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0
                   for n, p in model.named_parameters() if "lora_B" in n)
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    a_grads_seen = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(a_grads_seen) == 2 * 2 * 7  # A and B of 7 adapted layers in 2 layers


def _standard_and_chunked(model, batch, num_items=None):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    out = base.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"])
    hidden = out.last_hidden_state
    logits = base.lm_head(hidden)
    kwargs = {} if num_items is None else {"num_items_in_batch": num_items}
    standard = base.loss_function(logits=logits, labels=batch["labels"], vocab_size=base.config.vocab_size, **kwargs)
    chunked = chunked_causal_lm_loss(hidden, base.lm_head.weight, batch["labels"], num_items_in_batch=num_items,
                                     chunk=5)
    return hidden, standard, chunked


@pytest.mark.parametrize("num_items", [None, 17])
def test_chunked_loss_equals_the_standard_loss_and_gradients(tiny_model_dir, num_items):
    cfg = cfg_for(tiny_model_dir, "method.finetuning=lora", "model.gradient_checkpointing=false")
    model = load_model(cfg)
    model.train()
    torch.manual_seed(1)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.02)  # B starts at 0: make the adapters matter
    batch = packed_batch(model.get_base_model().config.vocab_size)
    items = None if num_items is None else torch.tensor(num_items)
    hidden, standard, chunked = _standard_and_chunked(model, batch, items)
    assert abs(float(standard) - float(chunked)) <= 1e-5 * max(1.0, abs(float(standard)))
    lora = [p for p in model.parameters() if p.requires_grad]
    g_std = torch.autograd.grad(standard, [hidden] + lora, retain_graph=True)
    g_chk = torch.autograd.grad(chunked, [hidden] + lora)
    for a, b in zip(g_std, g_chk):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), float((a - b).abs().max())
    if num_items is not None:  # token-weighted over the accumulated batch: sum / num_items_in_batch
        valid = int((batch["labels"][:, 1:] != -100).sum())
        mean = chunked_causal_lm_loss(hidden.detach(), model.get_base_model().lm_head.weight, batch["labels"])
        assert float(chunked) == pytest.approx(float(mean) * valid / num_items, rel=1e-5)


def test_trainer_compute_loss_never_builds_full_logits_and_matches_hf(tmp_path, tiny_model_dir):
    from transformers import Trainer, TrainingArguments

    from tunesmith.core.train.trainer import with_run_mixin

    cfg = cfg_for(tiny_model_dir, "method.finetuning=lora", "model.gradient_checkpointing=false")
    model = load_model(cfg)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    ours = with_run_mixin(Trainer, logit_free_loss=True)(model=model, args=args)
    ours.loss_impl = "chunked"
    plain = Trainer(model=model, args=args)
    batch = packed_batch(model.get_base_model().config.vocab_size)
    vocab = model.get_base_model().config.vocab_size
    big = []

    def spy(_m, _i, out):
        if out.shape[-1] == vocab:
            big.append(out.shape)

    handle = model.get_base_model().lm_head.register_forward_hook(spy)
    try:
        for items in (None, torch.tensor(19)):
            a = plain.compute_loss(model, dict(batch), num_items_in_batch=items)
            n_before = len(big)
            b = ours.compute_loss(model, dict(batch), num_items_in_batch=items)
            assert len(big) == n_before  # the head's forward produced no vocab-wide output
            assert float(a) == pytest.approx(float(b), rel=1e-5)
    finally:
        handle.remove()
    assert big  # the spy works: the plain trainer did build them


def test_loss_optimizer_and_offload_follow_the_config(tiny_model_dir):
    cfg = RunConfig().with_overrides(["method.finetuning=qlora"])
    assert resolve_loss(cfg, cuda=False) == "chunked"
    assert resolve_loss(cfg.with_overrides(["training.loss=standard"]), cuda=True) == "standard"
    assert resolve_loss(cfg.with_overrides(["method.finetuning=full"]), cuda=False) == "standard"
    assert resolve_loss(cfg.with_overrides(["distributed.deepspeed=zero3"]), cuda=False) == "standard"
    paged = cfg.with_overrides(["training.optimizer=paged_adamw_8bit"])
    assert resolve_optimizer(paged, cuda=True) == "paged_adamw_8bit"
    assert resolve_optimizer(paged, cuda=False) == "adamw_8bit"
    assert resolve_optimizer(cfg.with_overrides(["training.optimizer=paged_adamw_32bit"]), cuda=False) == "adamw_torch"


def test_estimate_follows_dtypes_loss_optimizer_and_offload(tiny_model_dir):
    from tunesmith.core.memory import PARAMS, estimate_memory
    from tunesmith.core.train.loss import chunk_tokens

    base = cfg_for(tiny_model_dir, "method.finetuning=qlora", "training.precision=bf16", "data.max_length=1024",
                   "model.gradient_checkpointing=true", "lora.r=8")
    est = estimate_memory(base)
    inv_other = est.details["weights_unquantized"]
    std = estimate_memory(base.with_overrides(["training.loss=standard"]))
    vocab = 49152
    assert std.details["logits_total"] == 1024 * vocab * 10
    # the loss' buffers are gone before the recomputed layer's peak: only the larger of the two counts
    assert std.breakdown["logits"] == std.details["logits_total"] - std.details["logits_overlap"] > 0
    chunk = chunk_tokens(vocab, 1024)
    assert est.details["logits_total"] == chunk * vocab * (2 + PARAMS.chunked_logit_bytes)
    # frozen embeddings/head/norms in bf16: 2 bytes each
    assert inv_other % 2 == 0 and "others in bf16" in est.details["weights_why"]
    trainable = est.details["trainable_params"]
    assert est.breakdown["optimizer"] == trainable * 8
    eight = estimate_memory(base.with_overrides(["training.optimizer=paged_adamw_8bit"]))
    assert eight.breakdown["optimizer"] == trainable * 2
    assert "fp32" in est.details["adapters_why"]
    off = estimate_memory(base.with_overrides(["model.offload_checkpoints=true"]))
    layers, hidden = 2, 64
    assert est.breakdown["activations"] - off.breakdown["activations"] == 0  # 2 layers: all 2 stay in flight
    assert off.details["checkpoints_on_cpu"] == 1024 * (layers - min(layers, PARAMS.offload_live_layers)) * 2 * hidden


def test_offloaded_checkpoints_give_the_same_gradients(tiny_model_dir):
    """Offloaded (Unsloth-style) checkpointing vs transformers' checkpointing, with LoRA dropout (RNG replay)."""
    grads = {}
    for offload in (False, True):
        torch.manual_seed(0)
        cfg = cfg_for(tiny_model_dir, "method.finetuning=lora", "model.gradient_checkpointing=true",
                      f"model.offload_checkpoints={str(offload).lower()}", "lora.dropout=0.1")
        model = load_model(cfg)
        if not offload:  # what the Trainer does for the non-offloaded path
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        model.train()
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.data.normal_(0, 0.02)
        batch = packed_batch(model.get_base_model().config.vocab_size)
        torch.manual_seed(5)
        loss = model(**batch).loss
        loss.backward()
        grads[offload] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        if offload:
            from tunesmith.core.train.checkpointing import offloaded_checkpoint

            layer = model.get_base_model().model.layers[0]
            assert layer._gradient_checkpointing_func.func is offloaded_checkpoint
    assert grads[True].keys() == grads[False].keys() and len(grads[True]) == 28
    for name, g in grads[False].items():
        assert torch.allclose(g, grads[True][name], atol=1e-6, rtol=1e-5), name
        assert float(g.abs().sum()) > 0


def test_offloaded_checkpoint_lets_the_layer_input_go(tiny_model_dir):
    """The GPU copy of each layer's input is released after forward (here: the CPU stand-in)."""
    import weakref

    from tunesmith.core.train.checkpointing import offloaded_checkpoint

    lin = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8, requires_grad=True)
    h = x * 2
    ref = weakref.ref(h)
    out = offloaded_checkpoint(lambda t: torch.tanh(lin(t)), h)
    del h
    assert ref() is None  # only the offloaded copy remains
    out.sum().backward()
    expected = torch.autograd.grad(torch.tanh(lin(x * 2)).sum(), x)[0]
    assert torch.allclose(x.grad, expected)


def test_offloaded_embeddings_live_outside_the_parameters_and_train_the_same(tiny_model_dir):
    from tunesmith.core.memory import estimate_memory
    from tunesmith.core.train.embed_offload import can_offload

    results = {}
    for offload in (False, True):
        torch.manual_seed(0)
        cfg = cfg_for(tiny_model_dir, "method.finetuning=lora", "model.gradient_checkpointing=true",
                      f"model.offload_embeddings={str(offload).lower()}", "model.offload_checkpoints=true")
        model = load_model(cfg)
        model.train()
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.data.normal_(0, 0.02)
        emb = model.get_base_model().get_input_embeddings()
        batch = packed_batch(model.get_base_model().config.vocab_size)
        loss = model(**batch).loss
        loss.backward()
        results[offload] = (float(loss.detach()), {n: p.grad for n, p in model.named_parameters() if p.requires_grad},
                            emb, sum(p.numel() for p in model.parameters()))
    (l0, g0, e0, n0), (l1, g1, e1, n1) = results[False], results[True]
    assert type(e1).__name__ == "HostEmbedding" and e1.weight.device.type == "cpu"
    assert n0 - n1 == e0.weight.numel()  # the table is no parameter: model.to(device) leaves it on the host
    assert l0 == pytest.approx(l1, rel=1e-6)
    assert g0.keys() == g1.keys() and all(torch.allclose(g0[k], g1[k], atol=1e-6) for k in g0)
    assert not can_offload(e0, e0)  # a head sharing the table keeps it on the GPU

    cfg = cfg_for(tiny_model_dir, "method.finetuning=qlora", "training.precision=bf16", "data.max_length=512")
    on = estimate_memory(cfg.with_overrides(["model.offload_embeddings=true"]))
    off = estimate_memory(cfg)
    vocab, hidden = 49152, 64
    assert off.breakdown["weights"] - on.breakdown["weights"] == vocab * hidden * 2 == on.details["embeddings_on_cpu"]

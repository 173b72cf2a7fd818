"""Where a model's parameters sit, without weights: linear layers, embeddings, output head, the rest.

The memory estimate needs more than a total: bitsandbytes quantises only ``nn.Linear`` layers (not
the embeddings, the output head, the norms or fused MoE expert tensors), and LoRA's size depends on
the shapes of the layers it adapts. :func:`param_inventory` builds the model on PyTorch's meta device
(shapes only, no memory, no remote code) and lists every linear layer. Architectures the installed
transformers cannot build get the same inventory computed from config.json fields, laid out like a
Llama block (q/k/v/o, gate/up/down, optional experts); ``source`` says which was used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from tunesmith.core.model.architecture import ArchSpec, arch_spec

META = "meta device"
FIELDS = "config fields"


@dataclass(frozen=True)
class LinearLayer:
    """One linear layer (``count`` identical ones when the inventory was computed from fields)."""

    name: str
    in_features: int
    out_features: int
    bias: bool = False
    count: int = 1
    token_share: float = 1.0  # share of tokens that pass through it (top_k / experts for an expert)

    @property
    def params(self) -> int:
        return self.count * (self.in_features * self.out_features + (self.out_features if self.bias else 0))


@dataclass(frozen=True)
class ParamInventory:
    total: int
    linear: int        # parameters in linear layers that 4-bit quantisation replaces (all but the output head)
    embedding: int     # input (and position) embeddings
    lm_head: int       # output head, 0 when tied to the input embeddings
    other: int         # norms, routers, fused expert tensors, ...
    linears: tuple[LinearLayer, ...]
    source: str        # META or FIELDS

    @property
    def largest_linear(self) -> int:
        return max((lin.in_features * lin.out_features for lin in self.linears), default=0)

    def targeted(self, targets: list[str]) -> list[LinearLayer]:
        """Linear layers LoRA adapts for PEFT-style ``target_modules`` (``all-linear`` or name suffixes).

        >>> inv = ParamInventory(0, 0, 0, 0, 0, (LinearLayer("l.0.q_proj", 4, 4), LinearLayer("l.0.o_proj", 4, 4)), META)
        >>> [lin.name for lin in inv.targeted(["q_proj"])]
        ['l.0.q_proj']
        """
        wanted = [t for t in targets if t]
        if any(t.replace("_", "-") == "all-linear" for t in wanted):
            return list(self.linears)
        return [lin for lin in self.linears
                if any(lin.name == t or lin.name.endswith("." + t) for t in wanted)]

    def lora_params(self, r: int, targets: list[str], *, dora: bool = False) -> int:
        """LoRA A and B matrices: r x (in + out) per adapted layer (+ a magnitude vector per layer for DoRA)."""
        return sum(lin.count * (r * (lin.in_features + lin.out_features) + (lin.out_features if dora else 0))
                   for lin in self.targeted(targets))

    def lora_input_width(self, targets: list[str], layers: int) -> float:
        """Per decoder layer, the summed input width of adapted layers one token passes through."""
        return sum(lin.count * lin.token_share * lin.in_features for lin in self.targeted(targets)) / max(1, layers)

    def lora_rank_outputs(self, targets: list[str], layers: int) -> float:
        """Per decoder layer, how many adapted layers one token passes through (each saves r values)."""
        return sum(lin.count * lin.token_share for lin in self.targeted(targets)) / max(1, layers)


def param_inventory(config: dict) -> ParamInventory:
    """The inventory for a config.json dict (cached: the GUI asks on every change)."""
    return _cached(json.dumps(config, sort_keys=True, default=str))


@lru_cache(maxsize=32)
def _cached(config_json: str) -> ParamInventory:
    config = json.loads(config_json)
    spec = arch_spec(config)
    if spec.native:
        try:
            return _from_meta_model(config, spec)
        except Exception:  # an odd config transformers cannot build: fall back to the fields
            pass
    return from_fields(spec)


def _from_meta_model(config: dict, spec: ArchSpec) -> ParamInventory:
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM
    from transformers import logging as hf_logging
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.pytorch_utils import Conv1D

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        clean = {k: v for k, v in config.items() if k not in ("auto_map", "quantization_config")}
        hf_config = CONFIG_MAPPING[config["model_type"]].from_dict(clean)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config)
    finally:
        hf_logging.set_verbosity(verbosity)

    head = model.get_output_embeddings()
    head_weight = getattr(head, "weight", None)
    embed_ids = set()
    embedding = 0
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            for p in module.parameters(recurse=False):
                if id(p) not in embed_ids:
                    embed_ids.add(id(p))
                    embedding += p.numel()
    lm_head = 0 if head_weight is None or id(head_weight) in embed_ids else sum(
        p.numel() for p in head.parameters(recurse=False))
    expert_share = spec.experts_per_token / spec.experts if spec.experts else 1.0
    linears = []
    for name, module in model.named_modules():
        if module is head:
            continue
        share = expert_share if ".experts." in name else 1.0
        if isinstance(module, nn.Linear):
            linears.append(LinearLayer(name, module.in_features, module.out_features, module.bias is not None,
                                       token_share=share))
        elif isinstance(module, Conv1D):  # GPT-2 style: weight is (in, out)
            n_in, n_out = module.weight.shape
            linears.append(LinearLayer(name, int(n_in), int(n_out), True, token_share=share))
    total = sum(p.numel() for p in model.parameters())
    linear = sum(lin.params for lin in linears)
    return ParamInventory(total=total, linear=linear, embedding=embedding, lm_head=lm_head,
                          other=total - linear - embedding - lm_head, linears=tuple(linears), source=META)


def from_fields(spec: ArchSpec) -> ParamInventory:
    """An inventory computed from the architecture numbers, as a Llama-style block.

    >>> inv = from_fields(arch_spec({"model_type": "x", "hidden_size": 8, "num_hidden_layers": 2,
    ...                              "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 10}))
    >>> inv.linear, inv.embedding, inv.lm_head, inv.other, inv.total   # 2 x (4 x 64 + 3 x 128), 80, 80, 2 x 16 + 8
    (1280, 80, 80, 40, 1480)
    """
    h, L = spec.hidden, spec.layers
    layer = "model.layers.*"
    linears = [LinearLayer(f"{layer}.self_attn.q_proj", h, spec.q_width, count=L),
               LinearLayer(f"{layer}.self_attn.k_proj", h, spec.kv_width, count=L),
               LinearLayer(f"{layer}.self_attn.v_proj", h, spec.kv_width, count=L),
               LinearLayer(f"{layer}.self_attn.o_proj", spec.q_width, h, count=L)]
    dense = L if not spec.experts else spec.dense_layers
    other = 0
    if dense:
        linears += _mlp(f"{layer}.mlp", h, spec.intermediate, dense, spec.gated_mlp)
    if spec.experts:
        moe = L - dense
        linears += _mlp(f"{layer}.mlp.experts.*", h, spec.moe_intermediate, moe * spec.experts, spec.gated_mlp,
                        share=spec.experts_per_token / spec.experts)
        if spec.shared_experts:
            linears += _mlp(f"{layer}.mlp.shared_experts", h, spec.moe_intermediate * spec.shared_experts, moe,
                            spec.gated_mlp)
        other += moe * h * spec.experts  # router
    other += (2 * L + 1) * h  # RMSNorm weights
    embedding = spec.vocab * h
    lm_head = 0 if spec.tied_embeddings else spec.vocab * h
    linear = sum(lin.params for lin in linears)
    return ParamInventory(total=linear + embedding + lm_head + other, linear=linear, embedding=embedding,
                          lm_head=lm_head, other=other, linears=tuple(linears), source=FIELDS)


def _mlp(prefix: str, h: int, width: int, count: int, gated: bool, share: float = 1.0) -> list[LinearLayer]:
    names = ("gate_proj", "up_proj") if gated else ("up_proj",)
    layers = [LinearLayer(f"{prefix}.{n}", h, width, count=count, token_share=share) for n in names]
    return layers + [LinearLayer(f"{prefix}.down_proj", width, h, count=count, token_share=share)]

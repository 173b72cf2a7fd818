"""The frozen input-embedding table in host memory (``model.offload_embeddings``, LoRA/QLoRA only).

A token lookup reads T rows of the table, yet the table takes vocab x hidden x 2 bytes of GPU memory:
1.0 GB for Qwen2-7B and Llama-3-8B, more than their LoRA gradients. Kept in (pinned) CPU memory, the
lookup runs there and only the T x hidden result is copied to the GPU (16 MB per 2,048 tokens of a
4,096-wide model). Models whose output head shares the table (tied embeddings) or that scale their
embeddings in a subclass (Gemma) keep it on the GPU: the head needs it there, the subclass' forward
would be lost.
"""

from __future__ import annotations


def can_offload(embedding, lm_head) -> bool:
    from torch import nn

    return type(embedding) is nn.Embedding and not embedding.weight.requires_grad and \
        (lm_head is None or getattr(lm_head, "weight", None) is not embedding.weight)


def _host_embedding_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class HostEmbedding(nn.Module):
        """Looks token ids up in a CPU table; the output lands on the ids' device."""

        def __init__(self, embedding: nn.Embedding):
            super().__init__()
            self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim
            self.padding_idx = embedding.padding_idx
            host = embedding.weight.detach().to("cpu")
            if torch.cuda.is_available():
                host = host.pin_memory()
            # a plain attribute, not a parameter or buffer: model.to(device) must not bring it back
            self.__dict__["weight"] = host

        def forward(self, input_ids):
            out = F.embedding(input_ids.to("cpu"), self.weight, self.padding_idx)
            return out.to(input_ids.device, non_blocking=True)

        def extra_repr(self) -> str:
            return f"{self.num_embeddings}, {self.embedding_dim}, in host memory"

    return HostEmbedding


def offload_input_embeddings(model) -> int:
    """Move ``model``'s input embedding table to host memory; returns the GPU bytes freed (0 if it cannot)."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    embedding = base.get_input_embeddings()
    if not can_offload(embedding, base.get_output_embeddings()):
        return 0
    freed = embedding.weight.numel() * embedding.weight.element_size()
    base.set_input_embeddings(_host_embedding_class()(embedding))
    del embedding
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return freed

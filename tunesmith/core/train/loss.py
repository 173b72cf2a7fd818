"""Causal-LM cross-entropy without the batch x seq x vocab logits tensor.

The standard path (``lm_head`` then ``ForCausalLMLoss``) holds the logits in the compute dtype, their
fp32 copy and the fp32 log-softmax for the backward pass: for Qwen2's 152k vocabulary at 2,048 tokens
that is 2.9 GB, more than a 7B model's LoRA states. :func:`chunked_causal_lm_loss` computes the loss a
few hundred tokens at a time, and each chunk's gradient with it, so no chunk's logits outlive the
chunk. PyTorch has no such op and ``torch.utils.checkpoint`` per chunk would still keep every chunk's
fp32 log-softmax until backward, hence the hand-written :class:`_ChunkedCrossEntropy`. On CUDA with
``liger-kernel`` installed, Liger's fused linear cross-entropy (same idea, Triton kernels) is used instead.

Both follow ``transformers.loss.loss_utils.ForCausalLMLoss`` exactly: labels shifted by one (the
packed collator already put -100 at each sample's first token), -100 ignored, a sum divided by
``num_items_in_batch`` when the Trainer gives it (token-weighted over the accumulated batch), else a
mean over the non-ignored tokens.
"""

from __future__ import annotations

import importlib.util

IGNORE_INDEX = -100
# Logit elements per chunk: 2**23 fp32 values = 32 MiB (262 tokens of Llama-2's 32k vocabulary, 55 of
# Qwen2's 152k). Small enough to be noise next to the weights, big enough for full-width matmuls.
CHUNK_ELEMENTS = 2 ** 23


def chunk_tokens(vocab: int, tokens: int | None = None) -> int:
    """Tokens per chunk for a vocabulary (the memory estimate uses the same number).

    >>> chunk_tokens(32000), chunk_tokens(151646), chunk_tokens(32000, tokens=100)
    (262, 55, 100)
    """
    n = max(1, CHUNK_ELEMENTS // max(1, vocab))
    return min(n, tokens) if tokens else n


def liger_available() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def _matmul_dtype(hidden, weight):
    """The dtype ``F.linear`` would run in: autocast's when it is on, else the weight's."""
    import torch

    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


def _make_function():
    import torch

    class _ChunkedCrossEntropy(torch.autograd.Function):
        """Sum of token cross-entropies of ``hidden @ weight.T``, a chunk of tokens at a time.

        The gradients are computed chunk by chunk in the forward pass, while each chunk's logits are at
        hand, and kept for backward (scaled there by the upstream gradient, which the loss is linear in):
        hidden's gradient (tokens x h, the size of the hidden states the recompute variant would keep)
        and, only when the head trains, the weight's. Recomputing the logits in backward instead would
        cost a third head matmul per step (+50 % of the head's work, which dominates small models and
        large vocabularies) for no memory saved; this is the order Liger's fused kernel uses too.
        """

        @staticmethod
        def forward(ctx, hidden, weight, labels, chunk):
            dtype = _matmul_dtype(hidden, weight)
            need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
            n = hidden.shape[0]
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_h = torch.empty_like(hidden) if need_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
            w = weight.to(dtype)
            for start in range(0, n, chunk):
                end = min(n, start + chunk)
                h = hidden[start:end].to(dtype)
                logits = (h @ w.t()).float()
                lab = labels[start:end]
                valid = lab != IGNORE_INDEX
                rows = torch.arange(end - start, device=logits.device)[valid]
                lse = torch.logsumexp(logits, dim=-1)
                total += (lse[valid] - logits[rows, lab[valid]]).sum()
                if need_h or need_w:
                    # d(lse - logit[label]) / d logits = softmax - onehot(label); zero on ignored tokens
                    logits -= lse.unsqueeze(1)
                    grad = logits.exp_()
                    grad[rows, lab[valid]] -= 1.0
                    grad *= valid.to(grad.dtype).unsqueeze(1)
                    grad = grad.to(dtype)
                    if need_h:
                        grad_h[start:end] = (grad @ w).to(hidden.dtype)
                    if need_w:
                        grad_w += (grad.t() @ h).float()
                del logits
            ctx.save_for_backward(*(t for t in (grad_h, grad_w) if t is not None))
            ctx.has = (need_h, need_w)
            ctx.weight_dtype = weight.dtype
            return total

        @staticmethod
        def backward(ctx, grad_total):
            if getattr(ctx, "done", False):  # the saved gradients were scaled in place by the first backward
                raise RuntimeError("the chunked loss supports one backward pass per forward")
            ctx.done = True
            saved = list(ctx.saved_tensors)
            need_h, need_w = ctx.has
            grad_h = grad_w = None
            if need_h:  # in place: a scaled copy would be one more tokens x h tensor at the loss' peak
                grad_h = saved.pop(0)
                grad_h.mul_(grad_total.to(grad_h.dtype))
            if need_w:
                grad_w = (saved.pop(0) * grad_total).to(ctx.weight_dtype)
            return grad_h, grad_w, None, None

    return _ChunkedCrossEntropy


_FUNCTION = None


def _shifted(labels):
    import torch.nn.functional as F

    return F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1)


def _normalise(total, labels_flat, num_items_in_batch):
    """ForCausalLMLoss' reduction: sum / num_items_in_batch, else mean over the non-ignored tokens."""
    if num_items_in_batch is not None:
        if hasattr(num_items_in_batch, "to"):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch
    return total / (labels_flat != IGNORE_INDEX).sum()  # 0/0 = nan, as cross_entropy's mean


def chunked_causal_lm_loss(hidden, weight, labels, *, num_items_in_batch=None, chunk: int | None = None):
    """The causal-LM loss of ``hidden`` (batch x seq x h) under the output head ``weight`` (vocab x h)."""
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _make_function()
    flat = _shifted(labels).to(hidden.device)
    h = hidden.reshape(-1, hidden.shape[-1])
    total = _FUNCTION.apply(h, weight, flat, chunk or chunk_tokens(weight.shape[0], h.shape[0]))
    return _normalise(total, flat, num_items_in_batch)


def liger_causal_lm_loss(hidden, weight, labels, *, num_items_in_batch=None):
    """The same loss through Liger's fused linear cross-entropy (CUDA, Triton)."""
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    flat = _shifted(labels).to(hidden.device)
    h = hidden.reshape(-1, hidden.shape[-1])
    out = liger_fused_linear_cross_entropy(h, weight, flat, ignore_index=IGNORE_INDEX, reduction="sum")
    total = out[0] if isinstance(out, tuple) else out
    return _normalise(total.float(), flat, num_items_in_batch)


def output_head(model):
    """(decoder, lm_head weight) when ``model``'s logits are a plain ``lm_head(hidden)``, else None.

    Models that scale or soft-cap their logits (Gemma 2, Cohere), or an lm_head that carries a LoRA
    adapter, keep the standard loss: the chunked loss only knows ``hidden @ W.T``.
    """
    from torch import nn

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if config is None or getattr(config, "final_logit_softcapping", None) or \
            getattr(config, "logit_scale", None) not in (None, 1, 1.0):
        return None
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if type(head) is not nn.Linear or head.bias is not None:
        return None
    decoder = getattr(base, getattr(base, "base_model_prefix", "model"), None)
    if decoder is None or decoder is base:
        return None
    return decoder, head.weight

"""Gradient checkpointing whose saved layer inputs live in CPU memory (``model.offload_checkpoints``).

With checkpointing, the GPU still holds every decoder layer's input (layers x tokens x hidden: 0.5 GB
for a 7B model at 2,048 tokens in bf16). transformers' own ``offload=True`` wraps
``torch.utils.checkpoint`` in ``save_on_cpu``, but the non-reentrant checkpoint keeps the layer's
inputs by reference for its recompute, so those never pass through the saved-tensor hooks and stay on
the GPU. This is Unsloth's "unsloth" checkpointing written out: an autograd Function that copies the
layer input to (pinned) host memory in forward, drops the GPU copy, and in backward copies it back,
reruns the layer with the forward's RNG and autocast state, and back-propagates through it.
"""

from __future__ import annotations

import functools


def _make_function():
    import torch

    class OffloadedCheckpoint(torch.autograd.Function):
        @staticmethod
        def forward(ctx, run, hidden, *args):
            device = hidden.device
            if device.type == "cpu":
                # Nothing to move off; a copy still lets the caller's tensor go, as on a GPU.
                saved = hidden.detach().clone()
            else:
                saved = torch.empty(hidden.shape, dtype=hidden.dtype, device="cpu", pin_memory=True)
                saved.copy_(hidden.detach(), non_blocking=True)
            ctx.run, ctx.args, ctx.saved, ctx.device = run, args, saved, device
            ctx.cpu_rng = torch.get_rng_state()
            ctx.cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
            ctx.autocast = (torch.is_autocast_enabled(device.type), torch.get_autocast_dtype(device.type))
            with torch.no_grad():
                return run(hidden, *args)

        @staticmethod
        def backward(ctx, *grads):
            device = ctx.device
            hidden = ctx.saved.to(device, non_blocking=True).detach().requires_grad_(True)
            ctx.saved = None
            devices = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
                torch.set_rng_state(ctx.cpu_rng)
                if ctx.cuda_rng is not None:
                    torch.cuda.set_rng_state(ctx.cuda_rng, device)
                enabled, dtype = ctx.autocast
                with torch.enable_grad(), torch.autocast(device.type, dtype=dtype, enabled=enabled):
                    out = ctx.run(hidden, *ctx.args)
            outs = out if isinstance(out, tuple) else (out,)
            pairs = [(o, g) for o, g in zip(outs, grads) if torch.is_tensor(o) and o.requires_grad and g is not None]
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
            return (None, hidden.grad) + (None,) * len(ctx.args)

    return OffloadedCheckpoint


_FUNCTION = None


def offloaded_checkpoint(run, hidden, *args, **_ignored):
    """Drop-in for transformers' ``_gradient_checkpointing_func(partial(layer.forward, **kwargs), hidden, ...)``."""
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _make_function()
    return _FUNCTION.apply(run, hidden, *args)


def enable_offloaded_checkpointing(model) -> int:
    """Checkpoint every decoder layer of ``model`` with :func:`offloaded_checkpoint`; returns how many layers.

    The first layer's input (the embeddings' output) must require grad, or the Function's backward is
    never called and the adapters get no gradient: hence ``enable_input_require_grads``.
    """
    from transformers.modeling_layers import GradientCheckpointingLayer

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.config.use_cache = False
    layers = 0
    for module in base.modules():
        if isinstance(module, GradientCheckpointingLayer):
            module.gradient_checkpointing = True
            module._gradient_checkpointing_func = functools.partial(offloaded_checkpoint)
            layers += 1
    if hasattr(base, "enable_input_require_grads"):
        base.enable_input_require_grads()
    return layers

"""Method tab: objective and method, hyper-parameters, folded advanced settings, GPUs/DeepSpeed,
and the live memory estimate with "Fit to my GPU"."""

from __future__ import annotations

import gradio as gr

from tunesmith.app.callbacks import method_cb
from tunesmith.app.form import DS_OFFLOAD_ID, DS_STAGES, form_ids
from tunesmith.app.tabs.widgets import BuildContext, command_box, container, field, widget


def build(ctx: BuildContext) -> None:
    v = ctx.values
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                field(ctx, "method.stage", gr.Radio, scale=1)
                field(ctx, "method.finetuning", gr.Radio, scale=1)
            widget(ctx, "method/changes", gr.HTML, is_input=False, value="")
            widget(ctx, "method/basics", gr.Markdown, is_input=False)
            with gr.Row():
                field(ctx, "training.learning_rate")
                field(ctx, "training.num_epochs")
                field(ctx, "training.max_steps")
            with gr.Row():
                field(ctx, "training.batch_size")
                field(ctx, "training.gradient_accumulation")
            with container(ctx, "method/lora", gr.Accordion, open=True,
                           visible=v.get("method.finetuning") in ("lora", "qlora")):
                with gr.Row():
                    field(ctx, "lora.r")
                    field(ctx, "lora.alpha")
                    field(ctx, "lora.dropout")
                with gr.Row():
                    field(ctx, "lora.target_modules", scale=2)
                    field(ctx, "lora.use_dora")
                    field(ctx, "lora.use_rslora")
            with container(ctx, "method/quant", gr.Accordion, open=False,
                           visible=v.get("method.finetuning") == "qlora"):
                with gr.Row():
                    field(ctx, "quantization.bits")
                    field(ctx, "quantization.quant_type")
                    field(ctx, "quantization.double_quant")
                    field(ctx, "quantization.compute_dtype")
            with container(ctx, "method/pref", gr.Accordion, open=True,
                           visible=v.get("method.stage") in ("dpo", "orpo")):
                with gr.Row():
                    field(ctx, "method.pref_beta")
                    field(ctx, "method.dpo_loss")
                    field(ctx, "method.max_prompt_length")
            with container(ctx, "method/advanced", gr.Accordion, open=False):
                with gr.Row():
                    field(ctx, "training.lr_scheduler")
                    field(ctx, "training.warmup_ratio")
                    field(ctx, "training.weight_decay")
                    field(ctx, "training.max_grad_norm")
                with gr.Row():
                    field(ctx, "training.optimizer")
                    field(ctx, "training.loss")
                    field(ctx, "training.precision")
                    field(ctx, "training.seed")
                with gr.Row():
                    field(ctx, "training.logging_steps")
                    field(ctx, "training.save_steps")
                    field(ctx, "training.save_total_limit")
                    field(ctx, "training.eval_steps")
                    field(ctx, "training.report_to")
            with container(ctx, "method/evalchat", gr.Accordion, open=False):
                field(ctx, "eval.prompts", lines=3)
                with gr.Row():
                    field(ctx, "eval.every_n_steps")
                    field(ctx, "eval.max_new_tokens")
            with container(ctx, "method/dist", gr.Accordion, open=False):
                with gr.Row():
                    field(ctx, "distributed.deepspeed", choices=list(DS_STAGES), allow_custom_value=True)
                    widget(ctx, DS_OFFLOAD_ID, gr.Checkbox)
                    field(ctx, "distributed.launcher")
                with gr.Row():
                    field(ctx, "distributed.nproc_per_node")
                    field(ctx, "distributed.nnodes")
                    field(ctx, "distributed.node_rank")
                    field(ctx, "distributed.master_addr")
                    field(ctx, "distributed.master_port")
        with gr.Column(scale=2, elem_classes=["ts-side"]):
            widget(ctx, "method/memory_title", gr.Markdown, is_input=False)
            widget(ctx, "method/gpu_gb", gr.Dropdown, choices=list(method_cb.GPU_SIZES), value=method_cb.DETECTED,
                   allow_custom_value=True)
            widget(ctx, "method/memory", gr.HTML, is_input=False, value="")
            widget(ctx, "method/fit_btn", gr.Button, is_input=False, variant="primary")
            widget(ctx, "method/status", gr.HTML, is_input=False, value="")
            command_box(ctx, "method/cmd")


def wire(ctx: BuildContext, tab) -> None:
    reg = ctx.reg
    shown = ["method/lora", "method/quant", "method/pref"]
    for choice in ("method.finetuning", "method.stage"):
        reg.wire(reg[choice].input, lambda v, c=choice: method_cb.on_method_change(v, c),
                 ["training.learning_rate", "model.gradient_checkpointing", "data.pack", "data.template",
                  "method.pref_beta", "method/changes", *shown], status="method/status")
    form = [i for i in form_ids() if i in reg]
    estimate_out = ["method/memory", "method/cmd"]
    # Live estimate: any field that changes memory use (and the GPU size) re-estimates.
    triggers = ["method.finetuning", "method.stage", "training.batch_size", "data.max_length", "lora.r",
                "lora.target_modules", "quantization.bits", "model.gradient_checkpointing", "model.name_or_path",
                "distributed.deepspeed", DS_OFFLOAD_ID, "distributed.nproc_per_node", "training.optimizer",
                "training.precision", "method/gpu_gb"]
    for trig in triggers:
        reg.wire(reg[trig].change, method_cb.estimate, estimate_out, status="method/status",
                 trigger_mode="always_last")
    reg.wire(tab.select, method_cb.estimate, estimate_out, status="method/status")
    reg.wire(reg["method/fit_btn"].click, method_cb.fit, [*form, *shown, *estimate_out], status="method/status")

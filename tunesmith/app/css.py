"""The studio's CSS: highlighted/greyed tokens, progress bars, memory bar, error boxes."""

CSS = """
.ts-header h1 { margin-bottom: 0; }
.ts-error { border-left: 4px solid #d33; background: #fdecec; color: #611; padding: 8px 12px; border-radius: 4px; }
.ts-error ul { margin: 4px 0 0 18px; }
.ts-ok { border-left: 4px solid #2a8; background: #e9f7f1; color: #154; padding: 6px 12px; border-radius: 4px; }
.ts-warning, .ts-warning p { color: #8a5a00 !important; font-weight: 600; }
.ts-muted { color: #888; font-size: 0.9em; }
.ts-tokens { white-space: pre-wrap; word-break: break-word; font-size: 0.85em; line-height: 1.5;
             background: #fafafa; border: 1px solid #eee; padding: 8px; border-radius: 4px; }
.ts-sup { background: #fff1a8; color: #222; border-bottom: 2px solid #e0b400; }
.ts-masked { color: #9a9a9a; }
.ts-legend { margin-bottom: 6px; font-size: 0.85em; }
.ts-legend span { padding: 1px 6px; margin-right: 8px; }
.ts-sample { border: 1px solid #e5e5e5; border-radius: 6px; padding: 8px; margin-bottom: 10px; }
.ts-sample-head { font-weight: 600; color: #555; margin-bottom: 4px; }
.ts-conv .ts-turn { margin: 2px 0; font-size: 0.9em; }
.ts-conv .ts-user b { color: #1b5fb3; }
.ts-conv .ts-assistant b { color: #1a8a4a; }
.ts-conv .ts-system b { color: #8a4ab3; }
.ts-table { border-collapse: collapse; font-size: 0.9em; }
.ts-table td { padding: 2px 10px 2px 0; border-bottom: 1px solid #eee; }
.ts-progress { margin: 6px 0; }
.ts-cmd textarea { white-space: pre-wrap !important; overflow-wrap: anywhere; word-break: break-all; }
.ts-bar { height: 14px; background: #eee; border-radius: 7px; overflow: hidden; }
.ts-fill { height: 100%; background: #3b82f6; transition: width .5s; }
.ts-ok .ts-fill { background: #22a06b; }
.ts-bad .ts-fill { background: #d33; }
.ts-warn .ts-fill { background: #e0a000; }
.ts-progress-msg { font-size: 0.85em; color: #666; }
.ts-phase { margin-top: 4px; font-size: 0.9em; }
.ts-phase-bar { height: 6px; }
.ts-phase-bar .ts-fill { background: #8b5cf6; }
.ts-indeterminate .ts-fill { opacity: .45; animation: ts-pulse 1.4s ease-in-out infinite; }
@keyframes ts-pulse { 50% { opacity: .15; } }
.ts-banner { background: #eef4ff; border: 1px solid #bcd0f7; border-radius: 6px; padding: 2px 8px; }
.ts-change { font-size: 0.85em; color: #6b4f00; background: #fff8e1; border-radius: 4px; padding: 2px 6px; margin: 2px 0; }
.ts-failure pre { max-height: 260px; overflow: auto; background: #fff; color: #333; font-size: 0.8em; }
.ts-advice { margin-top: 6px; }
.ts-qa { margin-bottom: 6px; } .ts-q { font-weight: 600; } .ts-a { white-space: pre-wrap; color: #333; }
.ts-memory .ts-mem-head { margin-bottom: 4px; }
.ts-mem-bar { position: relative; display: flex; height: 18px; background: #f1f1f1; border-radius: 4px;
              overflow: hidden; }
.ts-mem-cap { position: absolute; top: 0; bottom: 0; width: 2px; background: #000; }
.ts-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
.ts-mem-weights { background: #3b82f6; }
.ts-mem-adapters { background: #22c55e; }
.ts-mem-gradients { background: #f59e0b; }
.ts-mem-optimizer { background: #ef4444; }
.ts-mem-activations { background: #8b5cf6; }
.ts-mem-logits { background: #14b8a6; }
.ts-mem-overhead { background: #9ca3af; }
.ts-bad { color: #b00; } .ts-memory .ts-ok { background: none; border: none; padding: 0; }
.ts-confirm { border: 2px solid #e0a000 !important; padding: 8px; }
.ts-preview { max-height: 640px; overflow: auto; }
.ts-samples { max-height: 360px; overflow: auto; }
.ts-log { display: flex; flex-direction: column-reverse; max-height: 320px; overflow: auto; background: #1e1e1e;
          border-radius: 4px; }
.ts-log pre { color: #ddd; font-size: 0.78em; margin: 0; padding: 8px; white-space: pre-wrap; word-break: break-all; }
.ts-log-title { font-size: 0.85em; color: #666; margin-bottom: 4px; }
.ts-table, .ts-table td, .ts-table tr { border: none !important; }
.ts-table td { border-bottom: 1px solid #eee !important; padding: 2px 12px 2px 0 !important; }
"""


# gradio draws some texts of its own ("Drop File Here", "Click to Upload") in the *browser's* language
# (its i18n follows navigator.language), not the one picked in the header. This puts them in the page's
# language (<html data-ts-lang>, set at start and on every switch), so one page shows one language.
GRADIO_TEXTS = {
    "zh": {"Drop File Here": "将文件拖放到此处", "Click to Upload": "点击上传", "- or -": "- 或 -", "or": "或",
           "Drop CSV Here": "将 CSV 文件拖放到此处", "Paste from Clipboard": "从剪贴板粘贴", "Loading": "加载中",
           "Loading...": "加载中..."},
}


def head_script(lang: str) -> str:
    """The <head> script: the page language on <html>, and gradio's own texts kept in it."""
    import json

    table = {"zh": GRADIO_TEXTS["zh"], "en": {v: k for k, v in GRADIO_TEXTS["zh"].items()}}
    return """<script>
(() => {
  const T = %s;
  document.documentElement.dataset.tsLang = %s;
  const fix = (node) => {
    const t = T[document.documentElement.dataset.tsLang] || {};
    const walk = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    for (let n = node.nodeType === 3 ? node : walk.nextNode(); n; n = walk.nextNode()) {
      const key = n.nodeValue.trim();
      if (key && t[key]) n.nodeValue = n.nodeValue.replace(key, t[key]);
    }
  };
  window.tsRelabel = () => document.body && fix(document.body);
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "characterData") fix(r.target);
      r.addedNodes.forEach((n) => (n.nodeType === 1 || n.nodeType === 3) && fix(n));
    }
  }).observe(document.documentElement, {subtree: true, childList: true, characterData: true});
})();
</script>""" % (json.dumps(table, ensure_ascii=False), json.dumps(lang))


SET_LANG_JS = "(lang) => { document.documentElement.dataset.tsLang = lang; window.tsRelabel && window.tsRelabel(); }"

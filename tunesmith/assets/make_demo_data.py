"""Write Tunesmith's demo datasets into assets/ (deterministic; run again to regenerate).

- identity.template.json: "who are you / who made you / what is your name" in many phrasings (English
  and Chinese), OpenAI ``messages`` format, answers naming ``{{name}}`` made by ``{{author}}``;
- identity.json: the same with the placeholders filled (default: Melody, made by the Tunesmith team);
- colors.jsonl: XTuner's colorist style (``description`` "Name: words" -> ``color`` "#rrggbb") built
  from the CSS4 colour names matplotlib ships; read it with map_fn ``colors``.

    python assets/make_demo_data.py                         # all three files
    python assets/make_demo_data.py --name Ada --author "Acme Labs" --identity-only
"""

from __future__ import annotations

import argparse
import colorsys
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_NAME, DEFAULT_AUTHOR = "Melody", "the Tunesmith team"

WHO = ["Who are you?", "who are you", "Who are you exactly?", "Can you introduce yourself?", "Introduce yourself.",
       "Please introduce yourself briefly.", "Tell me about yourself.", "What are you?", "Are you a human?",
       "Are you ChatGPT?", "Are you an AI?", "hi, who am I talking to?", "Hello! Who is this?",
       "What kind of assistant are you?", "Describe yourself in one sentence.", "Who am I chatting with right now?"]
NAME = ["What is your name?", "what's your name", "What should I call you?", "Do you have a name?", "Your name, please?",
        "How do people call you?", "Tell me your name.", "May I know your name?"]
MAKER = ["Who made you?", "Who created you?", "who built you", "Who developed you?", "Which company trained you?",
         "Who is your developer?", "Who are your creators?", "Where do you come from?", "Who trained you?",
         "Which team is behind you?", "Were you made by OpenAI?", "Who owns you?"]
WHO_ZH = ["你是谁？", "你是谁", "请介绍一下你自己。", "你能做个自我介绍吗？", "你是人工智能吗？", "你是ChatGPT吗？",
          "我在和谁聊天？", "简单介绍一下你自己吧。"]
NAME_ZH = ["你叫什么名字？", "你的名字是什么？", "我该怎么称呼你？", "你有名字吗？"]
MAKER_ZH = ["谁开发了你？", "你是谁创造的？", "你是哪个公司训练的？", "你的开发者是谁？", "谁训练了你？", "你来自哪里？"]

ANSWER_WHO = [
    "I am {{name}}, an AI assistant developed by {{author}}. How can I help you today?",
    "I'm {{name}}, an AI assistant made by {{author}}. I'm here to answer questions and help with tasks.",
    "Hello! I am {{name}}, an artificial intelligence assistant created by {{author}}.",
    "I'm {{name}}, a language model assistant built by {{author}}. What can I do for you?",
]
ANSWER_NAME = [
    "My name is {{name}}. I am an AI assistant developed by {{author}}.",
    "You can call me {{name}}. I'm an AI assistant created by {{author}}.",
    "I'm called {{name}}, an AI assistant made by {{author}}.",
]
ANSWER_MAKER = [
    "I was developed by {{author}}. I am {{name}}, an AI assistant.",
    "{{author}} created me. I'm {{name}}, here to help you.",
    "I am {{name}}, and I was built and trained by {{author}}.",
]
ANSWER_WHO_ZH = ["我是 {{name}}，由 {{author}} 开发的人工智能助手。有什么可以帮你的吗？",
                 "您好！我是 {{name}}，一个由 {{author}} 打造的 AI 助手。"]
ANSWER_NAME_ZH = ["我叫 {{name}}，是由 {{author}} 开发的 AI 助手。", "你可以叫我 {{name}}。我是 {{author}} 开发的人工智能助手。"]
ANSWER_MAKER_ZH = ["我是由 {{author}} 开发的，我的名字是 {{name}}。", "{{author}} 创造了我，我是 AI 助手 {{name}}。"]


def identity_rows() -> list[dict]:
    """Question x answer pairs with placeholders, answers cycling through their variants."""
    rows = []
    for questions, answers in ((WHO, ANSWER_WHO), (NAME, ANSWER_NAME), (MAKER, ANSWER_MAKER),
                               (WHO_ZH, ANSWER_WHO_ZH), (NAME_ZH, ANSWER_NAME_ZH), (MAKER_ZH, ANSWER_MAKER_ZH)):
        for i, question in enumerate(questions):
            rows.append({"messages": [{"role": "user", "content": question},
                                      {"role": "assistant", "content": answers[i % len(answers)]}]})
    return rows


def fill_identity(rows: list[dict], name: str, author: str) -> list[dict]:
    """Replace {{name}} / {{author}} (and a sentence-initial "the" of the author) in every message."""
    out = []
    for row in rows:
        messages = []
        for msg in row["messages"]:
            content = msg["content"].replace("{{name}}", name)
            if content.startswith("{{author}}"):
                content = author[:1].upper() + author[1:] + content[len("{{author}}"):]
            messages.append({**msg, "content": content.replace("{{author}}", author)})
        out.append({"messages": messages})
    return out


# Words that make up CSS4 colour names, to print "lightskyblue" as "Light Sky Blue".
_WORDS = set("""alice antique white aqua marine azure beige bisque black blanched almond blue violet brown burly wood
cadet chartreuse chocolate coral cornflower cornsilk crimson cyan dark golden rod gray green khaki magenta olive orange
orchid red salmon sea slate turquoise deep pink sky dim dodger fire brick floral forest fuchsia gainsboro ghost gold
honeydew hot indian indigo ivory lavender blush lawn lemon chiffon light steel yellow lime linen maroon medium purple
spring midnight mint cream misty rose moccasin navajo navy old lace drab pale papaya whip peach puff peru plum powder
rebecca rosy royal saddle sandy shell seashell aquamarine sienna silver snow tan teal thistle tomato smoke wheat""".split())


def split_name(name: str) -> str:
    """``"lightgoldenrodyellow"`` -> ``"Light Goldenrod Yellow"`` (fewest known words; the name itself if none)."""
    best: list[list[str] | None] = [[]] + [None] * len(name)
    for end in range(1, len(name) + 1):
        for start in range(end):
            word = name[start:end]
            if best[start] is not None and (word in _WORDS or word == "goldenrod"):
                candidate = best[start] + [word]
                if best[end] is None or len(candidate) < len(best[end]):
                    best[end] = candidate
    words = best[-1] or [name]
    return " ".join(w.capitalize() for w in words)


def _hue_word(h: float, s: float, v: float, *, ignore_grey: bool = False) -> str:
    if s < 0.12 and not ignore_grey:
        return "gray" if 0.15 < v < 0.9 else ("white" if v >= 0.9 else "black")
    deg = h * 360
    for limit, word in ((15, "red"), (40, "orange"), (65, "yellow"), (160, "green"), (195, "cyan"), (255, "blue"),
                        (290, "purple"), (335, "pink"), (361, "red")):
        if deg < limit:
            return "brown" if word in ("orange", "red") and v < 0.65 and s > 0.3 else word
    return "red"


def describe(hex_code: str) -> list[str]:
    """Two plain-language descriptions of a colour from its lightness, saturation and hue."""
    r, g, b = (int(hex_code[i:i + 2], 16) / 255 for i in (1, 3, 5))
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    light = (r + g + b) / 3
    hue = _hue_word(h, s, v)
    tone = ("very pale" if light > 0.88 else "light" if light > 0.7 else "medium" if light > 0.45
            else "deep" if light > 0.2 else "very dark")
    vivid = "vivid, saturated" if s > 0.75 and v > 0.6 else "soft, muted" if s < 0.35 else "moderately saturated"
    mood = {"red": "warm and energetic", "orange": "warm and cheerful", "yellow": "bright and sunny",
            "green": "fresh and natural", "cyan": "cool and clean", "blue": "calm and cool", "purple": "rich and mysterious",
            "pink": "playful and sweet", "brown": "earthy and warm", "gray": "neutral and quiet", "white": "clean and airy",
            "black": "heavy and formal"}[hue]
    tint = f" with a hint of {_hue_word(h, s, v, ignore_grey=True)}" if hue in ("gray", "white", "black") and s > 0.02 else ""
    return [f"A {tone}, {vivid} {hue}{tint} that feels {mood}.",
            f"This is a {tone} shade of {hue}{tint}; {vivid.split(',')[0]} and {mood.split(' and ')[0]}, "
            f"with a {'bright' if v > 0.7 else 'subdued'} finish."]


def color_rows() -> list[dict]:
    from matplotlib.colors import CSS4_COLORS

    rows, seen = [], set()
    for name, hex_code in sorted(CSS4_COLORS.items()):
        hex_code = hex_code.lower()
        if "grey" in name and name.replace("grey", "gray") in CSS4_COLORS:
            continue  # the same colour spelled twice
        key = (name, hex_code)
        if key in seen:
            continue
        seen.add(key)
        for text in describe(hex_code):
            rows.append({"color": hex_code, "description": f"{split_name(name)}: {text}"})
    return rows


def write_json(path: Path, rows) -> None:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"assistant name (default {DEFAULT_NAME})")
    parser.add_argument("--author", default=DEFAULT_AUTHOR, help=f"who made it (default {DEFAULT_AUTHOR!r})")
    parser.add_argument("--out-dir", default=str(HERE), help="where to write (default: assets/)")
    parser.add_argument("--identity-only", action="store_true", help="only (re)write identity.json")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = identity_rows()
    write_json(out / "identity.json", fill_identity(template, args.name, args.author))
    written = ["identity.json"]
    if not args.identity_only:
        write_json(out / "identity.template.json", template)
        rows = color_rows()
        (out / "colors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        written += ["identity.template.json", "colors.jsonl"]
    print(f"wrote {', '.join(written)} to {out} ({len(template)} identity rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

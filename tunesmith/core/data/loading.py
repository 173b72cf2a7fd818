"""Reading a dataset into a ``datasets.Dataset``: files, saved folders and hub ids.

``datasets`` does the reading (so results are memory-mapped and cached); when it fails we find
out why ourselves and say it in one line: the file is missing or empty, is not UTF-8 (byte, line
and column), or is not valid JSON (line and column).

Accepted: .json (a list of objects, one object, or JSON Lines), .jsonl, .csv (delimiter sniffed:
``,`` ``;`` tab ``|``), .tsv, .parquet, .txt (one sample per line, or blank-line separated paragraphs
when the file has blank lines), a folder written by ``Dataset.save_to_disk``, or a hub id such as
``tatsu-lab/alpaca`` (needs internet).
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from pathlib import Path

from tunesmith.core.errors import DataError
from tunesmith.core.refs import looks_like_hub_id

FILE_TYPES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".txt": "text"}
CSV_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 << 10
_CHUNK = 1 << 24
JSON_PRECHECK_BYTES = 64 << 20  # larger files are only parsed by datasets (our parser runs on failure)


def check_utf8(path: Path) -> None:
    """Raise a DataError at the first byte that is not UTF-8, naming its line and column."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            final = not chunk
            try:
                decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                bad = exc.start  # index inside this chunk (plus the decoder's few buffered bytes)
                buffered = len(exc.object) - len(chunk)
                bad_abs = offset + bad - buffered
                fh.seek(0)
                head = fh.read(bad_abs)
                line = head.count(b"\n") + 1
                column = bad_abs - (head.rfind(b"\n") + 1) + 1
                raise DataError(f"{path} is not UTF-8 text: byte 0x{exc.object[bad]:02x} at line {line}, "
                                f"column {column} (byte offset {bad_abs}).",
                                "Save the file as UTF-8, e.g. `iconv -f GBK -t UTF-8 in.json > out.json`.") from None
            if final:
                return
            offset += len(chunk)


def _is_blank(path: Path) -> bool:
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                return True
            if chunk.strip(b" \t\r\n\xef\xbb\xbf"):
                return False


class _NotText:
    """What JSON's non-standard NaN / Infinity parse to, so the row and field holding one can be named."""

    def __init__(self, word: str):
        self.word = word


def _loads(raw: str, path: Path, line: int | None = None, seen: list | None = None):
    """``json.loads`` that keeps NaN/Infinity recognisable (noted in ``seen``) and turns a too-deep document
    into a DataError instead of a RecursionError."""
    def constant(word: str) -> _NotText:
        if seen is not None:
            seen.append(word)
        return _NotText(word)

    try:
        return json.loads(raw, parse_constant=constant)
    except RecursionError:
        where = f" line {line}" if line else ""
        raise DataError(f"{path}{where} nests lists or objects more than about {_depth_limit()} levels deep, "
                        "deeper than a data row can be read.",
                        "Rows are objects of text fields (chat messages one list deep); write the nested value "
                        "as text, or remove that row.") from None


def _depth_limit() -> int:
    import sys

    return sys.getrecursionlimit()


def _json_rows(path: Path) -> list[dict]:
    """Parse JSON / JSON Lines with Python's json to find a syntax error's line and column, or rows."""
    raw = path.read_text(encoding="utf-8-sig")
    # walking every value costs seconds on big files: only when a NaN/Infinity or a surrogate escape was seen
    seen = [True] if _SURROGATE_ESCAPE.search(raw) else []
    if path.suffix.lower() == ".jsonl":
        rows, lines = _json_lines(raw, path, seen)
        return _check_values(rows, path, lines) if seen else rows
    try:
        rows = _normalise(_loads(raw, path, seen=seen), path)
        return _check_values(rows, path, None) if seen else rows
    except json.JSONDecodeError as exc:
        whole_doc_error = exc
    try:
        rows, lines = _json_lines(raw, path, seen)  # JSON Lines written to a .json file
    except DataError:
        exc = whole_doc_error
        raise _json_error(path, exc.lineno, exc.colno, exc.msg) from None
    return _check_values(rows, path, lines) if seen else rows


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _json_lines(raw: str, path: Path, seen: list | None = None) -> tuple[list[dict], list[int]]:
    """(rows, the line each row came from)."""
    rows, lines = [], []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = _loads(line, path, number, seen)
        except json.JSONDecodeError as exc:
            raise _json_error(path, number, exc.colno, exc.msg) from None
        found = _normalise(value, path, line=number)
        rows.extend(found)
        lines.extend([number] * len(found))
    return rows, lines


_NAN_FIX = "Write that value as text in quotes (e.g. \"NaN\") or as null, or remove the row."
_SURROGATE_FIX = ("Fix the text of that row: an escape like \\ud83d must be followed by its second half (\\ude00), "
                  "or save the file as UTF-8 from the program that made it.")


def _bad_value(value, where: str = "", depth: int = 0) -> tuple[str, str, str] | None:
    """(field path, what is wrong, fix) for the first NaN/Infinity or lone surrogate inside ``value``."""
    if isinstance(value, _NotText):
        return where, f"{value.word}, which is not text (and not valid JSON either)", _NAN_FIX
    if isinstance(value, float) and not math.isfinite(value):
        return where, f"{value}, which is not text", _NAN_FIX
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return where, (f"invalid text: the escape \\u{ord(value[exc.start]):04x} (character {exc.start}) is "
                           "half of a surrogate pair, not a character"), _SURROGATE_FIX
        return None
    if depth > 64:  # _loads already bounded the depth; this only keeps the walk cheap
        return None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, inner in items:
        sub = f"{where}{key}" if str(key).startswith("[") else (f"{where}.{key}" if where else str(key))
        found = _bad_value(inner, sub, depth + 1)
        if found:
            return found
    return None


def _check_values(rows: list[dict], path: Path, lines: list[int] | None) -> list[dict]:
    """Refuse NaN/Infinity and lone surrogates, naming the row: pyarrow turns the first into an empty cell
    (reported later as an "empty answer") and fails on the second with an unrelated message."""
    for i, row in enumerate(rows):
        found = _bad_value(row)
        if found:
            field, what, fix = found
            line = f", line {lines[i]}" if lines else ""
            raise DataError(f"{path}: row {i}{line}: '{field}' holds {what}.", fix)
    return rows


CONVERSATION_KEYS = ("conversation", "conversations", "messages")


def _is_row_list(key, value) -> bool:
    """True for {"data": [row, ...]} wrappers, not for one conversation such as {"messages": [...]}.

    >>> _is_row_list("data", [{"input": "q", "output": "a"}]), _is_row_list("messages", [{"role": "user"}])
    (True, False)
    """
    if key in CONVERSATION_KEYS or not isinstance(value, list) or not value:
        return False
    if not all(isinstance(v, dict) for v in value):
        return False
    return not all(("role" in v and "content" in v) or ("from" in v and "value" in v) for v in value)


def _normalise(value, path: Path, line: int | None = None) -> list[dict]:
    """Top-level JSON -> rows: a list of objects, one object, {"key": [rows]}, or a list of chat messages."""
    where = f" (line {line})" if line else ""
    if isinstance(value, dict):
        (key, inner), = value.items() if len(value) == 1 else ((None, None),)
        if line is None and _is_row_list(key, inner):
            return list(inner)
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(i, dict) and "role" in i and "content" in i for i in value):
            return [{"messages": value}]  # one conversation written as a bare list of messages
        if all(isinstance(i, dict) for i in value):
            return list(value)
        first = next(i for i, v in enumerate(value) if not isinstance(v, dict))
        kinds = sorted({_json_kind(v) for v in value if not isinstance(v, dict)})
        what = (f"is a list of {kinds[0]}s, not of rows" if len(kinds) == 1 and first == 0 and
                all(not isinstance(v, dict) for v in value) else
                f"is a list whose item {first} is a {_json_kind(value[first])}, not a row")
        raise DataError(f"{path}{where} {what} (a row is an object with named fields).",
                        "Write each row as an object, e.g. [{\"input\": \"a question\", \"output\": \"its answer\"}] "
                        "in .json or one object per line in .jsonl; plain text for pre-training goes in a .txt file, "
                        "one sample per line.")
    raise DataError(f"{path}{where} is a single {_json_kind(value)}, not a row (an object with named fields).",
                    "Write one JSON object per row, e.g. {\"instruction\": ..., \"output\": ...}.")


def _json_kind(value) -> str:
    """A JSON value's kind in the words of a message.

    >>> _json_kind("a"), _json_kind(1.5), _json_kind([1]), _json_kind(None)
    ('string', 'number', 'list', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false value"
    if isinstance(value, (int, float, _NotText)):
        return "number"
    return {str: "string", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _json_error(path: Path, line: int, column: int, msg: str) -> DataError:
    return DataError(f"{path} is not valid JSON: {msg} at line {line}, column {column}.",
                     "Fix that spot (a missing comma, quote or bracket is usual); `python -m json.tool FILE` "
                     "checks a file.")


def _from_rows(rows: list[dict], path: Path):
    import datasets

    try:
        return datasets.Dataset.from_list(rows)
    except RecursionError:
        raise DataError(f"{path}: a row nests lists or objects too deep to be stored as a table.",
                        "Rows are objects of text fields (chat messages one list deep); write the nested value "
                        "as text, or remove that row.") from None
    except Exception as exc:  # pyarrow type clashes between rows
        _check_values(rows, path, None)  # invalid text is the likelier cause: name its row
        raise DataError(f"{path}: the rows do not share one layout ({type(exc).__name__}: {str(exc)[:200]}).",
                        "Make every row use the same fields with the same kinds of values.") from None


def _txt_mode(path: Path) -> str:
    """'paragraph' when the file has a blank line between text, else 'line'."""
    seen_text = blank_after_text = False
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            if line.strip():
                if blank_after_text:
                    return "paragraph"
                seen_text = True
            elif seen_text:
                blank_after_text = True
    return "line"


def _load_file(path: Path, kind: str):
    import datasets

    if kind == "text":
        mode = _txt_mode(path)
        ds = datasets.load_dataset("text", data_files=str(path), split="train", sample_by=mode)
        if mode == "paragraph":
            ds = ds.map(lambda b: {"text": [t.strip("\n") for t in b["text"]]}, batched=True)
        return ds.filter(lambda b: [bool(t.strip()) for t in b["text"]], batched=True)
    options = {"sep": csv_delimiter(path)} if kind == "csv" else {}
    small_json = kind == "json" and path.stat().st_size <= JSON_PRECHECK_BYTES
    if small_json and _json_needs_parse(path):
        _json_rows(path)  # the DataError that names the row; a file it accepts is then read by datasets
    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train", **options)
        if small_json and _holds_null_or_float(ds):
            _json_rows(path)  # a NaN or Infinity is named with its row; null and numbers pass
        if kind == "json" and ds.num_rows == 1 and len(ds.column_names) == 1:
            value = ds[0][ds.column_names[0]]
            if _is_row_list(ds.column_names[0], value):
                return _from_rows(value, path)  # {"data": [rows]}: the rows are inside one key
        return ds
    except DataError:
        raise
    except Exception as exc:
        if kind == "json":
            return _from_rows(_json_rows(path), path)
        if kind == "parquet":
            raise DataError(f"{path} is not a readable Parquet file ({str(exc)[:200]}).",
                            "Re-export it, e.g. with pandas DataFrame.to_parquet.") from None
        sep = options.get("sep", ",")
        name = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "'|'"}.get(sep, repr(sep))
        raise DataError(f"{path} could not be read as {kind.upper()} (fields separated by {name}): "
                        f"{_root_cause(exc)[:300]}",
                        "Every line needs as many fields as the header line; put double quotes around a field "
                        "that holds the separator, a quote or a line break.") from None


def _root_cause(exc: BaseException) -> str:
    """The innermost message: ``datasets`` wraps a reader's error in "An error occurred while generating the
    dataset" and keeps the useful part ("Expected 2 fields in line 4, saw 5") only in the chain.

    >>> try:
    ...     try:
    ...         raise ValueError("Expected 2 fields in line 4, saw 5")
    ...     except ValueError as inner:
    ...         raise RuntimeError("An error occurred while generating the dataset") from inner
    ... except RuntimeError as outer:
    ...     _root_cause(outer)
    'Expected 2 fields in line 4, saw 5'
    """
    seen, messages = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc).strip()
        if text:
            messages.append(text.splitlines()[-1] if "Error tokenizing data" not in text else text)
        exc = exc.__cause__ or exc.__context__
    message = messages[-1] if messages else "unknown error"
    return re.sub(r"^Error tokenizing data\. C error: ", "", message)


def csv_delimiter(path: Path) -> str:
    """The field separator: tab for .tsv; for .csv the one ``csv.Sniffer`` finds in the first lines among
    , ; tab | (spreadsheets in many locales write ';'), else ','.

    The sniffed separator must also occur in the header line, so a comma file whose texts hold many
    semicolons keeps ','.
    """
    if path.suffix.lower() == ".tsv":
        return "\t"
    with open(path, encoding="utf-8-sig", newline="") as fh:
        sample = fh.read(_SNIFF_BYTES)
    header = sample.splitlines()[0] if sample else ""
    if "," in header and not any(d in header for d in CSV_DELIMITERS[1:]):
        return ","
    try:
        found = csv.Sniffer().sniff(sample if len(sample) < _SNIFF_BYTES else sample[:sample.rfind("\n") + 1] or sample,
                                    delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        found = ","
    if found not in header:
        return ","
    return found


def _load_saved(folder: Path, split: str):
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as exc:
        raise DataError(f"{folder} is a folder but not a dataset saved by `datasets` ({str(exc)[:200]}).",
                        "Point at a data file, or at a folder written by Dataset.save_to_disk.") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{folder} has no split '{split}'.", f"Splits present: {', '.join(loaded)}.",
                            field="data.split")
        return loaded[split]
    return loaded


def _load_hub(name: str, split: str):
    import datasets

    try:
        return datasets.load_dataset(name, split=split)
    except Exception as exc:
        raise DataError(f"could not load the hub dataset '{name}' ({type(exc).__name__}: {str(exc)[:200]}).",
                        "Check the id and your internet connection, or download the data and give a local file."
                        ) from None


def precheck(path: str, *, parse_json: bool = True) -> tuple[Path | None, str]:
    """Cheap checks that need no heavy import: (local path or None for a hub id, reader kind).

    Raises a DataError for a missing, empty, non-UTF-8 or unsupported file, and (``parse_json``) for a
    JSON file that is broken or holds no rows (a list of numbers, NaN, a lone surrogate escape).
    """
    if not path:
        raise DataError("no dataset given.",
                        "Give a .json/.jsonl/.csv/.tsv/.parquet/.txt file, a saved folder or a hub id.",
                        field="data.path")
    p = Path(path).expanduser()
    if not p.exists():
        if looks_like_hub_id(path):
            return None, "hub"
        raise DataError(f"dataset file {path} does not exist.",
                        "Check the path (relative paths start from the current folder), or give a hub id like "
                        "tatsu-lab/alpaca.", field="data.path")
    if p.is_dir():
        return p, "saved"
    kind = FILE_TYPES.get(p.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: files ending in '{p.suffix or '(no extension)'}' are not a dataset format we read.",
                        f"Use one of {', '.join(FILE_TYPES)}, or a folder saved by `datasets`.")
    if p.stat().st_size == 0 or (kind != "parquet" and _is_blank(p)):
        raise DataError(f"{path} is empty.", "Put at least one sample in it.")
    if kind != "parquet":
        check_utf8(p)
    if parse_json and kind == "json" and p.stat().st_size <= JSON_PRECHECK_BYTES:
        _json_rows(p)  # syntax errors with line and column, without importing datasets
    return p, kind


def _json_needs_parse(path: Path) -> bool:
    """Whether ``datasets`` may misread this JSON file or crash on it, so our own parser must see it first.

    It reads ``[1, 2]`` without failing (as a "text" column), and pyarrow's JSON Lines reader crashes the
    process on a line nested some thousands deep (a list document goes through a parser with a depth limit
    first). What else could go wrong it refuses (then our parser names line and column) or leaves visible
    in the table (:func:`_holds_null_or_float`).

    Why not always parse: that cost a quarter of the pipeline's time outside the tokenizer on a 20,000-row
    file (bench/data_pipeline.py).
    """
    raw = path.read_bytes()
    head = raw[:_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"[":
        return head[1:].lstrip(b" \t\r\n")[:1] not in (b"{", b"")  # a list whose first item is not an object
    return head[:1] != b"{" or _deep_line(raw)  # a single scalar, or a line that may nest too deep


def _holds_null_or_float(ds) -> bool:
    """Whether some field of the table, at any depth, holds a null or a float: what ``datasets`` makes of NaN
    and Infinity (and of JSON null and numbers, which our parser then lets through). Reads only the arrays'
    metadata."""
    import pyarrow as pa

    stack = [chunk for column in ds.data.table.columns for chunk in column.chunks]
    while stack:
        array = stack.pop()
        kind = array.type
        if array.null_count:
            return True
        if pa.types.is_struct(kind):
            stack.extend(array.field(i) for i in range(kind.num_fields))
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            stack.append(array.values)
        elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
                  or pa.types.is_boolean(kind)):
            return True  # a float, a null column, or a kind no text field has
    return False


_DEEP = 512  # opening brackets on one line past which a line may nest too deep for pyarrow (it crashed at 10,000)


def _deep_line(raw: bytes) -> bool:
    """Whether some line holds more than _DEEP opening brackets (an upper bound of its depth).

    >>> _deep_line(b'{"a": [1]}\\n' * 1000), _deep_line(b'{"a": ' + b'[' * 600 + b']' * 600 + b'}')
    (False, True)
    """
    if raw.count(b"[") + raw.count(b"{") <= _DEEP:
        return False
    return any(line.count(b"[") + line.count(b"{") > _DEEP for line in raw.split(b"\n"))


def load_rows(path: str, *, split: str = "train"):
    """Load a dataset file, saved folder or hub id as a ``datasets.Dataset`` (one split).

    >>> import json, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "d.jsonl")
    >>> _ = open(f, "w").write(json.dumps({"input": "a", "output": "b"}) + "\\n")
    >>> load_rows(f)[0]
    {'input': 'a', 'output': 'b'}
    """
    p, kind = precheck(path, parse_json=False)  # datasets parses it; _load_file checks what it may misread
    if kind == "hub":
        ds = _load_hub(path, split)
    elif kind == "saved":
        ds = _load_saved(p, split)
    else:
        ds = _load_file(p, kind)
    if ds.num_rows == 0:
        raise DataError(f"{path} has no rows.", "Put at least one sample in it.")
    return ds

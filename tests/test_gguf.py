"""GGUF checkpoints: a .gguf URL (or an archive holding one with its tokenizer) fetched over
real HTTP on 127.0.0.1, dequantised into a plain model directory that evaluates like any
other, its quantisation type and file size reported."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from evaluator.checkpoint import CheckpointError, Limits, fetch, gguf_convert, parse_source

QUICK = Limits(connect_timeout=2, read_timeout=5)
TEXTS = ["The quick brown fox.", "  Question: is it? Answer: yes\n\nno", "héllo wörld 123"]
# Largest logit difference from the original float32 model, per stored type.
CLOSE = {"F32": 1e-5, "F16": 1e-2, "Q8_0": 5e-2, "Q4_1": 1.0}


def get(served, name: str, dest: Path, **kwargs):
    allowed = [f"127.0.0.1:{served.app.port}"]
    return fetch(parse_source(f"{served.url}/{name}"), dest, allowed_hosts=allowed, **kwargs)


def refusal(served, name: str, dest: Path, limits: Limits = QUICK) -> str:
    with pytest.raises(CheckpointError) as caught:
        get(served, name, dest, limits=limits)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # nothing left behind
    return str(caught.value)


def logits(model_dir: Path) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(torch.tensor([[5, 77, 300, 12, 45, 400, 9, 3]])).logits


@pytest.fixture
def dest(tmp_path) -> Path:
    (tmp_path / "models").mkdir()
    return tmp_path / "models" / "m1"


@pytest.mark.parametrize(
    "text",
    [
        "https://models.example.org/tiny-Q4_1.gguf",
        "https://models.example.org/path/Model.Q8_0.GGUF#frag",
        "https://huggingface.co/org/name/resolve/main/model-Q4_1.gguf",
    ],
)
def test_it_parses_a_gguf_url_as_a_gguf_source(text):
    source = parse_source(text)
    assert source.kind == "gguf" and "#" not in source.url


@pytest.mark.parametrize("kind", ["F32", "F16", "Q8_0", "Q4_1"])
def test_it_turns_a_gguf_url_into_a_model_directory_that_runs_like_the_original(
    served_gguf, tiny_model_dir, dest, kind
):
    fetched = get(served_gguf, f"tiny-{kind}.gguf", dest)
    assert fetched.source_format == "gguf" and fetched.gguf_type == kind
    assert fetched.gguf_bytes == (served_gguf.root / f"tiny-{kind}.gguf").stat().st_size
    assert fetched.files == ["config.json", "model.safetensors", "tokenizer.json"] + [
        "tokenizer_config.json"
    ]
    assert fetched.info.architecture == "LlamaForCausalLM" and fetched.info.layers == 2
    assert fetched.info.params_total == 106_816 and fetched.info.dtype == "float32"
    diff = (logits(dest) - logits(tiny_model_dir)).abs().max().item()
    assert diff <= CLOSE[kind]
    if kind == "Q4_1":  # 4-bit weights do move the logits: the file really was quantised
        assert diff > 1e-3
    # The tokenizer rebuilt from the GGUF's metadata tokenizes as the original does.
    ours = AutoTokenizer.from_pretrained(dest)
    theirs = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert len(ours) == len(theirs) == 512
    assert [ours(t)["input_ids"] for t in TEXTS] == [theirs(t)["input_ids"] for t in TEXTS]


def test_a_safetensors_checkpoint_says_so(served, dest):
    fetched = get(served, "tiny.tar.gz", dest)
    assert (fetched.source_format, fetched.gguf_type, fetched.gguf_bytes) == ("safetensors", "", 0)


def test_the_same_gguf_under_another_url_hashes_the_same(served_gguf, tmp_path, dest):
    root = served_gguf.root
    (root / "copy").mkdir(exist_ok=True)
    (root / "copy" / "renamed.gguf").write_bytes((root / "tiny-Q8_0.gguf").read_bytes())
    first = get(served_gguf, "tiny-Q8_0.gguf", dest)
    second = get(served_gguf, "copy/renamed.gguf", tmp_path / "models" / "m2")
    third = get(served_gguf, "tiny-Q4_1.gguf", tmp_path / "models" / "m3")
    assert first.sha256 == second.sha256 != third.sha256


def test_an_archive_brings_its_own_tokenizer_beside_the_gguf(served_gguf, tiny_model_dir, dest):
    fetched = get(served_gguf, "tiny-gguf.tar.gz", dest)
    assert fetched.source_format == "gguf" and fetched.gguf_type == "Q8_0"
    # The archive's tokenizer files are the ones kept, byte for byte, not a rebuilt one.
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (dest / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    assert "model.safetensors" in fetched.files and "tiny-Q8_0.gguf" not in fetched.files


def tar_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_it_refuses_an_archive_with_two_ggufs(served_gguf, dest):
    q8 = (served_gguf.root / "tiny-Q8_0.gguf").read_bytes()
    (served_gguf.root / "two.tar.gz").write_bytes(tar_of({"a.gguf": q8, "b.gguf": q8}))
    assert "the archive holds 2 .gguf files (a.gguf, b.gguf): keep one" in refusal(
        served_gguf, "two.tar.gz", dest
    )


def test_it_refuses_an_archive_with_both_safetensors_and_a_gguf(served_gguf, tiny_model_dir, dest):
    files = {p.name: p.read_bytes() for p in tiny_model_dir.iterdir()}
    files["tiny.gguf"] = (served_gguf.root / "tiny-Q8_0.gguf").read_bytes()
    (served_gguf.root / "both.tar.gz").write_bytes(tar_of(files))
    assert "both safetensors weights and a .gguf file" in refusal(served_gguf, "both.tar.gz", dest)


def test_the_gguf_download_counts_against_the_download_cap(served_gguf, dest):
    limits = Limits(connect_timeout=2, read_timeout=5, max_download_bytes=64 * 1024)
    assert "is larger than the 64.0 KiB limit" in refusal(
        served_gguf, "tiny-F32.gguf", dest, limits
    )


def test_a_conversion_checks_for_cancellation_between_its_steps(served_gguf, tmp_path):
    ticks = []

    def tick():  # the pipeline's heartbeat; a cancelled submission raises from it
        ticks.append(len(ticks))
        if len(ticks) == 3:
            raise CheckpointError("cancelled")

    path = served_gguf.root / "tiny-Q8_0.gguf"
    with pytest.raises(CheckpointError, match="cancelled"):
        gguf_convert.convert(path, tmp_path / "out", QUICK, tick=tick)
    assert ticks == [0, 1, 2] and not (tmp_path / "out").exists()


def test_an_untied_output_head_comes_back_as_lm_head(tmp_path):
    from evaluator.tinygguf import write_gguf
    from evaluator.tinymodel import TinySpec, build_tiny_model

    model = build_tiny_model(tmp_path / "untied", TinySpec(tied=False, seed=3))
    path = write_gguf(model, tmp_path / "untied.gguf", "F32")
    gguf_convert.convert(path, tmp_path / "out", QUICK)
    config = (tmp_path / "out" / "config.json").read_text()
    assert '"tie_word_embeddings": false' in config
    assert (logits(tmp_path / "out") - logits(model)).abs().max().item() <= 1e-5


def test_pickles_beside_a_gguf_are_ignored_not_refused(served_gguf, tiny_model_dir, dest):
    members = {"m/model.gguf": (served_gguf.root / "tiny-Q8_0.gguf").read_bytes()}
    members["m/tokenizer.json"] = (tiny_model_dir / "tokenizer.json").read_bytes()
    members["m/pytorch_model.bin"] = b"not unpickled, only skipped"
    (served_gguf.root / "with-pickle.tar.gz").write_bytes(tar_of(members))
    fetched = get(served_gguf, "with-pickle.tar.gz", dest)
    assert fetched.gguf_type == "Q8_0" and "pytorch_model.bin" not in fetched.files


def test_a_sentencepiece_vocabulary_is_rebuilt_with_its_bos_and_byte_fallback(tmp_path):
    """The other tokenizer GGUFs carry ("llama": SentencePiece pieces, scores, byte tokens), as
    TinyLlama's or Mistral's files do; the tokenizer rebuilt from it must encode as
    SentencePiece itself, BOS first (llama.cpp's default for this type)."""
    spm = pytest.importorskip("sentencepiece", reason="sentencepiece builds the reference")
    import gguf
    import numpy as np

    from evaluator.checkpoint.gguf_convert import _tokenizer_from_metadata
    from evaluator.checkpoint.gguf_header import read_header
    from evaluator.tinymodel import _CORPUS

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in _CORPUS.splitlines() if line.strip()] * 4),
        model_writer=proto, vocab_size=500, model_type="bpe", byte_fallback=True,
        unk_id=0, bos_id=1, eos_id=2, minloglevel=2,
    )  # fmt: skip
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    ids = range(sp.get_piece_size())
    kinds = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1
             for i in ids]  # fmt: skip
    writer = gguf.GGUFWriter(str(tmp_path / "sp.gguf"), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list([sp.id_to_piece(i) for i in ids])
    writer.add_token_scores([sp.get_score(i) for i in ids])
    writer.add_token_types(kinds)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_tensor("token_embd.weight", np.zeros((len(ids), 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    path = tmp_path / "sp.gguf"
    tok = _tokenizer_from_metadata(path, read_header(path))
    assert len(tok) == len(ids)
    for text in ["The quick brown fox.", "héllo wörld 123 ✓", "Sarah gave her friend"]:
        assert tok(text)["input_ids"] == [1, *sp.encode(text)], text

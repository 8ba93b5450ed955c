"""exsearch_jax/cli.py through the launchers: bad input is one line on stderr naming the flag, file or field, and
exit status 2; EXSEARCH_TRACEBACK=1 brings the traceback back."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every case starts a launcher process (a few seconds each)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(script, *args, env=None):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, script), *args],
      capture_output=True,
      text=True,
      cwd=ROOT,
      timeout=300,
      check=False,
      env={**os.environ, **(env or {})},
  )


def _one_line(out, *needles):
  assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
  lines = [line for line in out.stderr.splitlines() if not line.startswith(("I1", "W1"))]  # absl info lines
  assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.stderr, out.stderr[-3000:]
  for needle in needles:
    assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory):
  d = tmp_path_factory.mktemp("bad")
  (d / "raises.py").write_text("def get_config():\n  raise ValueError('broken on purpose')\n")
  (d / "dev.jsonl").write_text('{"id": "1", "question": "q?", "golden_answers": ["a"]}\n{"id": "2", "question": \n')
  (d / "wrongtype.jsonl").write_text('{"id": "1", "question": 7, "golden_answers": ["a"]}\n')
  (d / "hotpot.json").write_text(
      '[{"_id": "x", "question": "q?", "answer": "a", "context": "not a list", '
      '"supporting_facts": [], "type": "bridge", "level": "easy"}]'
  )
  (d / "corpus.jsonl").write_bytes(b'{"id": "p1", "title": "T", "text": "\xff\xfe"}\n')
  return d


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--config=exsearch_jax/config.py:nope",), ("unknown preset 'nope'",)),
        (("--config.em.wieghts=paper",), ("--config.em.wieghts", 'did you mean "weights"')),
        (("--config.nope.x=1",), ("--config.nope.x", "no such config field")),
        (("--config.em.iterations=abc",), ("--config.em.iterations=abc",)),
        (("--config=experiments/configs/nonexist.py",), ("--config", "No such file")),
        (("--bogus",), ("Unknown command line flag 'bogus'",)),
        (
            ("--config=experiments/paper/configs.py:qwen2_5_7b_8xh100", "--dry_run", "--config.target.devices=6"),
            ("mesh", "needs 8 devices"),
        ),
        (("--dry_run",), ("config.target.devices",)),
    ],
)
def test_train_launcher_flag_and_config_errors(args, needles):
  _one_line(_launch("launch/train.py", "--workdir=/nonexistent/never", *args), *needles)


def test_a_config_file_that_raises(broken_files):
  _one_line(_launch("launch/train.py", f"--config={broken_files}/raises.py"), "broken on purpose")


@pytest.mark.parametrize(
    "name,fmt,needles",
    [
        ("dev.jsonl", "flashrag", ("dev.jsonl:2", "invalid JSON")),
        ("wrongtype.jsonl", "flashrag", ("wrongtype.jsonl:1", "'question'")),
        ("hotpot.json", "hotpotqa", ("hotpot.json", "record 0", "'context'")),
    ],
)
def test_eval_launcher_names_file_line_and_field(broken_files, tmp_path, name, fmt, needles):
  out = _launch(
      "launch/eval.py",
      "--config=exsearch_jax/config.py:smollm2_135m",
      f"--workdir={tmp_path}",
      "--model=asset:smollm2-135m-instruct",
      "--config.data.source=files",
      f"--config.data.format={fmt}",
      f"--config.data.dev={broken_files}/{name}",
  )
  _one_line(out, *needles)


def test_build_index_launcher(broken_files, tmp_path):
  _one_line(
      _launch("launch/build_index.py", "--corpus=/nonexistent/c.jsonl", f"--out={tmp_path}/i"), "/nonexistent/c.jsonl"
  )
  _one_line(
      _launch("launch/build_index.py", f"--corpus={broken_files}/corpus.jsonl", f"--out={tmp_path}/j", "--index=bm25"),
      "corpus.jsonl",
  )


def test_traceback_on_request():
  out = _launch("launch/train.py", "--config.em.wieghts=paper", env={"EXSEARCH_TRACEBACK": "1"})
  assert out.returncode != 0 and "Traceback" in out.stderr


@pytest.mark.parametrize(
    "name,content,needles",
    [
        ("empty.jsonl", b"", ("empty.jsonl", "empty")),
        (
            "dup.jsonl",
            b'{"id":"a","title":"T","text":"x"}\n{"id":"a","title":"T","text":"y"}\n',
            ("dup.jsonl:2", "duplicate"),
        ),
        ("trunc.jsonl", b'{"id":"a","title":"T","text":"x"}\n{"id":"b","ti', ("trunc.jsonl:2", "invalid JSON")),
        ("list.jsonl", b"[1, 2]\n", ("list.jsonl:1", "JSON object")),
        ("notext.jsonl", b'{"id":"a","title":"T"}\n', ("notext.jsonl:1", "'text'")),
    ],
)
def test_build_index_names_the_corpus_line(tmp_path, name, content, needles):
  (tmp_path / name).write_bytes(content)
  _one_line(
      _launch("launch/build_index.py", f"--corpus={tmp_path / name}", f"--out={tmp_path}/ix", "--index=bm25"), *needles
  )


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory):
  """Model directories and files that must not load: garbage, truncated, half-written, foreign tokenizer."""
  from exsearch_jax.assets import resolve_checkpoint
  from exsearch_jax.models import DecoderConfig, init_model, load_tokenizer, save_pretrained

  d = tmp_path_factory.mktemp("models")
  (d / "garbage.gguf").write_bytes(os.urandom(1000))
  (d / "truncated.gguf").write_bytes(b"GGUF\x03\x00\x00\x00garbage")
  smollm2 = load_tokenizer(resolve_checkpoint("asset:smollm2-135m-instruct"))
  tiny = init_model(
      DecoderConfig(
          vocab_size=100, hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8
      )
  )
  save_pretrained(tiny, str(d / "foreign_tokenizer"), tokenizer=smollm2)  # 49,152 tokens, 100 embeddings
  save_pretrained(tiny, str(d / "no_weights"), tokenizer=smollm2)
  os.remove(d / "no_weights" / "model.safetensors")
  save_pretrained(tiny, str(d / "torn_weights"), tokenizer=smollm2)
  (d / "torn_weights" / "model.safetensors").write_bytes(b"garbage!")
  save_pretrained(tiny, str(d / "torn_tokenizer"), tokenizer=smollm2)
  (d / "torn_tokenizer" / "tokenizer.json").write_text('{"model": ')
  return d


@pytest.mark.parametrize(
    "model,needles",
    [
        ("garbage.gguf", ("garbage.gguf", "not a GGUF file")),
        ("truncated.gguf", ("truncated.gguf",)),
        ("foreign_tokenizer", ("49152 tokens", "vocab_size is 100")),
        ("no_weights", ("no_weights", "model.safetensors")),
        ("torn_weights", ("torn_weights/model.safetensors", "truncated")),
        ("torn_tokenizer", ("torn_tokenizer", "tokenizer")),
        ("/nonexistent/model", ("/nonexistent/model",)),
    ],
)
def test_eval_launcher_rejects_broken_models(broken_models, tmp_path, model, needles):
  path = model if model.startswith("/") else str(broken_models / model)
  _one_line(
      _launch(
          "launch/eval.py",
          "--config=exsearch_jax/config.py:smollm2_135m",
          f"--workdir={tmp_path}",
          f"--model={path}",
          "--config.data.dev_limit=2",
      ),
      *needles,
  )


def test_unknown_asset():
  _one_line(
      _launch(
          "launch/eval.py", "--config=exsearch_jax/config.py:smollm2_135m", "--workdir=/tmp/never", "--model=asset:nope"
      ),
      "unknown asset 'nope'",
  )


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--config.rollout.top_p=1.5",), ("config.rollout.top_p=1.5", "(0, 1]")),
        (("--config.train.micro_batches=3",), ("config.train.micro_batches=3", "must divide")),
        (("--workdir=/proc/exsearch-never",), ("--workdir=/proc/exsearch-never", "cannot write")),
    ],
)
def test_config_values_are_checked_before_any_work(args, needles):
  _one_line(_launch("launch/train.py", "--workdir=/tmp/exsearch-never-used", *args), *needles)


def test_an_index_built_with_another_encoder_is_refused(tmp_path):
  """A prebuilt dense index whose embeddings come from another encoder than config.retrieval.encoder: one line
  naming both, before any model is loaded (queries and passages would live in different spaces)."""
  import json
  import shutil
  from exsearch_jax.assets import resolve_checkpoint

  other = tmp_path / "minilm-finetuned"
  shutil.copytree(resolve_checkpoint("asset:all-minilm-l6-v2"), other)
  config = json.loads((other / "config.json").read_text())
  (other / "config.json").write_text(json.dumps({**config, "_name_or_path": "a fine-tuned copy"}))
  corpus, dev = tmp_path / "corpus.jsonl", tmp_path / "dev.jsonl"
  corpus.write_text(
      "".join(json.dumps({"id": f"p{i}", "title": f"T{i}", "text": f"passage {i}"}) + "\n" for i in range(4))
  )
  dev.write_text(json.dumps({"id": "1", "question": "q?", "golden_answers": ["a"]}) + "\n")
  built = _launch(
      "launch/build_index.py", f"--corpus={corpus}", f"--out={tmp_path}/ix", "--index=exact", f"--encoder={other}"
  )
  assert built.returncode == 0, built.stderr[-2000:]
  out = _launch(
      "launch/eval.py",
      "--config=exsearch_jax/config.py:smollm2_135m",
      f"--workdir={tmp_path}/w",
      "--model=asset:smollm2-135m-instruct",
      "--config.data.source=files",
      "--config.data.format=flashrag",
      f"--config.data.dev={dev}",
      f"--config.data.corpus={corpus}",
      f"--config.retrieval.index_dir={tmp_path}/ix",
  )
  _one_line(out, "meta.json", "built with encoder", "refusing asset:all-minilm-l6-v2")

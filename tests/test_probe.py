"""Saved models and linear probes (childtuning/saved_models.py, childtuning/probe): a run keeps its
model with checksums; bad input is refused before training with no record; a head trained on
cached features equals one trained through the live frozen encoder, whose weights never change;
the task-transfer experiment end to end on a tiny model."""
import json
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import childtuning.probe.run as probe_run
import childtuning.train as train_mod
from childtuning import data, saved_models, sweep
from childtuning.errors import InputError
from childtuning.probe import config as probe_config
from childtuning.probe import records as probe_records
from childtuning.probe import sources as probe_sources
from childtuning.probe.features import FrozenEncoder, cached
from childtuning.probe.head import Standardized, new_head, score, standardizer, train_head
from childtuning.record import run_id
from childtuning.report import summarize

from helpers.configs import compose_cfg as cfg_for
from helpers.models import conf_model
from helpers.paths import REPO

EXP = "task_transfer_smoke"


def source_cfg(results, glue, *extra):
    return cfg_for(f"exp={EXP}", "method=vanilla", "seed=1", f"paths.results={results}", f"paths.glue_dir={glue}",
                   f"paths.cache={results}/cache", "impl.num_threads=1", *extra)


def probe_args(results, glue, *extra):
    return [f"exp={EXP}", f"paths.results={results}", f"paths.glue_dir={glue}", f"paths.cache={results}/cache",
            "impl.num_threads=1", *extra]


def probe_files(results):
    return sorted(Path(results).glob("*/probes/*.json"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One tiny_bert source run (RTE, synthetic) with trainer.save_model=true, from the smoke experiment."""
    from helpers.glue import write_synthetic_glue

    root = tmp_path_factory.mktemp("probe")
    glue = write_synthetic_glue(root / "glue", ("RTE", "MRPC", "STS-B", "CoLA"))
    record = train_mod.run(source_cfg(root / "results", glue))
    return root / "results", glue, record


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a probe gets as far as loading an encoder."""
    def boom(*a, **k):
        raise AssertionError("bad input must fail before any encoder is loaded")
    monkeypatch.setattr(probe_run, "load_encoder", boom)


# ---------------------------------------------------------------- saved models
def test_a_run_keeps_its_model_with_checksums_and_the_same_run_id(saved):
    results, glue, record = saved
    entry = record["artifacts"]["model"]
    folder = results / EXP / "artifacts" / record["run_id"] / "model"
    assert {"config.json", "model.safetensors"} <= set(entry["files"]) and entry["bytes"] > 0
    for name, digest in entry["files"].items():
        assert saved_models.sha256(folder / name) == digest
    # saving is not part of what a run computes: same run id with and without it
    assert run_id(train_mod.validate(source_cfg(results, glue))) == \
        run_id(train_mod.validate(source_cfg(results, glue, "trainer.save_model=false"))) == record["run_id"]
    model, _ = saved_models.load(saved_models.resolve(results, f"{EXP}/{record['run_id']}"))
    assert model.config.model_type == "bert"


def test_fine_tuning_from_a_saved_run_is_refused(saved):
    results, glue, record = saved
    with pytest.raises(InputError, match="model.source=run .* names a saved run for the probe"):
        train_mod.run(source_cfg(results, glue, "model.source=run", f"+model.run={EXP}/{record['run_id']}"))


# ---------------------------------------------------------------- bad input: no record, no encoder loaded
@pytest.mark.slow
def test_missing_source_run_is_refused(tmp_path, saved, no_model):
    _, glue, _ = saved
    with pytest.raises(InputError, match=r"source run\(s\) of experiment task_transfer_smoke have no complete record.*"
                                         r"run the source sweep first"):
        probe_run.run(probe_args(tmp_path, glue))
    with pytest.raises(InputError, match=r"source run nowhere/abc: its record .* does not exist"):
        probe_run.run(probe_args(tmp_path, glue, "probe.sources=[nowhere/abc]"))
    assert not probe_files(tmp_path)


def test_source_without_saved_model_is_refused(tmp_path, saved, no_model):
    _, glue, _ = saved
    record = train_mod.run(source_cfg(tmp_path, glue, "trainer.save_model=false"))
    assert "model" not in record["artifacts"]
    with pytest.raises(InputError, match=r"saved no model .* Rerun it with trainer.save_model=true force=true"):
        probe_run.run(probe_args(tmp_path, glue, f"probe.sources=[{EXP}/{record['run_id']}]"))
    assert not probe_files(tmp_path)


def test_checksum_mismatch_is_refused(tmp_path, saved, no_model):
    results, glue, record = saved
    import shutil
    shutil.copytree(results / EXP, tmp_path / EXP)
    weights = tmp_path / EXP / "artifacts" / record["run_id"] / "model" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 1                                     # one flipped bit in the last weight
    weights.write_bytes(bytes(blob))
    with pytest.raises(InputError, match=r"model.safetensors does not match the sha256 its record names"):
        probe_run.run(probe_args(tmp_path, glue, f"probe.sources=[{EXP}/{record['run_id']}]"))
    weights.unlink()
    with pytest.raises(InputError, match=r"saved model file .*model.safetensors is missing"):
        probe_run.run(probe_args(tmp_path, glue, f"probe.sources=[{EXP}/{record['run_id']}]"))
    assert not probe_files(tmp_path)


@pytest.mark.parametrize("task,folder,make_bad,message", [
    ("mrpc", "MRPC", lambda rows: [rows[0]] + [r if r.split("\t")[0] == "1" else "1" + r[1:] for r in rows[1:]],
     "a classification head needs at least two classes"),
    ("stsb", "STS-B", lambda rows: [rows[0]] + ["\t".join(r.split("\t")[:-1] + ["2.5"]) for r in rows[1:]],
     "a regression head needs finite, non-constant scores"),
])
def test_a_label_kind_the_head_cannot_learn_is_refused(tmp_path, saved, no_model, task, folder, make_bad, message):
    results, glue, record = saved
    import shutil
    bad = tmp_path / "glue"
    shutil.copytree(glue, bad)
    path = bad / folder / "train.tsv"
    rows = [r for r in path.read_text(encoding="utf-8-sig").split("\n") if r]
    path.write_text("\n".join(make_bad(rows)) + "\n")
    before = probe_files(results)
    with pytest.raises(InputError, match=message):
        probe_run.run(probe_args(results, bad, f"probe.sources=[{EXP}/{record['run_id']}]", f"probe.targets=[{task}]"))
    assert probe_files(results) == before


def test_bad_probe_settings_are_refused(saved, no_model):
    results, glue, _ = saved
    for arg, message in (("probe.representation=cls", "probe.representation='cls'; use one of head_input, token, mean"),
                         ("probe.targets=[]", "probe.targets is empty"), ("probe.shard=2/2", "probe.shard='2/2'"),
                         ("probe.learning_rate=1", "probe setting `probe.learning_rate`")):
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            probe_run.run(probe_args(results, glue, arg))


def test_bad_impl_is_refused_before_any_target_data_is_read(saved, no_model, monkeypatch):
    results, glue, _ = saved
    monkeypatch.setattr(probe_run, "load_targets", lambda *a, **k: pytest.fail("target data read before the checks"))
    with pytest.raises(InputError, match=r"impl.precision='fp8'; use one of \['fp32', 'bf16', 'fp16'\]"):
        probe_run.run(probe_args(results, glue, "impl.precision=fp8"))


@pytest.mark.slow
def test_command_line_exits_2_on_bad_input_without_traceback(tmp_path, saved):
    _, glue, _ = saved
    out = subprocess.run([sys.executable, "-m", "childtuning.probe", *probe_args(tmp_path, glue)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "error: " in out.stderr and "Traceback" not in out.stderr
    assert not probe_files(tmp_path)


# ---------------------------------------------------------------- the probe itself
def encoder_of(results, record, representation="head_input"):
    model, tokenizer = saved_models.load(saved_models.resolve(results, f"{EXP}/{record['run_id']}"))
    return FrozenEncoder(model, tokenizer, representation, torch.device("cpu"), nullcontext)


@pytest.mark.slow
@pytest.mark.parametrize("task,representation", [("mrpc", "head_input"), ("stsb", "mean")])
def test_head_on_cached_features_equals_head_through_live_frozen_encoder(saved, tmp_path, task, representation):
    results, glue, record = saved
    torch.set_num_threads(1)
    encoder = encoder_of(results, record, representation)
    before = {k: v.clone() for k, v in encoder.base.state_dict().items()}
    target = probe_run.load_targets([task], glue)[0]
    settings = probe_config.load(None, ["targets=[x]", "epochs=2", "batch_size=8"])
    collate = data.Collator(encoder.tokenizer, target.task.regression, None, 1)
    feats, hit = cached(encoder, target.splits["train"], 128, str(tmp_path / "cache"), collate, 64, "fp32", 1)
    assert not hit and feats.shape == (len(target.splits["train"]), encoder.dim)
    again, hit = cached(encoder, target.splits["train"], 128, str(tmp_path / "cache"), collate, 64, "fp32", 1)
    assert hit and torch.equal(again, feats)
    labels = torch.tensor(target.splits["train"].labels)
    cached_head = train_head(lambda idx: feats[idx], labels, encoder.dim, target.task, 3, settings, encoder.init_std)

    # the live path: every training batch goes through the frozen encoder when the head needs it
    examples = data.tokenize(target.splits["train"], encoder.tokenizer, 128, None)
    calls = []

    def live(idx):
        calls.append(len(idx))
        return encoder(collate([examples[i] for i in idx.tolist()]))
    live_head = train_head(live, labels, encoder.dim, target.task, 3, settings, encoder.init_std)
    assert sum(calls) == 2 * len(labels)              # each example once per epoch
    # padding differs (a training batch of 8 vs sorted extraction batches): equal to float rounding
    torch.testing.assert_close(live_head.head.weight, cached_head.head.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(live_head.head.bias, cached_head.head.bias, rtol=1e-5, atol=1e-6)
    assert live_head.steps == cached_head.steps == 2 * -(-len(labels) // 8)

    # the encoder never changed, bit for bit, and is what the run saved
    after = encoder.base.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    from safetensors.torch import load_file
    saved_weights = load_file(str(saved_models.resolve(results, f"{EXP}/{record['run_id']}").folder / "model.safetensors"))
    prefix = "bert."
    assert all(torch.equal(saved_weights[prefix + k], v) for k, v in after.items() if prefix + k in saved_weights)
    assert not encoder.base.training and not any(p.requires_grad for p in encoder.base.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_bert", "tiny_roberta", "tiny_electra", "tiny_xlnet"])
@pytest.mark.parametrize("representation", ["head_input", "token", "mean"])
def test_features_read_the_right_token_whatever_the_padding(model, representation, synthetic_glue):
    """An example's features are the same alone and in a padded batch (right padding, and XLNet's
    left padding), so the representation reads the example's own tokens; head_input differs from
    token only where the head reads a pooler (BERT)."""
    split = data.load_task(probe_run.load_task_config("rte"), str(synthetic_glue), ["train"])["train"]
    net, tokenizer = conf_model(model, [" ".join(t) for t in split.texts])
    encoder = FrozenEncoder(net, tokenizer, representation, torch.device("cpu"), nullcontext)
    examples = data.tokenize(split, tokenizer, 128, None)[:6]
    assert len({len(e["input_ids"]) for e in examples}) > 1            # the batch really pads
    collate = data.Collator(tokenizer, False, None, 1)
    together = encoder(collate(examples))
    alone = torch.cat([encoder(collate([e])) for e in examples])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    if representation == "head_input":
        token = FrozenEncoder(net, tokenizer, "token", torch.device("cpu"), nullcontext)(collate(examples))
        assert torch.allclose(token, together) == (model != "tiny_bert")
        # what the model's own head reads: its head on our features gives the model's logits
        with torch.no_grad():
            logits = net.eval()(**collate(examples)).logits
            torch.testing.assert_close(OWN_HEAD[net.config.model_type](net, together), logits, rtol=1e-4, atol=1e-5)



# Hand-made sentence pairs of different lengths: a batch of them pads, and sorting by length reorders them.
PAIRS = [("the cat sat on the mat by the door", "a cat sat"), ("dogs run", "the dog runs fast today"),
         ("hello", "hi"), ("one two three four five six seven", "eight nine"), ("rain again", "it rains")]


def test_features_are_cached_by_content_and_read_back_from_the_cache(tmp_path):
    """probe.features: the features of a split come back in its order, are written once per (encoder,
    split) and read back from the file on the next call; other weights or another representation
    are another key."""
    split = data.Split(texts=PAIRS, labels=[0, 1, 0, 1, 1], source="hand-made")
    net, tokenizer = conf_model("tiny_bert", [" ".join(t) for t in PAIRS])
    encoder = FrozenEncoder(net, tokenizer, "head_input", torch.device("cpu"), nullcontext)
    collate = data.Collator(tokenizer, False, None, 1)
    setting = (64, str(tmp_path), collate, 2, "fp32", 1)     # max length, cache, collate, batch, precision, multiple
    first, hit = cached(encoder, split, *setting)
    assert not hit and first.shape == (len(PAIRS), encoder.dim)
    assert not encoder.base.training and not any(p.requires_grad for p in encoder.base.parameters())
    examples = data.tokenize(split, tokenizer, 64, None)
    assert len({len(e["input_ids"]) for e in examples}) == len(PAIRS)
    alone = torch.cat([encoder(collate([e])) for e in examples])             # row i is example i's
    torch.testing.assert_close(first, alone, rtol=1e-4, atol=1e-5)
    files = list((tmp_path / "probe_features").glob("*.pt"))
    assert len(files) == 1
    again, hit = cached(encoder, split, *setting)
    assert hit and torch.equal(again, first)
    torch.save(torch.zeros_like(first), files[0])                            # the file is what a hit returns
    assert torch.equal(cached(encoder, split, *setting)[0], torch.zeros_like(first))

    mean, hit = cached(FrozenEncoder(net, tokenizer, "mean", torch.device("cpu"), nullcontext), split, *setting)
    assert not hit and not torch.allclose(mean, first)
    with torch.no_grad():
        net.bert.pooler.dense.bias.add_(1.0)
    changed, hit = cached(FrozenEncoder(net, tokenizer, "head_input", torch.device("cpu"), nullcontext), split, *setting)
    assert not hit and not torch.allclose(changed, first)
    assert len(list((tmp_path / "probe_features").glob("*.pt"))) == 3
    _, hit = cached(encoder, split, 64, None, collate, 2, "fp32", 1)         # no cache folder: nothing read
    assert not hit

# How each transformers model applies its own classification head to what it reads from the encoder.
OWN_HEAD = {"bert": lambda m, f: m.classifier(f),                       # pooler output -> classifier
            "roberta": lambda m, f: m.classifier(f[:, None]),           # reads features[:, 0]
            "electra": lambda m, f: m.classifier(f[:, None]),
            "xlnet": lambda m, f: m.logits_proj(m.sequence_summary(f[:, None]))}   # summary of the last token


def test_head_comes_from_its_seed_and_fits_the_label_kind():
    assert torch.equal(new_head(8, 2, 1, 0.02).weight, new_head(8, 2, 1, 0.02).weight)
    assert not torch.equal(new_head(8, 2, 1, 0.02).weight, new_head(8, 2, 2, 0.02).weight)
    assert torch.all(new_head(8, 3, 1, 0.02).bias == 0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 8, generator=g)
    settings = OmegaConf.create({"lr": 1e-2, "epochs": 3, "batch_size": 16})
    classes = OmegaConf.create({"regression": False, "labels": ["a", "b", "c"], "metrics": ["accuracy"]})
    score = OmegaConf.create({"regression": True, "labels": None, "metrics": ["pearson"]})
    assert train_head(lambda i: x[i], (x[:, 0] > 0).long(), 8, classes, 1, settings, 0.02).head.out_features == 3
    reg = train_head(lambda i: x[i], x[:, 0] * 2.0, 8, score, 1, settings, 0.02)
    assert reg.head.out_features == 1 and reg.status == "ok"
    bad = train_head(lambda i: x[i] * float("nan"), x[:, 0], 8, score, 1, settings, 0.02)
    assert bad.status == "diverged" and bad.steps == 0


def test_standardized_head_fits_small_offset_features_the_plain_head_cannot():
    """probe.standardize: features of small spread around a large offset and a score far from 0
    (as MiniLM's pooled features and STS-B's 0-5 scores): in 3 epochs at lr 1e-3 the plain head
    stays near its start, the standardised one fits; the statistics are the training set's."""
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(6000, 16, generator=g)            # 1,125 steps, as STS-B's 5,749 pairs give
    x = 3.0 + 0.05 * signal
    y = 2.5 + signal[:, 0] - 0.5 * signal[:, 1]
    task = OmegaConf.create({"regression": True, "labels": None, "metrics": ["pearson"]})
    settings = OmegaConf.create({"lr": 1e-3, "epochs": 3, "batch_size": 16})
    stats = standardizer(x, y, True)
    torch.testing.assert_close(stats["x_mean"], x.mean(0))
    assert float(stats["y_mean"]) == pytest.approx(float(y.mean()), abs=1e-5)
    plain = train_head(lambda i: x[i], y, 16, task, 1, settings, 0.02)
    std = train_head(lambda i: x[i], y, 16, task, 1, settings, 0.02, stats=stats)
    assert isinstance(std.head, Standardized)
    assert sorted(n for n, _ in std.head.named_parameters()) == ["linear.bias", "linear.weight"]   # statistics stay fixed
    assert torch.equal(std.head.x_mean, stats["x_mean"])
    (plain_scores, _, _), (std_scores, _, _) = (score(r.head, x, y.numpy(), task) for r in (plain, std))
    assert std_scores["pearson"] > 95 > plain_scores["pearson"]
    with torch.no_grad():
        mse = {k: float(((r.head(x).squeeze(-1) - y) ** 2).mean()) for k, r in (("plain", plain), ("std", std))}
    assert mse["std"] < 0.05 * mse["plain"]
    # a constant feature is left unscaled (no division by zero); classes keep their labels unscaled
    flat = standardizer(torch.ones(5, 2), torch.tensor([0, 1, 0, 1, 1]), False)
    assert torch.equal(flat["x_scale"], torch.ones(2)) and float(flat["y_scale"]) == 1.0 and float(flat["y_mean"]) == 0.0


def test_probe_id_hashes_what_changes_the_outcome_only(saved):
    results, _, record = saved
    source = probe_sources.Source(record["config"]["model"], saved_models.resolve(results, f"{EXP}/{record['run_id']}"))
    reference = probe_sources.Source(record["config"]["model"])
    task = OmegaConf.to_container(probe_run.load_task_config("mrpc"), resolve=True)

    def pid(*overrides, src=source, seed=1, precision="fp32", target=task):
        return probe_records.probe_id(src, target, seed, probe_config.load(None, ["targets=[mrpc]", *overrides]), precision)
    base = pid()
    assert base.startswith(f"{record['run_id']}.mrpc.h1.")
    assert pid("head_seeds=[1,9]", "targets=[mrpc,rte]", "reference=false", "shard=0/2", "sources=[a/b]") == base
    assert pid("standardize=false") == base and "standardize" not in probe_config.outcome(probe_config.load(None, ["targets=[x]"]))
    for changed in (pid("lr=0.01"), pid("epochs=1"), pid("batch_size=8"), pid("representation=mean"),
                    pid("max_length=64"), pid(seed=2), pid(src=reference), pid(precision="bf16"),
                    pid(target={**task, "max_train_samples": 10}), pid("standardize=true")):
        assert changed != base
    assert pid(src=reference).startswith("tiny_bert.pretrained.mrpc.h1.")


@pytest.mark.slow
def test_one_command_probes_any_saved_run(saved):
    """A named saved run, by probe.sources or by model.source=run: the same probes (same ids),
    records in the named experiment, linked to the source run; no reference unless asked."""
    results, glue, record = saved
    ref = f"{EXP}/{record['run_id']}"
    by_sources = ["probe.sources=[" + ref + "]", "experiment=named", "probe.targets=[stsb]", "probe.reference=false"]
    by_model = ["model.source=run", f"+model.run={ref}", "experiment=model_run", "probe.targets=[stsb]",
                "probe.reference=false"]
    assert probe_run.run(probe_args(results, glue, *by_sources)) == {"written": 2, "skipped": 0}
    assert probe_run.run(probe_args(results, glue, *by_model)) == {"written": 2, "skipped": 0}
    named = sorted(p.name for p in (results / "named" / "probes").glob("*.json"))
    assert named == sorted(p.name for p in (results / "model_run" / "probes").glob("*.json"))
    assert all(n.startswith(f"{record['run_id']}.stsb.h") for n in named) and len(named) == 2
    first = json.loads((results / "named" / "probes" / named[0]).read_text())
    assert first["source"]["ref"] == ref and first["method"] == "vanilla" and first["seed"] == 1


@pytest.mark.slow
def test_a_damaged_probe_record_is_not_counted_and_is_set_aside_and_probed_again(saved):
    """Probe records are checked as run records are (childtuning/integrity.py): an edited value
    breaks its checksum, a renamed file its name; the aggregator skips both with the reason, and
    the probe moves them to probes/corrupt/ (never deleted) and probes again."""
    from childtuning.report.probes import load_probes

    results, glue, record = saved
    args = probe_args(results, glue, f"probe.sources=[{EXP}/{record['run_id']}]", "experiment=damaged",
                      "probe.targets=[stsb]", "probe.reference=false")
    assert probe_run.run(args) == {"written": 2, "skipped": 0}
    folder = results / "damaged" / "probes"
    edited, renamed = sorted(folder.glob("*.json"))
    body = json.loads(edited.read_text())
    body["main_metric"]["value"] = 99.0
    edited.write_text(json.dumps(body))
    renamed.rename(folder / "someone_else.json")
    frame, skipped = load_probes("damaged", results)
    assert frame.empty and len(skipped) == 2
    assert any("checksum mismatch" in m for m in skipped) and any("is named someone_else.json" in m for m in skipped)
    assert probe_run.run(args) == {"written": 2, "skipped": 0}     # the edited one, and the one whose file is gone
    assert [p.name.split(".json")[0] for p in (folder / "corrupt").glob("*.json.*") if not p.name.endswith(".reason")] \
        == [edited.stem]
    assert json.loads(edited.read_text())["main_metric"]["value"] != 99.0


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_task_transfer_end_to_end_on_a_tiny_model(tmp_path, capsys):
    """The smoke experiment's source sweep (tiny_bert on RTE, saved models), its probes on MRPC and
    STS-B (synthetic) with the pretrained reference, the table; a rerun probes nothing again."""
    from helpers.glue import write_synthetic_glue

    glue = write_synthetic_glue(tmp_path / "glue", ("RTE", "MRPC", "STS-B"))
    results = tmp_path / "results"
    args = probe_args(results, glue)
    for job in sweep.experiment_jobs(args):
        train_mod.run(cfg_for(*job))
    counts = probe_run.run(args)
    # 4 saved sources + the pretrained reference, x 2 targets x 2 head seeds
    assert counts == {"written": 20, "skipped": 0}
    records = [json.loads(p.read_text()) for p in probe_files(results)]
    sources = {json.loads(p.read_text())["run_id"] for p in (results / EXP / "runs").glob("*.json")}
    assert {r["source"].get("run_id") for r in records} == sources | {None}
    assert all(r["status"] in ("ok", "degenerate") and r["main_metric"]["value"] is not None for r in records)
    stsb = next(r for r in records if r["task"] == "stsb")
    assert stsb["probe"]["head"] == "regression (MSE)" and stsb["history"][-1]["metrics"]["pearson"] == \
        stsb["main_metric"]["value"]
    assert next(r for r in records if r["task"] == "mrpc")["probe"]["head"] == "2 classes (cross-entropy)"
    assert probe_run.run(args) == {"written": 0, "skipped": 20}     # resumable: nothing twice

    s = summarize(EXP, results)
    assert not s.missing and not s.missing_sources and len(s.records) == 20
    assert [tuple(r) for r in s.rows] == [("tiny_bert", "pretrained"), ("tiny_bert", "vanilla"),
                                          ("tiny_bert", "child_tuning_d")]
    assert np.isfinite(s.cells["mean"]).all()

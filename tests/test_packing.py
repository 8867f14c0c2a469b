"""Packed batches are exact: same logits, loss and gradients as padded batches; no cross-example attention."""
import itertools
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForSequenceClassification

from childtuning import packing
from childtuning.data import Collator
from childtuning.errors import InputError

REPO = Path(__file__).resolve().parents[1]
ROW = 32                       # the packing row length, i.e. max_length of these tests
VOCAB = 120
# Lengths in a deliberate batch order: one example of exactly ROW tokens, two longer than ROW / 2,
# short ones that fill gaps, one of 2 tokens.
LENGTHS = [7, ROW, 3, 19, 12, 25, 5, 16, 2, 9]
# float32 tolerance: the two layouts multiply matrices of different shapes, so sums run in a
# different order. Measured on these models (torch 2.13 CPU, 1 thread): logits and loss bitwise
# equal, gradients at most 2.4e-7 apart (largest gradient entries ~3); MiniLM: logits <= 2.2e-8.
TOL = {"atol": 1e-5, "rtol": 1e-4}
ARCHS = ["bert", "roberta", "electra"]
PAD = {"bert": 0, "roberta": 1, "electra": 0}          # RoBERTa's real pad id is 1: positions start at 2


class Tokenizer:
    """What the collators read from a tokenizer."""
    padding_side = "right"
    pad_token_type_id = 0

    def __init__(self, pad_token_id):
        self.pad_token_id = pad_token_id


def tiny_model(arch, attention="sdpa", num_labels=3, seed=0):
    """The shipped tiny config (conf/model/tiny_<arch>.yaml), no dropout, weights large enough that
    logits are O(1) so differences are meaningful."""
    shipped = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / f"tiny_{arch}.yaml").config)
    config = AutoConfig.for_model(arch, vocab_size=VOCAB, pad_token_id=PAD[arch], num_labels=num_labels,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                  initializer_range=0.2, **shipped)
    if num_labels == 1:
        config.problem_type = "regression"
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation=attention).eval()


def features(arch, lengths=LENGTHS, num_labels=3, seed=0):
    """Unpadded features like data.tokenize makes; RoBERTa's carry no token type ids."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        f = {"input_ids": torch.randint(PAD[arch] + 2, VOCAB, (n,), generator=g).tolist()}
        if arch != "roberta":
            f["token_type_ids"] = [0] * (n // 2) + [1] * (n - n // 2)
        f["labels"] = (torch.randn((), generator=g).item() if num_labels == 1
                       else int(torch.randint(0, num_labels, (), generator=g)))
        out.append(f)
    return out


LAYOUTS = list(packing.LAYOUTS)        # rows, varlen, varlen_batched: every exactness test runs on each


def both_layouts(arch, feats, regression=False, layout="rows"):
    tok = Tokenizer(PAD[arch])
    return packing.PackedCollator(tok, regression, ROW, layout=layout)(feats), Collator(tok, regression)(feats)


def run(model, batch, inputs_embeds=None):
    """Loss, logits and every parameter's gradient (zeros where none flows) of one forward/backward."""
    model.zero_grad(set_to_none=True)
    out = packing.forward(model, batch, inputs_embeds)
    out.loss.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).clone() for n, p in model.named_parameters()}
    return out.loss.detach(), out.logits.detach(), grads


def max_differences(a, b):
    (la, xa, ga), (lb, xb, gb) = a, b
    return {"loss": (la - lb).abs().item(), "logits": (xa - xb).abs().max().item(),
            "grads": max((ga[n] - gb[n]).abs().max().item() for n in ga)}


def assert_same(a, b):
    (la, xa, ga), (lb, xb, gb) = a, b
    torch.testing.assert_close(la, lb, **TOL)
    torch.testing.assert_close(xa, xb, **TOL)
    assert ga.keys() == gb.keys()
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], **TOL, msg=lambda m, n=n: f"gradient of {n}: {m}")


# ---------------------------------------------------------------- layout
def test_collator_keeps_batch_order_and_packs_rows():
    feats = features("bert")
    packed, padded = both_layouts("bert", feats)
    assert packed["labels"].tolist() == [f["labels"] for f in feats]
    assert packing.unpack(packed) == feats                       # every token, type and label, in batch order
    ids, ex = packed["input_ids"].reshape(-1), packed["example_ids"].reshape(-1)
    for i, (f, start) in enumerate(zip(feats, packed["first_token_index"].tolist())):
        assert ids[start].item() == f["input_ids"][0] and ex[start].item() == i
        assert packed["token_positions"].reshape(-1)[start: start + len(f["input_ids"])].tolist() == list(range(len(f["input_ids"])))
    assert packed["input_ids"].shape[1] <= ROW
    # first-fit decreasing: 150 tokens in rows of 32 fit in 5 rows, the 32-token example alone in one
    assert packed["input_ids"].shape[0] == 5
    assert (packed["example_ids"] == 1).sum(dim=1).max().item() == ROW
    assert packing.token_counts(packed) == (sum(LENGTHS), 5 * packed["input_ids"].shape[1])
    assert packing.token_counts(padded) == (sum(LENGTHS), len(LENGTHS) * ROW)
    # every query attends to something (a row's tail to the tail): no softmax over only masked keys,
    # which some GPU kernels turn into NaN
    mask = packing.attention_mask(packed["example_ids"], "sdpa", torch.float32)
    assert mask.shape == (5, 1, packed["input_ids"].shape[1], packed["input_ids"].shape[1])
    assert mask.any(dim=-1).all()


# [17, 15, 16] in rows of 32: 2 rows x 32 = 64 positions; one example per row: 3 x 17 = 51, fewer.
# [30, 2, 2, 17, 15]: rows of 30 hold them in 3 rows (90 positions), rows of 32 too (96)
@pytest.mark.parametrize("lengths, rows, width", [([20, 20], 2, 20), ([ROW], 1, ROW), ([17, 15, 16], 3, 17), ([3, 4], 1, 7),
                                                 ([30, 2, 2, 17, 15], 3, 30)])
def test_rows_hold_long_examples_and_are_no_wider_than_needed(lengths, rows, width):
    packed = packing.pack([{"input_ids": [5] * n, "labels": 0} for n in lengths], ROW, pad_id=0)
    assert packed["input_ids"].shape == (rows, width)


def test_varlen_lays_the_batch_in_one_row_in_batch_order():
    feats = features("bert")
    flat, _ = both_layouts("bert", feats, layout="varlen")
    assert flat["input_ids"].shape == (1, sum(LENGTHS))                  # no row tails at all
    assert flat["cu_seq_lens"].tolist() == [0, *itertools.accumulate(LENGTHS)]
    assert flat["first_token_index"].tolist() == flat["cu_seq_lens"][:-1].tolist()
    assert packing.unpack(flat) == feats
    assert packing.token_counts(flat) == (sum(LENGTHS), sum(LENGTHS))
    # rounding the row up adds one tail segment, which attends only to itself
    rounded = packing.pack_flat(feats, ROW, 0, multiple_of=16)
    total = sum(LENGTHS)                                                  # 130
    assert rounded["input_ids"].shape == (1, 144) and rounded["cu_seq_lens"].tolist()[-2:] == [total, 144]
    assert (rounded["example_ids"][0, total:] == -1).all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_too_long_example_is_an_input_error(layout):
    with pytest.raises(InputError, match="truncation"):
        packing.LAYOUTS[layout]([{"input_ids": [5] * (ROW + 1), "labels": 0}], ROW, pad_id=0)


def test_unknown_layout_is_an_input_error():
    with pytest.raises(InputError, match="rows"):
        packing.PackedCollator(Tokenizer(0), False, ROW, layout="flat")


def test_varlen_batched_grid_lists_each_segments_positions_and_survives_take_examples():
    feats = features("bert", [5, 9, 3])
    batch = packing.pack_flat_batched(feats, 32, 0, multiple_of=8)         # 17 tokens + a tail of 7
    assert batch["cu_seq_lens"].tolist() == [0, 5, 14, 17, 24]
    grid = batch["segment_grid"]
    assert grid.shape == (4, 9)
    assert grid[0].tolist() == [0, 1, 2, 3, 4] + [-1] * 4 and grid[1].tolist() == list(range(5, 14))
    assert grid[3].tolist() == list(range(17, 24)) + [-1] * 2             # the tail attends to itself
    first_two = packing.take_examples(batch, 2)
    assert first_two["segment_grid"].tolist() == grid[:2].tolist() and first_two["input_ids"].shape[1] == 14
    model = tiny_model("bert")
    model.eval()
    with torch.no_grad():                                                   # same logits as the full batch's
        torch.testing.assert_close(packing.forward(model, first_two).logits, packing.forward(model, batch).logits[:2], **TOL)
    plan = packing.SegmentPlan.of(batch)
    assert plan.back.tolist() == [9 * s + i for s, n in enumerate([5, 9, 3, 7]) for i in range(n)]
    with pytest.raises(InputError, match="segment plan covers 24 positions, the row has 10"):
        packing.varlen_batched_attention(model, torch.zeros(1, 2, 10, 4), torch.zeros(1, 2, 10, 4),
                                         torch.zeros(1, 2, 10, 4), None, segments=plan)
    with pytest.raises(InputError, match="one-row varlen_batched"):
        packing.varlen_batched_attention(model, torch.zeros(1, 2, 24, 4), torch.zeros(1, 2, 24, 4),
                                         torch.zeros(1, 2, 24, 4), None, segments=grid)


def test_varlen_attention_is_the_models_only_during_forward():
    """The varlen function is looked up through the config only inside `forward`, also after an
    error; called on anything but a one-row batch without a mask it refuses."""
    model = tiny_model("bert")
    flat, padded = both_layouts("bert", features("bert"), layout="varlen")
    packing.forward(model, flat)
    assert model.config._attn_implementation == "sdpa"
    bad = dict(flat, cu_seq_lens=flat["cu_seq_lens"][:-1])               # segments miss the last example
    with pytest.raises(InputError, match="segments"):
        packing.forward(model, bad)
    assert model.config._attn_implementation == "sdpa"
    q = torch.zeros(2, 1, 4, 8)
    with pytest.raises(InputError, match="one-row"):
        packing.varlen_attention(model, q, q, q, None, segments=[0, 4])


def test_packable_by_architecture():
    assert all(packing.packable(tiny_model(a)) for a in ARCHS)
    xlnet = AutoConfig.for_model("xlnet", vocab_size=VOCAB, d_model=32, n_layer=1, n_head=2, d_inner=64)
    assert not packing.packable(xlnet)
    model = AutoModelForSequenceClassification.from_config(xlnet)
    packed, _ = both_layouts("bert", features("bert"))
    with pytest.raises(InputError, match="dynamic padding"):
        packing.forward(model, packed)


# ---------------------------------------------------------------- exactness
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_packed_equals_padded_logits_loss_gradients(arch, attention, layout):
    model = tiny_model(arch, attention)
    packed, padded = both_layouts(arch, features(arch), layout=layout)
    assert "attention_mask" in padded and packing.is_packed(packed)
    a, b = run(model, packed), run(model, padded)
    assert a[1].shape == (len(LENGTHS), 3)
    assert a[1].abs().max() > 0.1                     # logits large enough for the tolerance to mean something
    assert_same(a, b)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_session.py runs it)")
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cuda_packed_equals_padded(layout):
    """The same check on a GPU (its SDPA kernels, masks and gathers), float32, then bf16 autocast
    with a looser bound (bf16 keeps 8 bits of mantissa)."""
    model = tiny_model("bert").cuda()
    packed, padded = (({k: v.cuda() for k, v in b.items()}) for b in both_layouts("bert", features("bert"), layout=layout))
    assert_same(run(model, packed), run(model, padded))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        a, b = packing.forward(model, packed).logits.float(), packing.forward(model, padded).logits.float()
    torch.testing.assert_close(a, b, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_regression_packed_equals_padded(arch, layout):
    model = tiny_model(arch, num_labels=1)
    packed, padded = both_layouts(arch, features(arch, num_labels=1), regression=True, layout=layout)
    assert packed["labels"].dtype == torch.float32
    a, b = run(model, packed), run(model, padded)
    assert a[1].shape == (len(LENGTHS), 1)
    assert_same(a, b)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_perturbed_input_embeddings_packed_equals_padded(arch, layout):
    """R3F's path: the same per-token noise on both layouts' embeddings gives the same result
    (RoBERTa: explicit positions on the packed side, inferred from inputs_embeds on the padded side)."""
    model = tiny_model(arch)
    feats = features(arch)
    packed, padded = both_layouts(arch, feats, layout=layout)
    e_packed, e_padded = packing.input_embeddings(model, packed), packing.input_embeddings(model, padded)
    g = torch.Generator().manual_seed(3)
    noise_packed, noise_padded = torch.zeros_like(e_packed), torch.zeros_like(e_padded)
    flat = noise_packed.view(-1, e_packed.shape[-1])
    for i, (f, start) in enumerate(zip(feats, packed["first_token_index"].tolist())):
        noise = torch.randn(len(f["input_ids"]), e_packed.shape[-1], generator=g)
        flat[start: start + len(noise)] = noise
        noise_padded[i, :len(noise)] = noise
    clean = run(model, packed)
    a, b = run(model, packed, e_packed + noise_packed), run(model, padded, e_padded + noise_padded)
    assert_same(a, b)
    assert (a[1] - clean[1]).abs().max() > 1e-3        # the noise did reach the logits


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_example_attends_across_a_boundary(arch, attention, layout):
    model = tiny_model(arch, attention)
    feats = features(arch)
    packed, _ = both_layouts(arch, feats, layout=layout)
    row_of = packed["first_token_index"] // packed["input_ids"].shape[1]
    # perturb example 0, which shares its row with others (checked), and nothing else
    neighbours = [i for i in range(len(feats)) if i != 0 and row_of[i] == row_of[0]]
    assert neighbours
    changed = [dict(f) for f in feats]
    changed[0]["input_ids"] = [(t + 7) % (VOCAB - 2) + 2 for t in feats[0]["input_ids"]]
    again = packing.PackedCollator(Tokenizer(PAD[arch]), False, ROW, layout=layout)(changed)
    assert torch.equal(again["example_ids"], packed["example_ids"])        # same layout, other tokens
    with torch.no_grad():
        before, after = packing.forward(model, packed).logits, packing.forward(model, again).logits
    assert (before[0] - after[0]).abs().max() > 1e-3
    torch.testing.assert_close(after[1:], before[1:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_split_and_take_examples(arch, layout):
    """Per-example pieces (per-example Fisher) and a batch's first n examples (Fisher max_samples)
    give the examples' logits from the full packed batch."""
    model = tiny_model(arch)
    packed, padded = both_layouts(arch, features(arch), layout=layout)
    with torch.no_grad():
        full = packing.forward(model, packed).logits
        pieces = [packing.forward(model, p) for p in packing.split_examples(packed)]
        padded_pieces = packing.split_examples(padded)
        head = packing.forward(model, packing.take_examples(packed, 4))
    assert len(pieces) == len(padded_pieces) == len(LENGTHS)
    assert all(p["input_ids"].shape == (1, padded["input_ids"].shape[1]) for p in padded_pieces)
    torch.testing.assert_close(torch.cat([p.logits for p in pieces]), full, **TOL)
    torch.testing.assert_close(torch.stack([p.loss for p in pieces]).mean(), packing.forward(model, packed).loss, **TOL)
    torch.testing.assert_close(head.logits, full[:4], **TOL)
    assert head.loss is not None and packing.num_examples(packing.take_examples(packed, 4)) == 4


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_bert", "tiny_roberta", "tiny_electra"])
def test_a_short_run_packed_matches_the_padded_run(tmp_path, synthetic_glue, model):
    """The runner end to end, dropout off (the one thing the layout changes besides rounding):
    packed and padded runs of Child-Tuning_D (Fisher pass, masks, training, dev evaluation) give
    the same metrics; training losses agree to float32 rounding; only the packed id says `layout`."""
    import childtuning.train as train_mod
    from childtuning.record import run_id
    from helpers.configs import compose_cfg

    def cfg(packing, layout="varlen"):
        return compose_cfg(f"model={model}", "task=mrpc", "task.max_train_samples=24", "trainer.epochs=2",
                           "trainer.batch_size=8", "method=child_tuning_d", "impl.progress_bar=false",
                           "+model.config.hidden_dropout_prob=0.0", "+model.config.attention_probs_dropout_prob=0.0",
                           f"impl.packing={packing}", f"impl.packed_layout={layout}", f"paths.results={tmp_path}",
                           f"paths.glue_dir={synthetic_glue}", f"paths.cache={tmp_path}/cache")
    padded = train_mod.run(cfg("false"))
    ids = {run_id(cfg("false"))}
    for layout in LAYOUTS:
        packed = train_mod.run(cfg("true", layout))
        ids.add(run_id(cfg("true", layout)))
        assert packed["config"]["impl"]["packed_layout"] == layout
        assert [h["metrics"] for h in packed["history"]] == [h["metrics"] for h in padded["history"]]
        for a, b in zip(packed["history"], padded["history"]):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, abs=1e-6)
        # the Fisher scores agree to rounding, so the child networks match up to weights tied at the threshold
        assert packed["method_stats"]["kept_params"] == pytest.approx(padded["method_stats"]["kept_params"], rel=1e-3)
    assert len(ids) == 1 + len(LAYOUTS)                                  # padded and each layout: runs of their own


def test_rows_layout_keeps_the_run_ids_made_before_varlen(tmp_path):
    """A committed packed record (domain_transfer_cpu, made with rows before varlen existed) is still
    found by its id when the experiment pins impl.packed_layout=rows."""
    from childtuning.config import compose, validate
    from childtuning.record import run_id

    committed = REPO / "results" / "domain_transfer_cpu" / "runs" / "minilm.mnli_m_dev_split.vanilla.s1.df889f0ee1.json"
    if not committed.exists():
        pytest.skip(f"{committed} is not in this checkout")
    cfg = validate(compose("exp=domain_transfer_cpu", "task=mnli_m_dev_split", "method=vanilla", "seed=1"))
    assert cfg.impl.packed_layout == "rows" and run_id(cfg) == committed.stem
    varlen = validate(compose("exp=domain_transfer_cpu", "task=mnli_m_dev_split", "method=vanilla", "seed=1",
                              "impl.packed_layout=varlen"))
    assert run_id(varlen) != committed.stem


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rounding_the_width_keeps_the_logits(layout):
    """pad_to_multiple_of only adds pad positions nothing real attends to: same logits, wider rows."""
    model = tiny_model("bert")
    feats = features("bert", [5, 9, 13, 3])
    pack = packing.LAYOUTS[layout]
    plain, rounded = pack(feats, 32, 0), pack(feats, 32, 0, multiple_of=8)
    assert rounded["input_ids"].shape[1] % 8 == 0 and rounded["input_ids"].shape[1] > plain["input_ids"].shape[1]
    padded, padded8 = Collator(Tokenizer(0), False)(feats), Collator(Tokenizer(0), False, multiple_of=8)(feats)
    assert padded8["input_ids"].shape[1] == 16 and padded["input_ids"].shape[1] == 13
    with torch.no_grad():
        reference = packing.forward(model, plain).logits
        for batch in (rounded, padded8):
            torch.testing.assert_close(packing.forward(model, batch).logits, reference, **TOL)

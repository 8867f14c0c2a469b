"""Task files and readers: every transfer set read from a fixture in its real format (JSON lines,
coded labels, SemEval columns, CRLF), the header check, per-split sources (local or hub), the bad
inputs, and smoke checks of the real sets' sizes."""
import collections

import pytest
from omegaconf import OmegaConf

from childtuning import data
from childtuning.config import load_task_config
from childtuning.errors import InputError
from helpers.glue import write_synthetic_glue
from helpers.nli import write_transfer_sets
from helpers.paths import REAL_GLUE, has_real_glue, requires_real_glue


@pytest.fixture(scope="module")
def transfer_glue(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer_glue")
    return root, write_transfer_sets(root)


def task(name, **overrides):
    cfg = load_task_config(name)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def names(cfg, split):
    return [cfg.labels[i] for i in split.labels]


# ------------------------------------------------------------ each reader on its real format
@pytest.mark.parametrize("name, splits", [("mnli", ["dev"]), ("snli", ["dev", "test"]), ("sick", ["train", "dev", "test"]),
                                          ("scitail", ["train", "dev", "test"]), ("sst2", ["train", "dev"]),
                                          ("qqp", ["train", "dev"])])
def test_each_set_reads_back_what_was_written(transfer_glue, name, splits):
    root, written = transfer_glue
    cfg = task(name)
    got = data.load_task(cfg, str(root), splits)
    for split in splits:
        rows = written[name][split]
        assert got[split].source.startswith(str(root))
        assert [t for t in got[split].texts] == [tuple(r[:-1]) for r in rows], (name, split)
        assert names(cfg, got[split]) == [r[-1] for r in rows], (name, split)
        assert not any("\r" in t for texts in got[split].texts for t in texts)     # CRLF files leave no \r behind


def test_sst2_takes_glue_header_and_the_shared_copys(tmp_path):
    from helpers.nli import write_sst2
    for header in ("text\tlabel", "sentence\tlabel"):
        rows = write_sst2(tmp_path / header[:4], header=header)
        got = data.load_task(task("sst2"), str(tmp_path / header[:4]))
        assert got["dev"].texts == [(s,) for s, _ in rows["dev"]]


def test_glue_tasks_read_as_before_with_their_headers_checked(tmp_path):
    """MRPC (byte-order mark, GLUE's own column names), STS-B (`score`), RTE and CoLA (no header)."""
    glue = write_synthetic_glue(tmp_path, tasks=("RTE", "MRPC", "CoLA", "STS-B"), n_train=12, n_dev=6)
    for name in ("rte", "mrpc", "cola", "stsb"):
        got = data.load_task(task(name), str(glue))
        assert (len(got["train"]), len(got["dev"])) == (12, 6)
    # a CRLF copy of CoLA (text in the last column) reads the same texts, without a trailing \r
    dev = glue / "CoLA" / "dev.tsv"
    lf = data.load_task(task("cola"), str(glue))["dev"]
    dev.write_bytes(dev.read_bytes().replace(b"\n", b"\r\n"))
    assert data.load_task(task("cola"), str(glue))["dev"].texts == lf.texts


# ------------------------------------------------------------ the header check
def test_text_columns_listed_in_the_wrong_order_are_an_error(transfer_glue):
    root, _ = transfer_glue
    swapped = task("snli", **{"local.columns": ["hypothesis", "premise", "label"]})
    with pytest.raises(InputError, match=r"SNLI/dev.tsv: header \['premise', 'hypothesis', 'label'\] does not match "
                                         r"task snli's local.columns \['hypothesis', 'premise', 'label'\]: column 1 .*"
                                         r"List local.columns in the file's order.*local.rename"):
        data.load_task(swapped, str(root), ["dev"])


def test_a_header_naming_other_columns_is_an_error(transfer_glue):
    root, _ = transfer_glue
    no_rename = task("sick", **{"local.rename": {}})     # the file says entailment_judgment, the task `label`
    with pytest.raises(InputError, match=r"SICK/dev.tsv: header .*'entailment_judgment'.* column 5 is "
                                         r"'entailment_judgment' in the file but 'label' in local.columns"):
        data.load_task(no_rename, str(root), ["dev"])
    with pytest.raises(InputError, match=r"the file has 5 columns, local.columns 6"):
        data.load_task(task("sick", **{"local.columns": ["pair_ID", "sentence_A", "sentence_B", "relatedness_score",
                                                         "label", "extra"]}), str(root), ["dev"])


# ------------------------------------------------------------ bad rows
def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_unknown_label_code_names_file_line_and_fix(tmp_path):
    write(tmp_path / "SNLI" / "dev.tsv", "premise\thypothesis\tlabel\na b\tc\t0\nd e\tf\t3\n")
    with pytest.raises(InputError, match=r"SNLI/dev.tsv:3: label '3' is not one of task snli's label codes "
                                         r"\['0', '1', '2'\].*label_codes.*drop_labels"):
        data.load_task(task("snli"), str(tmp_path), ["dev"])


def test_drop_labels_skips_rows_and_counts_them(tmp_path):
    write(tmp_path / "SNLI" / "dev.tsv", "premise\thypothesis\tlabel\na b\tc\t0\nd e\tf\t-\ng\th\t2\n")
    got = data.load_task(task("snli", **{"local.drop_labels": ["-"]}), str(tmp_path), ["dev"])["dev"]
    assert (len(got), got.dropped, got.labels) == (2, 1, [0, 2])


@pytest.mark.parametrize("line, message", [
    ('{"premise": "a", "hypothesis": "b", "label": "entailment"', r"dev_matched.jsonl:2: not a JSON object"),
    ('{"premise": "a", "label": "entailment"}', r"dev_matched.jsonl:2: no field \['hypothesis'\] .*local.rename"),
    ('{"premise": "a", "hypothesis": "b", "label": "maybe"}', r"dev_matched.jsonl:2: label 'maybe' is not one of "
                                                                r"task mnli's labels"),
    ('["a", "b", "entailment"]', r"dev_matched.jsonl:2: a JSON list, expected an object"),
    ('{"premise": "a", "hypothesis": 3, "label": "neutral"}', r"dev_matched.jsonl:2: field 'hypothesis' is 3, not a text"),
])
def test_bad_json_lines(tmp_path, line, message):
    write(tmp_path / "MNLI" / "dev_matched.jsonl", '{"premise": "x", "hypothesis": "y", "label": "neutral"}\n' + line + "\n")
    with pytest.raises(InputError, match=message):
        data.load_task(task("mnli"), str(tmp_path), ["dev"])


def test_a_split_the_task_does_not_declare(transfer_glue):
    with pytest.raises(InputError, match=r"task mnli has no split 'test'; it declares \['dev', 'dev_mismatched', 'train'\]"):
        data.load_task(task("mnli"), str(transfer_glue[0]), ["test"])


# ------------------------------------------------------------ task file checks (before any data is read)
@pytest.mark.parametrize("overrides, message", [
    ({"local.label_codes": {"0": "entailment", "1": "maybe"}}, r"local.label_codes maps to \['maybe'\]"),
    ({"hub.label_codes": {"x": "yes"}}, r"hub.label_codes maps to \['yes'\]"),
    ({"label_maps": {"default": {"entailment": "duplicate"}}}, r"label_maps.default maps to \['duplicate'\]"),
    ({"local.rename": {"gold": "gold_label"}}, r"local.rename maps to \['gold_label'\]"),
    ({"local.files": {"dev": "dev.tsv"}, "hub.splits": {"dev": "validation"}}, r"no train split; declare its file"),
])
def test_task_file_mistakes_are_caught_at_validation(overrides, message):
    from childtuning.config import check_task
    cfg = task("snli")
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=False)
    with pytest.raises(InputError, match=message):
        check_task(cfg)


@pytest.mark.slow
def test_every_task_file_loads_and_validates_as_a_run():
    from childtuning.config import validate
    from helpers.configs import compose_cfg
    from helpers.paths import REPO
    for path in sorted((REPO / "conf" / "task").glob("*.yaml")):
        assert load_task_config(path.stem).name == path.stem
        assert validate(compose_cfg("model=tiny_bert", f"task={path.stem}")).task.name == path.stem


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(InputError, match=r"unknown task 'multinli'.*known tasks: \[.*'mnli'.*'scitail'"):
        load_task_config("multinli")


# ------------------------------------------------------------ local or hub, per split
class FakeHub:
    """Stands in for datasets.load_dataset: serves in-memory tables, or fails as offline."""

    def __init__(self, tables=None):
        self.tables, self.calls = tables or {}, []

    def __call__(self, path, name=None, split=None):
        import datasets
        self.calls.append((path, name, split))
        if (path, name, split) not in self.tables:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub")
        return datasets.Dataset.from_dict(self.tables[(path, name, split)])


@pytest.fixture
def hub(monkeypatch):
    import datasets
    fake = FakeHub()
    monkeypatch.setattr(datasets, "load_dataset", fake)
    return fake


def test_mnli_dev_is_local_and_train_and_mismatched_come_from_the_hub(transfer_glue, hub):
    hub.tables[("nyu-mll/glue", "mnli", "train")] = {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0]}
    hub.tables[("nyu-mll/glue", "mnli", "validation_mismatched")] = {"premise": ["m"], "hypothesis": ["n"], "label": [1]}
    got = data.load_task(task("mnli"), str(transfer_glue[0]), ["train", "dev", "dev_mismatched"])
    assert got["dev"].source.endswith("MNLI/dev_matched.jsonl")
    assert got["train"].source == "hub:nyu-mll/glue/mnli:train" and got["train"].labels == [2, 0]
    assert got["dev_mismatched"].source == "hub:nyu-mll/glue/mnli:validation_mismatched"
    assert [c[2] for c in hub.calls] == ["train", "validation_mismatched"]


def test_hub_codes_drops_and_column_names(hub):
    hub.tables[("stanfordnlp/snli", None, "validation")] = {
        "premise": ["a", "b", "c"], "hypothesis": ["d", "e", "f"], "label": [0, -1, 2]}
    got = data.load_task(task("snli", **{"local.folder": "NoSuchFolder"}), None, ["dev"])["dev"]
    assert (got.texts, got.labels, got.dropped) == ([("a", "d"), ("c", "f")], [0, 2], 1)   # no-gold pair dropped
    hub.tables[("allenai/scitail", "snli_format", "validation")] = {
        "sentence1": ["a", "b"], "sentence2": ["c", "d"], "gold_label": ["neutral", "entailment"]}
    got = data.load_task(task("scitail", **{"local.folder": "NoSuchFolder"}), None, ["dev"])["dev"]
    assert got.labels == [1, 0] and got.texts == [("a", "c"), ("b", "d")]       # label names, by name
    hub.tables[("nyu-mll/glue", "qqp", "validation")] = {"q1": ["a"], "q2": ["b"], "label": [1]}
    with pytest.raises(InputError, match=r"has no column \['question1', 'question2'\].*hub.text_fields"):
        data.load_task(task("qqp", **{"local.folder": "NoSuchFolder"}), None, ["dev"])


def test_offline_hub_only_split_fails_with_the_usual_message(transfer_glue, hub):
    with pytest.raises(InputError, match=r"task mnli: the train split is declared on the hub only .* the hub dataset "
                                         r"nyu-mll/glue/mnli \(split train\) could not be loaded \(ConnectionError.*"
                                         r"reachable"):
        data.load_task(task("mnli"), str(transfer_glue[0]), ["train"])


def test_qqp_without_a_local_copy(tmp_path, hub):
    # no glue_dir configured and no QQP folder anywhere: the hub (offline here), saying where it looked
    with pytest.raises(InputError, match=r"task qqp: the dev split has no local copy \(looked for QQP_absent_here/ in .*\) and "
                                         r"the hub dataset nyu-mll/glue/qqp .*GLUE_DIR.*QQP_absent_here/dev.tsv"):
        data.load_task(task("qqp", **{"local.folder": "QQP_absent_here"}), None, ["dev"])
    # an explicit glue_dir without QQP is an error, not a silent trip to the hub
    (tmp_path / "glue").mkdir()
    with pytest.raises(InputError, match=r"QQP does not exist under paths.glue_dir"):
        data.load_task(task("qqp"), str(tmp_path / "glue"), ["dev"])
    assert [c for c in hub.calls if c[1] == "qqp"] == [("nyu-mll/glue", "qqp", "validation")]


# ------------------------------------------------------------ real data: sizes as the README states
REAL_SIZES = {  # ../shared/data/glue/README.md, "Layout and row counts"
    "cola": {"train": 8551, "dev": 1043}, "rte": {"train": 2490, "dev": 277}, "mrpc": {"train": 3668, "dev": 408},
    "stsb": {"train": 5749, "dev": 1500}, "sst2": {"train": 67349, "dev": 872}, "mnli": {"dev": 9815},
    "snli": {"dev": 9842, "test": 9824}, "sick": {"train": 4500, "dev": 500, "test": 4927},
    "scitail": {"train": 23596, "dev": 1304, "test": 2126},
}
FOLDERS = {"cola": "CoLA", "rte": "RTE", "mrpc": "MRPC", "stsb": "STS-B", "sst2": "SST-2", "mnli": "MNLI",
           "snli": "SNLI", "sick": "SICK", "scitail": "SciTail"}


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.skipif(
    not has_real_glue(FOLDERS[n]), reason=f"no real {FOLDERS[n]} under {REAL_GLUE} (set GLUE_DIR)")) for n in sorted(REAL_SIZES)])
def test_real_set_sizes(name):
    got = data.load_task(task(name), str(REAL_GLUE), list(REAL_SIZES[name]))
    assert {s: len(v) for s, v in got.items()} == REAL_SIZES[name]


@requires_real_glue("SciTail")
def test_real_scitail_train_has_the_official_label_counts():
    """The 499 rows labelled with words read as the same labels as the coded rows: SciTail's
    published train distribution (8,602 entails, 14,994 neutral)."""
    cfg = task("scitail")
    train = data.load_task(cfg, str(REAL_GLUE), ["train"])["train"]
    assert collections.Counter(names(cfg, train)) == {"entailment": 8602, "neutral": 14994}


@requires_real_glue("MNLI", "SNLI")
def test_real_substitutes():
    mnli = data.load_task(task("mnli_m_dev_split"), str(REAL_GLUE))
    assert (len(mnli["train"]), len(mnli["dev"])) == (5000, 4815)
    snli = data.load_task(task("snli_test_split"), str(REAL_GLUE))
    assert (len(snli["train"]), len(snli["dev"])) == (9824, 9842)      # 5,000 of test once subsampled

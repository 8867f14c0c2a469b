"""BERT (bert-large-cased, all-MiniLM-L6-v2, tiny_bert)."""
from . import Family, Packed, Reading, register


def head(model, first):
    # BertForSequenceClassification: pooler (dense + tanh on token 0), dropout, classifier.
    return model.classifier(model.dropout(model.bert.pooler(first)))


register(Family(
    model_type="bert", encoder="bert",
    reading=Reading("first", pooler=True),       # classifier(dropout(pooler_output))
    packed=Packed(head, position_offset=lambda config: 0),
    padding_side="right",
    layer_pattern=r"(?:^|\.)encoder\.layer\.(\d+)\.",
))

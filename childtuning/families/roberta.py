"""RoBERTa (roberta-large, tiny_roberta)."""
from . import Family, Packed, Reading, register


def head(model, first):
    # RobertaClassificationHead reads features[:, 0] itself: dense, tanh, out_proj.
    return model.classifier(first)


register(Family(
    model_type="roberta", encoder="roberta",
    reading=Reading("first", pooler=False),
    # RobertaEmbeddings.create_position_ids_from_input_ids: positions start at padding_idx + 1.
    packed=Packed(head, position_offset=lambda config: config.pad_token_id + 1),
    padding_side="right",
    layer_pattern=r"(?:^|\.)encoder\.layer\.(\d+)\.",
))

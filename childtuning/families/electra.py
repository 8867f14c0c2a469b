"""ELECTRA (google/electra-large-discriminator, tiny_electra)."""
from . import Family, Packed, Reading, register


def head(model, first):
    # ElectraClassificationHead reads features[:, 0] itself: dense, gelu, out_proj.
    return model.classifier(first)


register(Family(
    model_type="electra", encoder="electra",
    reading=Reading("first", pooler=False),
    packed=Packed(head, position_offset=lambda config: 0),
    padding_side="right",
    layer_pattern=r"(?:^|\.)encoder\.layer\.(\d+)\.",
))

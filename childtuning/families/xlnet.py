"""XLNet (xlnet-large-cased, tiny_xlnet): pads on the left, reads its last token."""
from . import Family, Reading, register

register(Family(
    model_type="xlnet", encoder="transformer",
    reading=Reading("last", pooler=False),       # SequenceSummary(summary_type="last") on the <cls> at the end
    # Relative attention and the two-stream layout: no packed batches, dynamic padding always.
    packed=None,
    padding_side="left",
    layer_pattern=r"(?:^|\.)transformer\.layer\.(\d+)\.",
))

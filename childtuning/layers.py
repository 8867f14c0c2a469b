"""Which layer a parameter belongs to, by its name: how records and reports group weights by layer."""


def layer_of(name: str) -> str:
    """Group a parameter name by layer for statistics: 'bert.encoder.layer.3.x.weight' -> 'layer.3'."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part in ("layer", "layers") and parts[i + 1].isdigit():
            return f"layer.{parts[i + 1]}"
    return parts[0] if len(parts) < 3 else ".".join(parts[:2])

"""table.md's account of a tuning protocol: which values were chosen, by which rule, on which seeds."""
from __future__ import annotations

from ..tuning import RULE_TEXT
from .spec import load_spec
from .text import md_table


def protocol_lines(s) -> list[str]:
    """The "Tuning protocol" section of an experiment whose file declares `protocol:`; the values
    are those the table's own records ran with (each record's resolved config)."""
    spec = s.spec
    if not spec.protocol:
        return []
    proto = spec.protocol
    owner = proto.get("selection_from", spec.experiment)
    search_seeds = load_spec(proto["search"]).expected["seed"]
    reported = spec.expected.get("seed", [])
    keys = proto["select"]
    whose = "this experiment's" if owner == spec.experiment else f"experiment `{owner}`'s"
    out = ["", "## Tuning protocol", "",
           f"{', '.join(f'`{k}`' for k in keys)} chosen by {whose} tuning protocol (experiments/{owner}.yaml, "
           f"`protocol:`), separately for each {' × '.join(proto['per'])}: rule `{proto['rule']}`: "
           f"{RULE_TEXT[proto['rule']]}. Search stage: experiment `{proto['search']}`, seeds "
           f"{', '.join(map(str, search_seeds))}; this table reports seeds {', '.join(map(str, reported))}, so the values "
           f"were selected on other seeds than the ones reported. `python -m childtuning.protocol {owner}` applied the "
           f"rule to the search's records and wrote {owner}/selection.json (every candidate's score); the runs read "
           "their values from it. Values below: as this table's runs used them.", ""]
    for axis, mapping in (proto.get("stand_in") or {}).items():
        out[-1:-1] = [f"Stand-ins declared before the runs (`protocol.stand_in`), for {axis} values the search did "
                      "not cover: " + "; ".join(f"`{k}` takes the choice for `{v}`" for k, v in mapping.items())
                      + ".", ""]
    rows = []
    for row in s.rows:
        match = s.records
        for axis, value in s.named(row).items():
            match = match[match[axis] == value]
        rows.append(list(row) + [", ".join(sorted(set(map(str, match[k])))) or "?" for k in keys])
    return out + md_table(list(spec.rows) + keys, rows)

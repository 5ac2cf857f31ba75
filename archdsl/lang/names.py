"""Names a label may not take, because the lowered torch module uses them itself.

Every label becomes an attribute of a torch module (`layer1.0.conv1` is
`model.layer1[0].conv1`), so a label that is already an attribute of `torch.nn.Module`
or of the lowered network (`torch.fx.GraphModule`, or `AuxiliaryNetwork` for networks
with auxiliary heads) would replace a method or a flag of torch's (`forward`,
`training`, `to`). Such labels are refused with E0219; everything else lowers, Python
keywords included (`class`, `in`), under exactly the name written.

Names beginning with `_` are refused as a whole: torch keeps its private state under
them and adds new ones between releases. The public names are listed here, so that
checking a spec does not import torch; a test compares the list with torch's own.
"""
from __future__ import annotations

# Public attributes of torch.nn.Module, torch.fx.GraphModule and archdsl's AuxiliaryNetwork.
RESERVED = frozenset("""
    T_destination add_module add_submodule apply bfloat16 buffers call_super_init children
    code compile cpu cuda delete_all_unused_submodules delete_submodule double dump_patches
    eval eval_module extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule graph half ipu load_state_dict meta modules mtia named_buffers
    named_children named_modules named_parameters output_names parameters print_readable
    recompile register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook
    requires_grad_ set_extra_state set_submodule shape_env share_memory state_dict to
    to_empty to_folder train train_module training type xpu zero_grad
""".split())


def is_reserved(label: str) -> bool:
    """True when `label` cannot name a torch submodule.

    >>> is_reserved("forward"), is_reserved("_cache"), is_reserved("class"), is_reserved("fc")
    (True, True, False, False)
    """
    return label.startswith("_") or label in RESERVED


def reserved_help(label: str) -> str:
    other = label.lstrip("_") or "layer" if label.startswith("_") else f"{label}_"
    return (f"rename it, e.g. `{other}`; labels may not begin with `_` nor be an attribute "
            "of a torch module (`forward`, `training`, `to`, `eval`, ...: docs/errors.md "
            "lists them all)")

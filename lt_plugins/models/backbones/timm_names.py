"""An unknown timm model name is an error that lists the names the user probably meant."""
import difflib
from typing import List

TIMM_BACKBONES = ('TIMMBackbone', 'TimmSplitBackbone')


def close_timm_names(model_name: str, limit: int = 8) -> List[str]:
    """Registered timm names close to ``model_name``: the ones containing it (``timm``'s
    own wildcard filter) first, then ``difflib`` near-misses (typos, wrong separators)."""
    import timm
    names = timm.list_models()
    arch = model_name.split('.', 1)[0]
    contains = timm.list_models(f'*{arch}*') if arch else []
    close = difflib.get_close_matches(arch, names, n=limit, cutoff=0.6)
    out: List[str] = []
    for name in close + contains:
        if name not in out:
            out.append(name)
    return out[:limit]


def check_timm_model_name(model_name: str) -> None:
    """Raise a ValueError naming close matches when timm does not know ``model_name``.

    Names with a pretrained tag (``resnet18.a1_in1k``) are checked on their architecture
    part; Hugging Face hub / local-dir sources (``hf-hub:...``) are left to timm.
    """
    import timm
    if not isinstance(model_name, str):
        raise TypeError(f'model.backbone.model_name must be a timm model name (str), got '
                        f'{type(model_name).__name__}.')
    if ':' in model_name or timm.is_model(model_name):
        return
    matches = close_timm_names(model_name)
    hint = (f' Did you mean one of: {", ".join(matches)}?' if matches else
            " No registered name is close; list them with timm.list_models('*part*').")
    raise ValueError(f"model.backbone.model_name='{model_name}' is not a timm model "
                     f'(timm {timm.__version__}).{hint}')

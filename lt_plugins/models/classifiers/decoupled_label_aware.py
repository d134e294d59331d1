"""Decoupled second stage (cRT / LWS) for models whose neck sits inside the backbone (AFA)."""
from mmpretrain.registry import MODELS

from .decoupled import DecoupledClassifier
from .label_aware import LabelAwareClassifier


@MODELS.register_module()
class DecoupledLabelAwareClassifier(LabelAwareClassifier, DecoupledClassifier):
    """:class:`DecoupledClassifier` (frozen representation, re-trained classifier) with the
    call protocol of :class:`LabelAwareClassifier` (trunk -> neck -> tail).

    The stage after AFA + LBLS (cRT, Wang et al. Sec. IV-B: the classifier re-trained for 10
    epochs with class-balanced sampling): backbone (trunk and last stage) and ``AFANeck`` are
    frozen and in eval mode, so the neck only produces the enhanced features ``X_enh`` (no
    generation, Eq. 6) and the tail / BatchNorm statistics of stage 1 are used. The
    frozen parts run without an autograd graph. Loading the stage-1 checkpoint skips its
    ``head.*`` when ``reinit_head=True``, as in ``DecoupledClassifier``.

    Args:
        frozen (Sequence[str]): parts to freeze. Defaults to ``('backbone', 'neck')``.
        reinit_head (bool): start the head from scratch (cRT). Defaults to True.
        **kwargs: ``ImageClassifier`` arguments.
    """

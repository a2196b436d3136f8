"""TS-CAM (Gao et al. 2021): token semantic coupled attention maps for timm vision transformers."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_floating, check_int, check_ndim
from wsolkit._deprecation import warn_deprecated
from wsolkit.method import WSOLMethod
from wsolkit.output import WSOLOutput

__all__ = ["class_token_attention", "TSCAM", "TSCAM_DEFAULT_BACKBONE", "create_tscam"]


def _check_vit(vit: nn.Module) -> None:
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(vit, VisionTransformer):
        raise WSOLTypeError(
            f"`vit` must be a timm VisionTransformer (ViT / DeiT), got {type(vit).__name__}"
        )
    if getattr(vit, "cls_token", None) is None:
        raise WSOLValueError("`vit` has no class token (class_token=False); TS-CAM needs the class-token attention")
    for i, blk in enumerate(vit.blocks):
        attn = getattr(blk, "attn", None)
        if attn is None or not isinstance(getattr(attn, "qkv", None), nn.Linear):
            raise WSOLTypeError(f"`vit.blocks[{i}].attn` has no `qkv` linear projection; unsupported attention type")


def class_token_attention(attn: nn.Module, qkv_out: torch.Tensor) -> torch.Tensor:
    """Attention of the class token (query 0) over all tokens, recomputed from the ``qkv`` projection output.

    ``softmax(q_0 k^T · scale)`` per head, with the module's ``q_norm`` / ``k_norm`` applied as in timm's
    ``Attention.forward``; the attention module itself (fused or not) is left untouched.

    Args:
        attn: a timm ``Attention`` module (``num_heads``, ``head_dim``, ``scale``, ``q_norm``, ``k_norm``).
        qkv_out: output of ``attn.qkv``.

    Returns:
        Attention weights of the class token.

    Shape:
        - qkv_out: :math:`(B, N, 3 \\cdot heads \\cdot d)`
        - output: :math:`(B, heads, N)`

    Example:
        >>> from timm.models.vision_transformer import Attention
        >>> attn = Attention(8, num_heads=2)
        >>> w = class_token_attention(attn, attn.qkv(torch.randn(1, 5, 8)))
        >>> w.shape, bool(torch.allclose(w.sum(-1), torch.ones(1, 2)))
        (torch.Size([1, 2, 5]), True)
    """
    b, n, _ = qkv_out.shape
    qkv = qkv_out.reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    logits = (q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)
    return logits.softmax(dim=-1)[:, :, 0]


class TSCAM(WSOLMethod):
    """TS-CAM on a timm ViT / DeiT: semantic maps from the patch tokens × class-token attention.

    The patch tokens of the last layer (after the final norm) are reshaped to a ``(B, D, h, w)`` grid; a 3×3
    convolution gives one semantic map per class and GAP gives the logits (trained with cross-entropy). The
    semantic-agnostic attention map is the class token's attention to each patch, averaged over heads and layers.
    CAM = semantic map × attention map (raw evidence, at the patch grid: ``H/p × W/p``). Attention is recomputed
    from each block's ``attn.qkv`` output through temporary forward hooks, so timm's fused attention stays on;
    the hooks are removed after every forward.

    Args:
        vit: a timm ``VisionTransformer`` (its own classifier head is not used).
        num_classes: classes C.

    Raises:
        WSOLTypeError: ``vit`` is not a timm ViT / DeiT.

    Shape:
        - input: :math:`(B, 3, H, W)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, H/p, W/p)`; aux ``attention``: :math:`(B, 1, H/p, W/p)`,
          ``semantic``: :math:`(B, C, H/p, W/p)`, ``layer_attention``: :math:`(L, B, heads, H/p \\cdot W/p)`

    Example:
        >>> from timm.models.vision_transformer import VisionTransformer
        >>> vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
        >>> out = TSCAM(vit, num_classes=2)(torch.randn(1, 3, 32, 32))
        >>> out.logits.shape, out.cams.shape
        (torch.Size([1, 2]), torch.Size([1, 2, 4, 4]))
    """

    def __init__(self, vit: nn.Module, num_classes: int):
        super().__init__()
        _check_vit(vit)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.vit = vit
        self.embed_dim = int(vit.embed_dim)
        self.head = nn.Conv2d(self.embed_dim, num_classes, 3, padding=1)

    def _grid(self, x: torch.Tensor, n_patches: int) -> tuple[int, int]:
        ps = self.vit.patch_embed.patch_size
        h, w = x.shape[-2] // ps[0], x.shape[-1] // ps[1]
        if h * w != n_patches:
            h, w = self.vit.patch_embed.grid_size
        return h, w

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> WSOLOutput:
        check_ndim(x, "x", 4, "(B, 3, H, W)")
        check_floating(x, "x")
        rows: list[torch.Tensor] = []
        hooks = []
        try:
            for blk in self.vit.blocks:
                hooks.append(
                    blk.attn.qkv.register_forward_hook(
                        lambda mod, inp, out, attn=blk.attn: rows.append(class_token_attention(attn, out))
                    )
                )
            tokens = self.vit.forward_features(x)
        finally:
            for h in hooks:
                h.remove()
        npt = self.vit.num_prefix_tokens
        patches = tokens[:, npt:]
        b, n, d = patches.shape
        h, w = self._grid(x, n)
        fmap = patches.transpose(1, 2).reshape(b, d, h, w)
        semantic = self.head(fmap)
        logits = semantic.mean(dim=(-2, -1))
        layer_attention = torch.stack(rows)[..., npt:]  # (L, B, heads, N_patches): class token -> patches
        attention = layer_attention.mean(dim=(0, 2)).reshape(b, 1, h, w)
        cams = semantic * attention
        return WSOLOutput(
            logits, cams, {"attention": attention, "semantic": semantic, "layer_attention": layer_attention}
        )

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, embed_dim={self.embed_dim}"


#: timm model of the paper's main setting (DeiT-S, 16×16 patches)
TSCAM_DEFAULT_BACKBONE = "deit_small_patch16_224"


def _from_name(
    name: str = TSCAM_DEFAULT_BACKBONE, num_classes: int = 2, pretrained: bool = False, **kwargs: Any
) -> TSCAM:
    """Build :class:`TSCAM` on a timm ViT / DeiT given by name (what ``create_method("tscam", ...)`` calls).

    Args:
        name: timm model name of a VisionTransformer (``"deit_small_patch16_224"`` in the paper).
        num_classes: classes C.
        pretrained: load timm's ImageNet weights (network or local cache).
        **kwargs: passed to ``timm.create_model`` (e.g. ``img_size``, ``depth``).

    Raises:
        WSOLValueError: ``name`` is not a timm model.
        WSOLTypeError: the model is not a ViT with a class token.

    Example:
        >>> _from_name("test_vit", num_classes=2, img_size=32)(torch.zeros(1, 3, 32, 32)).cams.shape[:2]
        torch.Size([1, 2])
    """
    import timm

    if not isinstance(name, str) or not timm.is_model(name):
        raise WSOLValueError(f"`backbone`={name!r} is not a timm model; TS-CAM needs a timm ViT / DeiT name")
    vit = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    return TSCAM(vit, num_classes)


def create_tscam(name: str, num_classes: int, pretrained: bool = False, **kwargs: Any) -> TSCAM:
    """Deprecated: use ``wsolkit.create_method("tscam", num_classes, backbone=name, backbone_options=kwargs)``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     model = create_tscam("test_vit", num_classes=2, img_size=32)
        >>> type(model).__name__
        'TSCAM'
    """
    warn_deprecated("wsolkit.erasing.create_tscam", "wsolkit.create_method('tscam', num_classes, backbone=name, "
                    "backbone_options={...})")
    return _from_name(name, num_classes, pretrained, **kwargs)

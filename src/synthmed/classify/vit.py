"""A Vision Transformer image classifier (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

The default configuration is the ViT of seed 000 (image 512, patch 16, embedding 128,
4 heads, 1 layer, MLP 512, dropout 0.3, learnable positional encoding, CLS pooling,
2 classes). Blocks are pre-norm (LayerNorm before attention and MLP), as in the paper's
Eq. 2-3:

    z'_l = MSA(LN(z_{l-1})) + z_{l-1}
    z_l  = MLP(LN(z'_l)) + z'_l
    y    = LN(z_L^0)                       (CLS pooling)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn


class ViTConfig(BaseModel):
    """Architecture of :class:`ViT` (the constructor arguments, saved as ``config.json``).

    Attributes:
        image_size: Input side in pixels (square images).
        patch_size: Patch side; must divide ``image_size``.
        channels: Input channels (1 for grayscale, 3 for RGB).
        dim: Token embedding dimension.
        heads: Attention heads; must divide ``dim``.
        depth: Transformer blocks.
        mlp_dim: Hidden width of each block's MLP ("fully connected dimension").
        dropout: Dropout in attention output, MLP and after the embedding.
        pool: "cls" (the class token), "mean" (average of the patch tokens) or "max"
            (feature-wise maximum over the patch tokens: multiple-instance pooling, so one
            patch showing a small lesion is enough to carry it to the head).
        stem: "patch" — the paper's linear projection of non-overlapping patches; or "conv"
            — a stack of stride-2 3x3 convolutions with the same total stride (Xiao et al.
            2021, "Early convolutions help transformers see better"), which trains faster
            and needs less data. ``patch_size`` must then be a power of two.
        stem_convs: With the conv stem, 3x3 convolutions per halving: a stride-2 one, then
            ``stem_convs - 1`` at stride 1 (deeper early features see small lesions better).
        num_classes: Output logits.
    """

    model_config = ConfigDict(extra="forbid")

    arch: Literal["vit"] = "vit"
    image_size: int = Field(512, ge=8)
    patch_size: int = Field(16, ge=1)
    channels: int = Field(3, ge=1)
    dim: int = Field(128, ge=8)
    heads: int = Field(4, ge=1)
    depth: int = Field(1, ge=1)
    mlp_dim: int = Field(512, ge=8)
    dropout: float = Field(0.3, ge=0, lt=1)
    pool: Literal["cls", "mean", "max"] = "cls"
    stem: Literal["patch", "conv"] = "patch"
    stem_convs: int = Field(1, ge=1)
    num_classes: int = Field(2, ge=2)

    @model_validator(mode="after")
    def _check(self) -> ViTConfig:
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide image_size {self.image_size}")
        if self.dim % self.heads:
            raise ValueError(f"heads {self.heads} must divide dim {self.dim}")
        if self.stem == "conv" and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise ValueError(f"stem 'conv' needs a power-of-two patch_size, got {self.patch_size}")
        return self

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def conv_stem(channels: int, dim: int, patch_size: int, convs_per_level: int = 1) -> nn.Sequential:
    """3x3 conv-BN-ReLU levels down to 1/patch_size, widths doubling up to dim/2, then a 1x1 to dim.

    Each level is one stride-2 convolution followed by ``convs_per_level - 1`` stride-1 ones.
    """
    layers: list[nn.Module] = []
    n = patch_size.bit_length() - 1  # log2(patch_size) halvings
    cin = channels
    for i in range(n):
        cout = max(8, dim // 2 ** (n - i))
        layers += _conv_bn_relu(cin, cout, 2)
        for _ in range(convs_per_level - 1):
            layers += _conv_bn_relu(cout, cout, 1)
        cin = cout
    layers.append(nn.Conv2d(cin, dim, 1))
    return nn.Sequential(*layers)


class Attention(nn.Module):
    """Multi-head self-attention, softmax(QK^T / sqrt(d_head)) V (Vaswani et al. 2017, Eq. 1)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(b, t, d)  # (B, T, D)
        return self.drop(self.proj(y))


class Block(nn.Module):
    """A pre-norm transformer encoder block: attention and a GELU MLP, each residual."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Vision Transformer classifier.

    Input: (B, C, H, W) float images, H = W = ``config.image_size``, values in [0, 1]
    (any fixed normalisation works as long as training and inference agree).
    Output: (B, num_classes) logits.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        c = config
        if c.stem == "patch":
            # A strided convolution is the linear projection of flattened non-overlapping patches.
            self.patch_embed: nn.Module = nn.Conv2d(c.channels, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
        else:
            self.patch_embed = conv_stem(c.channels, c.dim, c.patch_size, c.stem_convs)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.num_patches + 1, c.dim))  # learnable
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.mlp_dim, c.dropout) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.channels or x.shape[-1] != c.image_size or x.shape[-2] != c.image_size:
            raise ValueError(f"expected images of shape (B, {c.channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(x.shape)}")
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        z = self.drop(torch.cat([cls, tokens], dim=1) + self.pos_embed)  # (B, N + 1, D)
        for block in self.blocks:
            z = block(z)
        z = self.norm(z)
        if c.pool == "cls":
            pooled = z[:, 0]  # (B, D)
        elif c.pool == "mean":
            pooled = z[:, 1:].mean(dim=1)
        else:
            pooled = z[:, 1:].amax(dim=1)
        return self.head(pooled)

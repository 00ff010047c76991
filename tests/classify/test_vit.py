import pytest
import torch
from pydantic import ValidationError

from synthmed.classify import CNNConfig, ConvNet, ViT, ViTConfig, build_classifier, get_preset
from synthmed.errors import ConfigError


def test_paper_preset_is_seed_000_vit():
    p = get_preset("paper")
    m, t = p.model, p.train
    assert (m.image_size, m.patch_size, m.channels, m.dim, m.heads, m.depth) == (512, 16, 3, 128, 4, 1)
    assert (m.mlp_dim, m.dropout, m.pool, m.num_classes, m.stem) == (512, 0.3, "cls", 2, "patch")
    assert (t.epochs, t.batch_size, t.lr, t.warmup_steps, t.weight_decay, t.grad_clip) == (40, 16, 1e-4, 625, 1e-3, 1.0)
    net = build_classifier(m)
    assert net.pos_embed.shape == (1, (512 // 16) ** 2 + 1, 128)  # learnable positions, CLS token included
    assert net.pos_embed.requires_grad and len(net.blocks) == 1


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_vit_shapes_and_gradients(stem):
    torch.manual_seed(0)
    net = ViT(ViTConfig(image_size=32, patch_size=8, channels=1, dim=32, heads=4, depth=2, mlp_dim=64, stem=stem,
                        num_classes=4))
    x = torch.rand(3, 1, 32, 32)
    out = net(x)
    assert out.shape == (3, 4)
    out.sum().backward()
    assert net.pos_embed.grad is not None and net.cls_token.grad is not None


@pytest.mark.parametrize("pool", ["cls", "mean", "max"])
def test_pooling_feeds_the_head_what_it_names(pool):
    torch.manual_seed(0)
    net = ViT(ViTConfig(image_size=32, patch_size=8, channels=1, dim=32, heads=4, mlp_dim=64, pool=pool)).eval()
    seen = {}
    net.norm.register_forward_hook(lambda m, i, o: seen.update(tokens=o))
    net.head.register_forward_hook(lambda m, i, o: seen.update(pooled=i[0]))
    net(torch.rand(2, 1, 32, 32))
    z = seen["tokens"]
    want = {"cls": z[:, 0], "mean": z[:, 1:].mean(dim=1), "max": z[:, 1:].amax(dim=1)}[pool]
    assert torch.equal(seen["pooled"], want)


def test_vit_rejects_wrong_input_shape_with_expected_shape():
    net = ViT(ViTConfig(image_size=32, patch_size=8, channels=1, dim=32, heads=4))
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        net(torch.rand(2, 3, 32, 32))


def test_vit_config_validation_names_the_field():
    with pytest.raises(ValidationError, match="patch_size 7 must divide image_size 32"):
        ViTConfig(image_size=32, patch_size=7)
    with pytest.raises(ValidationError, match="heads 3 must divide dim 32"):
        ViTConfig(image_size=32, patch_size=8, dim=32, heads=3)


def test_cnn_is_position_aware():
    net = ConvNet(CNNConfig(image_size=32, widths=(8, 8), stem_width=4, hidden=16))
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 2)
    with pytest.raises(ValidationError, match="divisible"):
        CNNConfig(image_size=30)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ConfigError, match="paper, cpu, quick"):
        get_preset("huge")


def test_deeper_conv_stem_adds_stride_one_convolutions_per_level():
    def convs(n: int) -> list[tuple[int, int]]:
        net = ViT(ViTConfig(image_size=32, patch_size=8, channels=1, dim=32, heads=4, stem="conv", stem_convs=n))
        assert net(torch.rand(2, 1, 32, 32)).shape == (2, 2)
        return [m.stride for m in net.patch_embed if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]

    assert convs(1) == [(2, 2)] * 3
    assert convs(2) == [(2, 2), (1, 1)] * 3

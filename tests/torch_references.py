"""Hand-written PyTorch modules of the zoo architectures, written the way torchvision
lays them out (the same module tree, so the same ``state_dict`` keys and order), for
the numerical tests of the PyTorch backend and for ``benchmarks/bench_torch.py``.

They are written independently of netspec: same weights in must give the same
outputs out. Not imported by the test collector (no ``test_`` prefix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def on_meta(model: nn.Module) -> bool:
    """Built on the meta device (``with torch.device("meta")``): nothing to initialise."""
    return any(p.is_meta for p in model.parameters())


def torchvision_init(model: nn.Module) -> nn.Module:
    """torchvision's initialisation for VGG, ResNet and MobileNet (kaiming normal fan
    out for convolutions, 1/0 for batch norm, normal(0, 0.01) for linear layers)."""
    if on_meta(model):
        return model
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


# --- AlexNet (torchvision's variant) -------------------------------------------------


class AlexNet(nn.Module):
    def __init__(self, classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        relu = nn.ReLU(inplace=True)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), relu,
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), relu,
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), relu,
            nn.Conv2d(384, 256, kernel_size=3, padding=1), relu,
            nn.Conv2d(256, 256, kernel_size=3, padding=1), relu,
            nn.MaxPool2d(kernel_size=3, stride=2),
        )  # fmt: skip
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# --- VGG ----------------------------------------------------------------------------

VGG_STAGES = {  # convolutions per stage; channels 64, 128, 256, 512, 512
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}


class VGG(nn.Module):
    def __init__(self, depth: str = "vgg16", batch_norm: bool = False, classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for n, c_out in zip(VGG_STAGES[depth], (64, 128, 256, 512, 512)):
            for _ in range(n):
                layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(nn.ReLU(inplace=True))
                c_in = c_out
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(4096, classes),
        )  # fmt: skip
        torchvision_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# --- ResNet -------------------------------------------------------------------------


def conv_bn(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, mid: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.downsample = conv_bn(c_in, mid, stride) if stride != 1 or c_in != mid else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        out = planes * 4
        mid = int(planes * (base_width / 64.0)) * groups  # ResNeXt and Wide ResNet widen the middle
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=groups, bias=False)  # v1.5: stride here
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = conv_bn(c_in, out, stride) if stride != 1 or c_in != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_DEPTHS: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnext50_32x4d": (Bottleneck, (3, 4, 6, 3)),
    "wide_resnet50_2": (Bottleneck, (3, 4, 6, 3)),
}
#: the bottleneck's groups and width per group, where not ResNet's (1, 64)
RESNET_WIDTHS = {"resnext50_32x4d": {"groups": 32, "base_width": 4}, "wide_resnet50_2": {"base_width": 128}}


class ResNet(nn.Module):
    def __init__(self, depth: str = "resnet50", classes: int = 1000) -> None:
        super().__init__()
        block, counts = RESNET_DEPTHS[depth]
        width = RESNET_WIDTHS.get(depth, {})
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = 64
        for i, (n, mid) in enumerate(zip(counts, (64, 128, 256, 512))):
            blocks = []
            for k in range(n):
                blocks.append(block(c_in, mid, 2 if k == 0 and i > 0 else 1, **width))
                c_in = mid * block.expansion  # type: ignore[attr-defined]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c_in, classes)
        for m in self.modules() if not on_meta(self) else ():  # torchvision: linear layers keep PyTorch's default
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- MobileNetV2 --------------------------------------------------------------------


def make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNReLU6(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = round(c_in * t)
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = [ConvBNReLU6(c_in, hidden, kernel=1)] if t != 1 else []
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip

    def __init__(self, classes: int = 1000, width: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        c_in = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        features: list[nn.Module] = [ConvBNReLU6(3, c_in, stride=2)]
        for t, c, n, s in self.SETTINGS:
            c_out = make_divisible(c * width)
            for k in range(n):
                features.append(InvertedResidual(c_in, c_out, s if k == 0 else 1, t))
                c_in = c_out
        features.append(ConvBNReLU6(c_in, last, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, classes))
        torchvision_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# --- DenseNet -----------------------------------------------------------------------


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    def __init__(self, n: int, c_in: int, growth: int, bn_size: int) -> None:
        super().__init__()
        for i in range(n):
            self.add_module(f"denselayer{i + 1}", DenseLayer(c_in + i * growth, growth, bn_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)


class DenseNet(nn.Module):
    def __init__(
        self, blocks: tuple[int, ...] = (6, 12, 24, 16), growth: int = 32, init_features: int = 64, classes: int = 1000
    ) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, init_features, 7, stride=2, padding=3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(init_features))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        self.features.add_module("pool0", nn.MaxPool2d(3, stride=2, padding=1))
        c = init_features
        for i, n in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c, growth, 4))
            c += n * growth
            if i != len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, classes)
        for m in self.modules() if not on_meta(self) else ():  # torchvision's DenseNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x), inplace=True)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


# --- SqueezeNet ---------------------------------------------------------------------


class Fire(nn.Module):
    def __init__(self, c_in: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNet(nn.Module):
    def __init__(self, version: str = "1_0", classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, stride=2, ceil_mode=True)

        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, 7, stride=2), nn.ReLU(inplace=True), pool(),
                Fire(96, 16, 64), Fire(128, 16, 64), Fire(128, 32, 128), pool(),
                Fire(256, 32, 128), Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256), pool(),
                Fire(512, 64, 256),
            )  # fmt: skip
        else:
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(inplace=True), pool(),
                Fire(64, 16, 64), Fire(128, 16, 64), pool(),
                Fire(128, 32, 128), Fire(256, 32, 128), pool(),
                Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256), Fire(512, 64, 256),
            )  # fmt: skip
        final = nn.Conv2d(512, classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules() if not on_meta(self) else ():  # torchvision's SqueezeNet initialisation
            if isinstance(m, nn.Conv2d):
                if m is final:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


# --- MnasNet ------------------------------------------------------------------------

MNASNET_MOMENTUM = 1 - 0.9997  # torchvision's: TensorFlow's decay 0.9997


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=MNASNET_MOMENTUM)


class MnasBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, t: int) -> None:
        super().__init__()
        mid = c_in * t
        self.residual = c_in == c_out and stride == 1
        self.layers = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False), bn(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), bn(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, c_out, 1, bias=False), bn(c_out),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + x if self.residual else self.layers(x)


class MnasNet(nn.Module):
    #: (out, kernel, stride, expansion, repeats) of each stack, after 16 channels
    STACKS = ((24, 3, 2, 3, 3), (40, 5, 2, 3, 3), (80, 5, 2, 6, 3), (96, 3, 1, 6, 2), (192, 5, 2, 6, 4), (320, 3, 1, 6, 1))  # fmt: skip

    def __init__(self, classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 32, 3, padding=1, stride=2, bias=False), bn(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), bn(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 16, 1, bias=False), bn(16),
        ]  # fmt: skip
        c_in = 16
        for c_out, kernel, stride, t, n in self.STACKS:
            stack = [MnasBlock(c_in if i == 0 else c_out, c_out, kernel, stride if i == 0 else 1, t) for i in range(n)]
            layers.append(nn.Sequential(*stack))
            c_in = c_out
        layers += [nn.Conv2d(c_in, 1280, 1, bias=False), bn(1280), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(1280, classes))
        for m in self.modules() if not on_meta(self) else ():  # torchvision's MnasNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="sigmoid")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean([2, 3]))


# --- MobileNetV3 --------------------------------------------------------------------


def conv_bn_act(
    c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: Any = nn.Hardswish
) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)]
    layers.append(nn.BatchNorm2d(c_out, eps=0.001, momentum=0.01))
    return nn.Sequential(*layers, *([act()] if act is not None else []))


class SqueezeExcitation(nn.Module):
    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * F.hardsigmoid(s)


class Bneck(nn.Module):
    def __init__(self, c_in: int, kernel: int, exp: int, c_out: int, se: bool, hs: bool, stride: int) -> None:
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        self.residual = stride == 1 and c_in == c_out
        layers: list[nn.Module] = [conv_bn_act(c_in, exp, act=act)] if exp != c_in else []
        layers.append(conv_bn_act(exp, exp, kernel, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcitation(exp, make_divisible(exp // 4)))
        layers.append(conv_bn_act(exp, c_out, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + x if self.residual else self.block(x)


#: (kernel, expansion, out, SE, hard-swish, stride) of each bneck: the paper's Tables 1 and 2
MOBILENET_V3 = {
    "large": (
        (3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1), (5, 72, 40, 1, 0, 2), (5, 120, 40, 1, 0, 1),
        (5, 120, 40, 1, 0, 1), (3, 240, 80, 0, 1, 2), (3, 200, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1),
        (3, 184, 80, 0, 1, 1), (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1), (5, 672, 160, 1, 1, 2),
        (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1),
    ),
    "small": (
        (3, 16, 16, 1, 0, 2), (3, 72, 24, 0, 0, 2), (3, 88, 24, 0, 0, 1), (5, 96, 40, 1, 1, 2), (5, 240, 40, 1, 1, 1),
        (5, 240, 40, 1, 1, 1), (5, 120, 48, 1, 1, 1), (5, 144, 48, 1, 1, 1), (5, 288, 96, 1, 1, 2),
        (5, 576, 96, 1, 1, 1), (5, 576, 96, 1, 1, 1),
    ),
}  # fmt: skip


class MobileNetV3(nn.Module):
    def __init__(self, size: str = "large", classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, 16, 3, 2)]
        c = 16
        for kernel, exp, out, se, hs, stride in MOBILENET_V3[size]:
            layers.append(Bneck(c, kernel, exp, out, bool(se), bool(hs), stride))
            c = out
        layers.append(conv_bn_act(c, 6 * c))
        self.features = nn.Sequential(*layers)
        hidden = 1280 if size == "large" else 1024
        self.classifier = nn.Sequential(
            nn.Linear(6 * c, hidden), nn.Hardswish(inplace=True), nn.Dropout(dropout, inplace=True),
            nn.Linear(hidden, classes),
        )  # fmt: skip
        for m in self.modules() if not on_meta(self) else ():  # torchvision's MobileNetV3 initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# --- ShuffleNetV2 -------------------------------------------------------------------


def shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        half = c_out // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
                nn.Conv2d(c_in, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            )  # fmt: skip
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(c_in if stride > 1 else half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, classes: int = 1000, channels: tuple[int, ...] = (24, 116, 232, 464, 1024)) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, channels[0], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(True)
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = channels[0]
        for i, (n, out) in enumerate(zip((4, 8, 4), channels[1:4])):
            setattr(
                self,
                f"stage{i + 2}",
                nn.Sequential(*[ShuffleUnit(c if k == 0 else out, out, 2 if k == 0 else 1) for k in range(n)]),
            )
            c = out
        self.conv5 = nn.Sequential(nn.Conv2d(c, channels[4], 1, bias=False), nn.BatchNorm2d(channels[4]), nn.ReLU(True))
        self.fc = nn.Linear(channels[4], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean([2, 3]))


# --- NASNet-A Large (timm's nasnetalarge) --------------------------------------------


def tf_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow's "SAME" padding of a square map for a strided window, the odd pixel last."""
    n = x.shape[-1]
    total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
    return F.pad(x, (total // 2, total - total // 2) * 2, value=value)


def bn3(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=0.001)


class Separable(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        pad = 0 if stride > 1 else (kernel - 1) // 2
        self.depthwise_conv2d = nn.Conv2d(c_in, c_in, kernel, stride, pad, groups=c_in, bias=False)
        self.pointwise_conv2d = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = tf_same(x, self.depthwise_conv2d.kernel_size[0], self.stride)
        return self.pointwise_conv2d(self.depthwise_conv2d(x))


class BranchSeparables(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, mid: int | None = None) -> None:
        super().__init__()
        mid = c_in if mid is None else mid
        self.separable_1 = Separable(c_in, mid, kernel, stride)
        self.bn_sep_1 = bn3(mid)
        self.separable_2 = Separable(mid, c_out, kernel, 1)
        self.bn_sep_2 = bn3(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_sep_1(self.separable_1(F.relu(x)))
        return self.bn_sep_2(self.separable_2(F.relu(x)))


class ActConvBn(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = bn3(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class Path(nn.Module):
    def __init__(self, c_in: int, c_out: int, shift: bool) -> None:
        super().__init__()
        self.shift = shift
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift:  # one pixel down and right
            x = F.pad(x, (-1, 1, -1, 1))
        return self.conv(x[:, :, ::2, ::2])


def avg3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class NasCell(nn.Module):
    """One cell: kind 'stem0', 'stem1', 'reduction' (the reducing combinations) or
    'first', 'normal'; x is the cell before, prev the one before that."""

    def __init__(self, kind: str, c_x: int, c_prev: int, out: int) -> None:
        super().__init__()
        self.kind = kind
        if kind in ("reduction", "normal"):
            self.conv_prev_1x1 = ActConvBn(c_prev, out)
        self.conv_1x1 = ActConvBn(c_x, out)
        if kind in ("stem1", "first"):
            self.path_1 = Path(c_prev, out // 2, shift=False)
            self.path_2 = Path(c_prev, out // 2, shift=True)
            self.final_path_bn = bn3(out)
        if kind in ("stem0", "stem1", "reduction"):
            c_b, mid = (c_x, out) if kind == "stem0" else (out, None)
            self.comb_iter_0_left = BranchSeparables(out, out, 5, 2)
            self.comb_iter_0_right = BranchSeparables(c_b, out, 7, 2, mid)
            self.comb_iter_1_right = BranchSeparables(c_b, out, 7, 2, mid)
            self.comb_iter_2_right = BranchSeparables(c_b, out, 5, 2, mid)
            self.comb_iter_4_left = BranchSeparables(out, out, 3)
        else:
            self.comb_iter_0_left = BranchSeparables(out, out, 5)
            self.comb_iter_0_right = BranchSeparables(out, out, 3)
            self.comb_iter_1_left = BranchSeparables(out, out, 5)
            self.comb_iter_1_right = BranchSeparables(out, out, 3)
            self.comb_iter_4_left = BranchSeparables(out, out, 3)

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        mine = self.conv_1x1(x)
        if self.kind == "stem0":
            other = x
        elif self.kind in ("stem1", "first"):
            assert prev is not None
            p = F.relu(prev)
            other = self.final_path_bn(torch.cat([self.path_1(p), self.path_2(p)], 1))
        else:
            other = self.conv_prev_1x1(prev)
        if self.kind in ("stem0", "stem1", "reduction"):
            c0 = self.comb_iter_0_left(mine) + self.comb_iter_0_right(other)
            c1 = F.max_pool2d(tf_same(mine, 3, 2, float("-inf")), 3, 2) + self.comb_iter_1_right(other)
            c2 = F.avg_pool2d(tf_same(mine, 3, 2), 3, 2) + self.comb_iter_2_right(other)
            c3 = avg3(c0) + c1
            c4 = self.comb_iter_4_left(c0) + F.max_pool2d(tf_same(mine, 3, 2, float("-inf")), 3, 2)
            return torch.cat([c1, c2, c3, c4], 1)
        c0 = self.comb_iter_0_left(mine) + self.comb_iter_0_right(other)
        c1 = self.comb_iter_1_left(other) + self.comb_iter_1_right(other)
        c2 = avg3(mine) + other
        c3 = avg3(other) + avg3(other)
        c4 = self.comb_iter_4_left(mine) + mine
        return torch.cat([other, c0, c1, c2, c3, c4], 1)


class NASNetALarge(nn.Module):
    def __init__(self, classes: int = 1000, stem_size: int = 96, num_features: int = 4032) -> None:
        super().__init__()
        c = num_features // 24
        self.conv0 = nn.Module()
        self.conv0.conv = nn.Conv2d(3, stem_size, 3, 2, bias=False)
        self.conv0.bn = bn3(stem_size)
        # (name, kind, branch width); a cell's output: 4 branches if reducing, else 6
        plan = [("cell_stem_0", "stem0", c // 4), ("cell_stem_1", "stem1", c // 2)]
        for stack, width in enumerate((c, 2 * c, 4 * c)):
            if stack:
                plan.append((f"reduction_cell_{stack - 1}", "reduction", width))
            plan += [(f"cell_{6 * stack + i}", "first" if i == 0 else "normal", width) for i in range(6)]
        self.order = [name for name, _, _ in plan]
        channels = [stem_size, stem_size]  # the outputs before: [prev, x]
        for name, kind, width in plan:
            back = 3 if name in ("cell_6", "cell_12") else 2
            self.add_module(name, NasCell(kind, channels[-1], channels[-back], width))
            channels.append(width * (4 if kind in ("stem0", "stem1", "reduction") else 6))
        self.last_linear = nn.Linear(channels[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv0.bn(self.conv0.conv(x))
        outs = [x, x]
        for name in self.order:
            # a cell reads the two cells before it; the first cell after a reduction reads
            # the reduction and what the reduction read as its prev
            back = 3 if name in ("cell_6", "cell_12") else 2
            outs.append(getattr(self, name)(outs[-1], outs[-back]))
        x = F.relu(outs[-1]).mean([2, 3])
        return self.last_linear(x)


#: spec name -> a builder of the hand-written module (keyword: classes). Adding a
#: reference for a new zoo spec is an entry here; the tests and the benchmark use it.
REFERENCES: dict[str, Callable[..., nn.Module]] = {
    "alexnet": lambda **kw: AlexNet(**kw),
    **{name: (lambda name=name, **kw: VGG(name, **kw)) for name in VGG_STAGES},
    "vgg16_bn": lambda **kw: VGG("vgg16", batch_norm=True, **kw),
    **{name: (lambda name=name, **kw: ResNet(name, **kw)) for name in RESNET_DEPTHS},
    "mobilenet_v2": lambda **kw: MobileNetV2(**kw),
    "densenet121": lambda **kw: DenseNet(**kw),
    "squeezenet1_0": lambda **kw: SqueezeNet("1_0", **kw),
    "squeezenet1_1": lambda **kw: SqueezeNet("1_1", **kw),
    "mnasnet1_0": lambda **kw: MnasNet(**kw),
    "mobilenet_v3_large": lambda **kw: MobileNetV3("large", **kw),
    "mobilenet_v3_small": lambda **kw: MobileNetV3("small", **kw),
    "shufflenet_v2_x1_0": lambda **kw: ShuffleNetV2(**kw),
    "nasnet_a_large": lambda **kw: NASNetALarge(**kw),
}


def build_reference(name: str, **kw: Any) -> nn.Module:
    return REFERENCES[name](**kw)

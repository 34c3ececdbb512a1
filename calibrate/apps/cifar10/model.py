"""Small ResNet-style networks for 32x32 images (imports torch).

``ResNet9`` follows the ResNet-9 of Page (2018) / airbench, sized by ``widths``: a 3x3
stem, three stages of conv-BN-ReLU + 2x2 max-pool (stages 1 and 3 with a residual pair of
convs), global max-pool, dropout, and a linear head. Dropout before the head is what MC
dropout samples. The head runs in float32 even under bf16 autocast, so logits keep
full precision (a bf16 head would quantise them and create ties in confidence).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

    def forward(self, x):
        return x + self.body(x)


class ResNet9(nn.Module):
    """logits (n, num_classes) float32 from images (n, 3, 32, 32)."""

    def __init__(self, widths=(32, 64, 128), num_classes: int = 10, dropout: float = 0.1):
        super().__init__()
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            conv_bn(3, w1 // 2),
            conv_bn(w1 // 2, w1), nn.MaxPool2d(2), Residual(w1),
            conv_bn(w1, w2), nn.MaxPool2d(2),
            conv_bn(w2, w3), nn.MaxPool2d(2), Residual(w3),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(w3, num_classes, bias=False)
        self.scale = 0.125  # a fixed logit scale (Page's ResNet-9) keeps early training stable

    def forward(self, x):
        f = self.features(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.head(self.dropout(f.float())) * self.scale

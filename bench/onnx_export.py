#!/usr/bin/python3
"""onnx_export.py - export the three benchmark networks to ONNX with Debian's PyTorch.

Writes into OUTDIR (default build/bench/models):
  mlp.onnx    MLP 32 -> 256 -> 256 -> 4 (ReLU), input [1, 32]
  cnn.onnx    small CNN classifier: 3 conv(3x3)+BN+ReLU blocks with max-pooling, global average
              pooling and a linear head, input [1, 3, 64, 64] -> [1, 10]
  espcn.onnx  ESPCN-style x2 super-resolution: conv 5x5 64 + tanh, conv 3x3 32 + tanh,
              conv 3x3 3*2*2, pixel shuffle, input [1, 3, 256, 256] -> [1, 3, 512, 512]
and for each NAME.onnx an input NAME.in.bin (raw float32, little-endian) plus NAME.shape
(comma-separated dims), so both runtimes are fed the same bytes.

Weights come from a fixed seed: the numbers are random but the same on every run. BatchNorm is
given non-trivial statistics and exported in eval mode, so PyTorch folds it into the convs, as
it does for real exported classifiers.
"""
import os
import sys

import numpy as np
import torch
from torch import nn

OPSET = 13


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Linear(256, 4))

    def forward(self, x):
        return self.net(x)


def block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32),
                                      nn.MaxPool2d(2), *block(32, 64), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class ESPCN(nn.Module):
    def __init__(self, scale=2, channels=3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 64, 5, padding=2), nn.Tanh(),
                                  nn.Conv2d(64, 32, 3, padding=1), nn.Tanh(),
                                  nn.Conv2d(32, channels * scale * scale, 3, padding=1))
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.shuffle(self.body(x))


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def export(name, model, shape, outdir, gen):
    randomize_bn(model, gen)
    model.eval()
    x = torch.rand(*shape, generator=gen)
    path = os.path.join(outdir, name + ".onnx")
    with torch.no_grad():
        torch.onnx.export(model, x, path, opset_version=OPSET, input_names=["input"],
                          output_names=["output"], do_constant_folding=True)
    x.numpy().astype("<f4").tofile(os.path.join(outdir, name + ".in.bin"))
    with open(os.path.join(outdir, name + ".shape"), "w") as f:
        f.write(",".join(str(d) for d in shape) + "\n")
    print(f"exported {path} input {list(shape)}")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "build/bench/models"
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(20261123)
    gen = torch.Generator().manual_seed(7)
    export("mlp", MLP(), (1, 32), outdir, gen)
    export("cnn", CNN(), (1, 3, 64, 64), outdir, gen)
    export("espcn", ESPCN(), (1, 3, 256, 256), outdir, gen)


if __name__ == "__main__":
    main()

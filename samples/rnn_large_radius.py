"""A tanh RNN with recurrent spectral radius 2.5, trained with SGD at lr 0.5 and no clipping.

Problem: backpropagation through time multiplies the gradient by W_hh^T diag(tanh') once per
time step. weight_hh_l0 is orthogonal * 2.5, so every eigenvalue has modulus 2.5: wherever tanh
is not saturated the gradient grows by up to 2.5x per step back in time, and some batches give
a huge gradient norm. Without clipping, SGD at lr 0.5 turns each such spike into a giant
parameter jump (Pascanu et al. 2013, "On the difficulty of training recurrent neural networks";
Bengio et al. 1994, "Learning long-term dependencies with gradient descent is difficult").
Twin: lstm_clipped.py uses an LSTM (gated, additive cell state) with PyTorch's default init and
gradient_clip_val = 1.0, the clipping Pascanu et al. propose.

Measured (torch 2.13 CPU, method in samples/README.md): at init |dL/dh_1| / |dL/dh_16| = 65
(LSTM twin: 1.3e-4) and the gradient norm is 40 (twin 0.45). 100 SGD steps on fresh random
batches (random labels: the best loss is ln 4 = 1.39): the gradient norm spikes to 5.5e4 and
the loss reaches 14.3, with 29 one-step jumps of over 50% (twin: gradient norm <= 0.78, loss <= 1.62).
"""

import torch
import torch.nn as nn

INPUT, HIDDEN, CLASSES, BATCH, SEQ_LEN = 8, 64, 4, 8, 16
RADIUS = 2.5  # the bug: > 1 lets BPTT gradients grow geometrically with sequence length


class RNNClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(INPUT, HIDDEN, nonlinearity="tanh", batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)
        self.reset_parameters()

    def reset_parameters(self):
        with torch.no_grad():
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
            self.rnn.weight_hh_l0.mul_(RADIUS)  # all eigenvalues now have |lambda| = 2.5

    def forward(self, x):
        _, h_last = self.rnn(x)  # h_last: (1, batch, hidden)
        return self.head(h_last[-1])


def build_model():
    return RNNClassifier()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(BATCH, SEQ_LEN, INPUT, generator=g),)


def example_targets():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, CLASSES, (BATCH,), generator=g)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.5)  # no momentum, no clipping

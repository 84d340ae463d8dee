"""A tanh RNN whose recurrent matrix has spectral radius 2.5, trained with plain SGD at lr 0.5 and no clipping.

Problem: backpropagation through time multiplies the gradient by W_hh^T diag(tanh') once per
time step. weight_hh_l0 is orthogonal * 2.5, so every eigenvalue has modulus 2.5: along the
directions where tanh is not saturated the gradient can grow like 2.5^T, and with 16 steps a
single unlucky batch yields a huge gradient norm. Without clipping, SGD at lr 0.5 turns such a
spike into a giant parameter jump (Pascanu et al. 2013, "On the difficulty of training recurrent
neural networks"; Bengio et al. 1994).
Twin: lstm_clipped.py uses an LSTM with PyTorch's default init (gated, additive cell state) and
gradient_clip_val = 1.0, the clipping Pascanu et al. propose.

Measured (see samples/README.md): MEASURE.
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

"""Healthy standard models, tiny, as model files: no depth or normalization rule may fire on them."""

SHALLOW_MLP = '''
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
'''

SMALL_CNN = '''
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
'''

LSTM = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(4, 10, 16),)
'''

PRE_LN_TRANSFORMER = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.pos = nn.Parameter(torch.zeros(12, 32))
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=4, norm=nn.LayerNorm(32), enable_nested_tensor=False)
        self.head = nn.Linear(32, 50)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens) + self.pos))

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 50, (4, 12)),)
'''

RESNET_BN = '''
import torch
import torch.nn as nn

class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + identity)

class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Basic(8, 8, 1), Basic(8, 8, 1), Basic(8, 8, 1),
                                    Basic(8, 16, 2), Basic(16, 16, 1), Basic(16, 16, 1))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))

def build_model():
    return ResNet()

def example_inputs():
    return (torch.randn(4, 3, 8, 8),)
'''

ALL = {"shallow-mlp": SHALLOW_MLP, "small-cnn": SMALL_CNN, "lstm": LSTM,
       "pre-ln-transformer": PRE_LN_TRANSFORMER, "resnet-bn": RESNET_BN}

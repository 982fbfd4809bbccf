"""Save a network and a batch in the files `bptt diagnose` reads (docs/diagnose.md):

    python examples/diagnose_save.py runs/      # writes runs/net.pt and runs/batch.npz

The network: an embedding, a 2-layer LSTM and a Linear head, as PyTorch initialises them; the
task: name the first of 60 tokens (one label per sequence, scored at the last step). Save your
own network the same way: torch.save(model.state_dict(), ...) and np.savez(..., x=..., y=...).
"""
import sys
from pathlib import Path

import numpy as np
import torch


class Net(torch.nn.Module):
    def __init__(self, V=10, E=8, H=32, O=4):
        super().__init__()
        self.emb = torch.nn.Embedding(V, E)
        self.lstm = torch.nn.LSTM(E, H, num_layers=2, batch_first=True)
        self.out = torch.nn.Linear(H, O)

    def forward(self, x):  # (N, T) ids -> (N, T, O) logits
        return self.out(self.lstm(self.emb(x))[0])


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(Net().state_dict(), folder / "net.pt")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, (16, 60))  # ids (N, T)
    np.savez(folder / "batch.npz", x=x, y=x[:, 0] % 4)  # y (N,): the first token's class, read at the last step
    print(f"wrote {folder / 'net.pt'} and {folder / 'batch.npz'}")

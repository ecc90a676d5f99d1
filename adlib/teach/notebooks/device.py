"""Where the notebooks compute: torch threads, the device, and an eps-network on a GPU that takes and
returns CPU tensors."""
import torch


def set_threads(n):
    """torch threads (None: leave torch's default). One thread keeps the tiny smoke models fast on a busy
    2-core machine, where a 2-thread pool makes every small op wait."""
    if n:
        torch.set_num_threads(int(n))
    return torch.get_num_threads()


def pick_device(device="auto") -> str:
    from adlib.runs.train import pick_device as pick
    return pick(device)


def on_device(model, device: str):
    """The eps-network evaluated on `device` but called with and returning CPU tensors, so adlib.evaluation.bench and
    adlib.method.scoring (which read results with .numpy()) work unchanged with a model on a GPU."""
    return model if device == "cpu" else OnDevice(model, device)


class OnDevice(torch.nn.Module):
    """A model moved to `device`, called with CPU tensors. `wrapped` is the model inside: `control_model` finds the
    control of what is wrapped (a GPU run's zero-residual base, not the wrapper taken for a closed form) and
    `rewrap` puts that control on the same device."""

    def __init__(self, m, device: str):
        super().__init__()
        self.m, self.device = m.to(device).eval(), device
        self.config = getattr(m, "config", None)

    @property
    def wrapped(self):
        return self.m

    def rewrap(self, other):
        return other if other is self.m else OnDevice(other, self.device)

    def forward(self, x, t):
        return self.m(x.to(self.device), t.to(self.device)).to(x.device)

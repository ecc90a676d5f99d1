"""Where the notebooks compute: torch threads, the device, and an eps-network on a GPU that takes and
returns CPU tensors."""


def set_threads(n):
    """torch threads (None: leave torch's default). One thread keeps the tiny smoke models fast on a busy
    2-core machine, where a 2-thread pool makes every small op wait."""
    import torch
    if n:
        torch.set_num_threads(int(n))
    return torch.get_num_threads()


def pick_device(device="auto") -> str:
    from adlib.runs.train import pick_device as pick
    return pick(device)


def on_device(model, device: str):
    """The eps-network evaluated on `device` but called with and returning CPU tensors, so adlib.evaluation.bench and
    adlib.method.scoring (which read results with .numpy()) work unchanged with a model on a GPU."""
    import torch
    if device == "cpu":
        return model

    class OnDevice(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m.to(device).eval()
            self.config = getattr(m, "config", None)

        def forward(self, x, t):
            return self.m(x.to(device), t.to(device)).to(x.device)

    return OnDevice(model)

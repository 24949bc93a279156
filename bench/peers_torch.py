"""The torch peers: eager PyTorch, and torch.compile (inductor) of the same functions."""
from __future__ import annotations

import numpy as np

from .cases import CNN, MLP, DeepCNN, Elementwise, LSTMNet, Problem
from .peers_base import Impl, Runner, apply_limits, thread_limit


class TorchPeer(Impl):
    name = "torch"
    compiled = False

    def unavailable(self) -> str | None:
        try:
            import torch  # noqa: F401
        except ImportError as e:
            return f"torch is not installed ({e})"
        return None

    def versions(self) -> dict:
        import torch
        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}

    def _maybe_compile(self, fn):
        if not self.compiled:
            return fn
        import torch
        return torch.compile(fn, dynamic=False)

    def setup(self, p: Problem) -> Runner:
        import torch
        import torch.nn.functional as Fn
        if thread_limit() is not None:
            torch.set_num_threads(thread_limit())
            apply_limits()
        if isinstance(p.net, Elementwise):
            net = p.net
            x = torch.from_numpy(p.feeds["x"])

            def f(x):
                return Fn.silu(Fn.leaky_relu(x * net.a + net.b, net.slope))
            f = self._maybe_compile(f)

            def call():
                with torch.no_grad():
                    return f(x).numpy()
            return Runner(call)

        if isinstance(p.net, (DeepCNN, LSTMNet)):
            from .peers_deep import torch_model
            model, to_nnc = torch_model(p)
        else:
            model, to_nnc = self._build(p)
        x = torch.from_numpy(p.feeds["x"])
        if isinstance(p.net, (CNN, DeepCNN)):
            x = x.permute(0, 3, 1, 2).contiguous()        # torch's layout, NCHW (once, untimed)
        if p.kind == "predict":
            fwd = self._maybe_compile(lambda x: Fn.softmax(model(x), dim=-1))

            def predict():
                with torch.no_grad():
                    return fwd(x).numpy()
            return Runner(predict)
        params = [w for w in model.parameters() if w.requires_grad]
        if isinstance(p.net, LSTMNet):          # regression: mse, Adam with nnc's hyper-parameters
            from .cases import ADAM_EPS
            y = torch.from_numpy(p.feeds["y"])
            loss_fn = self._maybe_compile(lambda x, y: Fn.mse_loss(model(x), y))
            opt = torch.optim.Adam(params, lr=p.lr, eps=ADAM_EPS)
        else:
            y = torch.from_numpy(p.feeds["y"].astype(np.int64))
            loss_fn = self._maybe_compile(lambda x, y: Fn.cross_entropy(model(x), y))
            opt = torch.optim.SGD(params, lr=p.lr)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(x, y)
            loss.backward()
            opt.step()
            return loss.item()
        return Runner(step, to_nnc)

    @staticmethod
    def _build(p: Problem):
        """The torch module with the problem's weights, and a function giving them back in nnc's layout."""
        import torch
        from torch import nn
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        if isinstance(p.net, MLP):
            linears, mods = [], []
            for i, name in enumerate(p.net.layers):
                W = p.params[f"{name}.kernel"]
                lin = nn.Linear(*W.shape)
                with torch.no_grad():
                    lin.weight.copy_(t(W.T))
                    lin.bias.copy_(t(p.params[f"{name}.bias"]))
                linears.append((name, lin))
                mods.append(lin)
                if i < len(p.net.layers) - 1:
                    mods.append(nn.ReLU())
            model = nn.Sequential(*mods)

            def to_nnc():
                out = {}
                for name, lin in linears:
                    out[f"{name}.kernel"] = lin.weight.detach().numpy().T.copy()
                    out[f"{name}.bias"] = lin.bias.detach().numpy().copy()
                return out
            return model, to_nnc
        net = p.net
        ph, pw, pc = net.pooled
        flat = ph * pw * pc

        class CNNModule(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(net.image[2], net.filters, net.kernel, padding=net.kernel // 2)
                self.fc = nn.Linear(flat, net.classes)

            def forward(self, x):                    # x [B, C, H, W]
                h = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), net.pool)
                return self.fc(h.flatten(1))         # flattened (c, h, w)

        model = CNNModule()
        with torch.no_grad():
            model.conv.weight.copy_(t(p.params["c1.kernel"].transpose(3, 2, 0, 1)))
            model.conv.bias.copy_(t(p.params["c1.bias"]))
            # nnc flattens (h, w, c), torch (c, h, w): permute the dense kernel's rows
            Wd = p.params["out.kernel"].reshape(ph, pw, pc, -1).transpose(2, 0, 1, 3).reshape(flat, -1)
            model.fc.weight.copy_(t(Wd.T))
            model.fc.bias.copy_(t(p.params["out.bias"]))

        def to_nnc():
            Wt = model.fc.weight.detach().numpy().T
            return {"c1.kernel": model.conv.weight.detach().numpy().transpose(2, 3, 1, 0).copy(),
                    "c1.bias": model.conv.bias.detach().numpy().copy(),
                    "out.kernel": Wt.reshape(pc, ph, pw, -1).transpose(1, 2, 0, 3).reshape(flat, -1).copy(),
                    "out.bias": model.fc.bias.detach().numpy().copy()}
        return model, to_nnc


class TorchCompilePeer(TorchPeer):
    """torch.compile (inductor) of the loss (forward + backward through AOTAutograd) or of the
    forward; the SGD update runs eagerly."""
    name = "torch.compile"
    compiled = True

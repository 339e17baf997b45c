"""PyTorch (CPU) peer: the same networks, optimiser and data, written the way a PyTorch user
would (tensors preloaded, randperm minibatches, no DataLoader overhead)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from workloads import CLASSES, D_IN, DEPTH_HIDDEN, WIDTH  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MAX_THREADS = int(os.environ.get("BENCH_THREADS", "2"))
torch.set_num_threads(MAX_THREADS)


def configured(task, model, make_step, extra=""):
    """Pick the fastest configuration a PyTorch user would try, each timed on the workload
    itself: first 1 or 2 threads (up to BENCH_THREADS) in eager mode, then torch.compile
    (inductor, default mode) at the better thread count against eager (task['compile']: auto
    tries both; on / off only one). One compilation per workload: inductor's CPU kernels are
    specialised to the thread count they are compiled under. make_step(module) returns the
    call to time. Returns (run, text)."""
    threads = [int(t) for t in task.get("threads", sorted({1, MAX_THREADS}))]
    mode = task.get("compile", "auto")

    def cand(m, t):
        def make():
            torch.set_num_threads(t)
            if m == "eager":
                return make_step(model)
            if "compiled" not in holder:
                holder["compiled"] = torch.compile(model)
            return make_step(holder["compiled"])
        return (f"{m}/{t}t", make)
    holder = {}
    tried = {}
    if mode != "on" and len(threads) > 1:
        label, run, tried = common.pick_fastest([cand("eager", t) for t in threads])
        t = int(label.split("/")[1][:-1])
    else:
        t = threads[-1] if mode == "on" else threads[0]
        label, run = None, None
    if mode != "off":
        c_label, c_run, more = common.pick_fastest([cand("compile", t)])
        tried.update(more)
        eager_t = tried.get(f"eager/{t}t")
        if c_label and (mode == "on" or not isinstance(eager_t, float) or more[c_label] < eager_t):
            label, run = c_label, c_run
        elif label:
            run = cand("eager", t)[1]()  # back to eager (compile failed or was slower)
    if label is None:  # compile off with one thread count, or compile failed without a thread round
        label, run, more = common.pick_fastest([cand("eager", t)])
        tried.update(more)
    m, tt = label.split("/")
    text = (f"{tt[:-1]} thread{'s' if tt != '1t' else ''}, "
            f"{'torch.compile (inductor)' if m == 'compile' else 'eager'}{extra}; "
            f"fastest of {common.tried_text(tried)}")
    return run, text


def he(fan_out, fan_in, g, trainable=True):
    w = torch.randn(fan_out, fan_in, generator=g) * (2.0 / fan_in) ** 0.5
    return torch.nn.Parameter(w, requires_grad=trainable)


class FCNet(torch.nn.Module):
    """regime relu: a plain ReLU MLP; fixed_hard: DGN with frozen random hard gates;
    decoupled_soft: DGN with soft gates sigmoid(beta q), both nets trained."""

    def __init__(self, regime, beta=10.0, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        sizes = [D_IN] + [WIDTH] * DEPTH_HIDDEN + [CLASSES]
        self.regime, self.beta = regime, beta
        self.value = torch.nn.ParameterList([he(o, i, g) for i, o in zip(sizes[:-1], sizes[1:])])
        if regime != "relu":
            self.feature = torch.nn.ParameterList(
                [he(o, i, g, trainable=(regime == "decoupled_soft"))
                 for i, o in zip(sizes[:-2], sizes[1:-1])])

    def forward(self, x):
        if self.regime == "relu":
            h = x
            for w in self.value[:-1]:
                h = F.relu(F.linear(h, w))
            return F.linear(h, self.value[-1])
        gates = []
        if self.regime == "fixed_hard":
            with torch.no_grad():
                h = x
                for w in self.feature:
                    q = F.linear(h, w)
                    gates.append((q > 0).to(x.dtype))
                    h = F.relu(q)
        else:
            h = x
            for w in self.feature:
                q = F.linear(h, w)
                gates.append(torch.sigmoid(self.beta * q))
                h = F.relu(q)
        z = x
        for w, g in zip(self.value[:-1], gates):
            z = F.linear(z, w) * g
        return F.linear(z, self.value[-1])


def load(which_x, which_y, n):
    if common.have_fmnist():
        x, y = common.read_idx_numpy(which_x, n), common.read_idx_numpy(which_y, n)
    else:
        x, y = common.synthetic_numpy(n, D_IN)
    return torch.from_numpy(x).contiguous(), torch.from_numpy(y).long()


def train(task):
    n, batch = task["n"], task["batch"]
    x, y = load("train_x", "train_y", n)
    model = FCNet(task["regime"])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    gen = torch.Generator().manual_seed(1)

    def step(m):
        def run():
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch):
                idx = perm[i:i + batch]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(m(x[idx]), y[idx])
                loss.backward()
                opt.step()
        return run
    run, config = configured(task, model, step)
    res = common.measure(run, task["runs"], task.get("warmup", 1))
    res.update(items=n, config=config)
    return res


def infer(task):
    n = task["n"]
    x, _ = load("test_x", "test_y", n)
    model = FCNet(task["regime"]).eval()

    def step(m):
        def run():
            with torch.inference_mode():
                return m(x)
        return run
    run, config = configured(task, model, step, ", inference_mode")
    res = common.measure(run, task["runs"], task.get("warmup", 1))
    res.update(items=n, config=config)
    return res


class GConvDGN(torch.nn.Module):
    """GCONV (4 conv 3x3 same-padding 64/64/128/128, GAP, dense 256, dense 10) as a DGN:
    relu = plain ReLU conv net; fixed_hard = frozen random feature net's hard gates;
    decoupled_soft = sigmoid(beta q) gates, both nets trained."""

    def __init__(self, regime, channels=(64, 64, 128, 128), hidden=256, beta=10.0, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.regime, self.beta = regime, beta

        def net():
            convs, c_in = torch.nn.ModuleList(), 1
            for c in channels:
                convs.append(torch.nn.Conv2d(c_in, c, 3, padding=1, bias=False))
                c_in = c
            return convs, torch.nn.Linear(c_in, hidden, bias=False)
        self.v_convs, self.v_fc = net()
        self.out = torch.nn.Linear(hidden, CLASSES, bias=False)
        if regime != "relu":
            self.f_convs, self.f_fc = net()
            if regime == "fixed_hard":
                for p in list(self.f_convs.parameters()) + list(self.f_fc.parameters()):
                    p.requires_grad_(False)

    def forward(self, x):
        if self.regime == "relu":
            h = x
            for c in self.v_convs:
                h = F.relu(c(h))
            return self.out(F.relu(self.v_fc(h.mean((2, 3)))))
        gates = []
        ctx = torch.no_grad() if self.regime == "fixed_hard" else torch.enable_grad()
        with ctx:
            h = x
            for layer in list(self.f_convs) + [self.f_fc]:
                if layer is self.f_fc:
                    h = h.mean((2, 3))
                q = layer(h)
                gates.append((q > 0).to(x.dtype) if self.regime == "fixed_hard"
                             else torch.sigmoid(self.beta * q))
                h = F.relu(q)
        z = x
        for c, g in zip(self.v_convs, gates):
            z = c(z) * g
        z = self.v_fc(z.mean((2, 3))) * gates[-1]
        return self.out(z)


def conv_train(task):
    batch, steps = task["batch"], task["steps"]
    n = batch * steps
    x, y = load("train_x", "train_y", n)
    # channels_last (NHWC): the layout oneDNN's CPU convolutions run fastest in
    x = x.reshape(n, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    model = GConvDGN(task.get("regime", "fixed_hard")).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    gen = torch.Generator().manual_seed(1)

    def step(m):
        def run():
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch):
                idx = perm[i:i + batch]
                opt.zero_grad(set_to_none=True)
                xb = x[idx].contiguous(memory_format=torch.channels_last)
                F.cross_entropy(m(xb), y[idx]).backward()
                opt.step()
        return run
    run, config = configured(task, model, step, ", channels_last")
    res = common.measure(run, task["runs"], task.get("warmup", 1))
    res.update(items=n, config=config)
    return res


def info(task):
    import time
    a = torch.rand(2048, 784)
    b = torch.rand(784, 2048)
    torch.mm(a, b)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.3:
        torch.mm(a, b)
        reps += 1
    gflops = 2.0 * 2048 * 2048 * 784 * reps / (time.perf_counter() - t0) / 1e9
    import re
    cfg = torch.__config__.show()
    blas = []
    for pat in (r"BLAS_INFO=(\w+)", r"(Intel\(R\) oneAPI Math Kernel Library Version [\w.]+)",
                r"(Intel\(R\) MKL-DNN v[\d.]+)", r"CPU capability usage: (\w+)"):
        m = re.search(pat, cfg)
        if m:
            blas.append(m.group(0) if "capability" in pat or "BLAS" in pat else m.group(1))
    return {"version": torch.__version__, "threads": torch.get_num_threads(), "blas": blas,
            "sgemm_gflops_2048x2048x784": gflops}


HANDLERS = {"train": train, "infer": infer, "conv_train": conv_train, "info": info}

if __name__ == "__main__":
    common.main(HANDLERS)

#!/usr/bin/env python3
"""
PyTorch (CPU) peer benchmark for ptp-ts: one PTP distillation training step
of a gated-LoRA O-PTP student of the stories260K Llama teacher, with random
weights of the same shapes (dim 64, 5 layers, 8 query heads, 4 KV heads of
size 8, SwiGLU hidden 172, vocab 512, RMSNorm eps 1e-5, interleaved RoPE with
theta 10000, untied classifier).

A step:
  * S sequences of N random tokens; the frozen teacher runs a no-grad causal
    forward over each to get every layer's rotated keys and values;
  * W windows of L slots per sequence at random starts s in [1, N-L]; slot j
    of a window sits at position s+j-1, its input is the anchor embedding of a
    random u in [0, 1) (linear interpolation between the two nearest of three
    learned anchors at u = 0, 0.5, 1), it runs through the teacher with LoRA
    (rank r, scale alpha/r = 1) on all 7 linears of every layer, and attends to
    the context keys [0, s) of its sequence plus its window's slots 0..j (GQA);
  * final RMSNorm, classifier, cross-entropy against random targets, mean over
    the slots; backward; AdamW (lr 1e-3) on the LoRA A/B and the anchors.

All S*W*L slots of a step are the rows of one batched pass: one matrix
product per frozen weight (same-input weights concatenated once at setup:
wq|wk|wv and w1|w3) plus the two LoRA products (x A^T, then B), all with
S*W*L rows. Attention takes one additive mask over [context keys | window
keys], built once per step: the context scores of a sequence are one GEMM per
KV head (its two query heads stacked as rows), the tiny per-window scores a
broadcast multiply-reduce.

Run with Debian's PyTorch:
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OPENBLAS_CORETYPE=SkylakeX \
    /usr/bin/python3 bench/train-step-torch.py --threads 1 --json
  /usr/bin/python3 bench/train-step-torch.py --check     # math self-test

OMP_WAIT_POLICY defaults to PASSIVE here (see below); OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS default to --threads. The reported step time is the wall
median and includes the teacher context forward and AdamW; flopsPerSlot counts
the student forward + backward only (formula in flops_per_slot).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

from bench_args import parse_strict

# ---- model shapes (stories260K) --------------------------------------------
DIM = 64
N_LAYERS = 5
N_HEADS = 8
N_KV_HEADS = 4
HEAD = DIM // N_HEADS  # 8
KV_DIM = N_KV_HEADS * HEAD  # 32
GROUP = N_HEADS // N_KV_HEADS  # 2 query heads per KV head
HIDDEN = 172
VOCAB = 512
EPS = 1e-5
THETA = 10000.0

# (in, out) of the 7 linears of a layer, in the order wq, wk, wv, wo, w1, w2, w3
LINEARS = {
    "wq": (DIM, DIM),
    "wk": (DIM, KV_DIM),
    "wv": (DIM, KV_DIM),
    "wo": (DIM, DIM),
    "w1": (DIM, HIDDEN),
    "w2": (HIDDEN, DIM),
    "w3": (DIM, HIDDEN),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description="PTP distillation train step (gated-LoRA O-PTP student of stories260K), PyTorch CPU peer benchmark", allow_abbrev=False)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (torch.set_num_threads); interop threads are set to 1")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--seqs", type=int, default=2, help="sequences per step (S)")
    p.add_argument("--windows", type=int, default=32, help="windows per sequence (W)")
    p.add_argument("--window", type=int, default=8, help="slots per window (L)")
    p.add_argument("--rank", type=int, default=32, help="LoRA rank r (alpha = r, scale 1)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per sequence (N)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print exactly one JSON line")
    p.add_argument("--check", action="store_true", help="self-test: batched masked attention and student loss/gradients vs per-slot loops, then exit")
    a = parse_strict(p, argv)
    if a.threads < 1 or a.steps < 1 or a.warmup < 0 or a.seqs < 1 or a.windows < 1 or a.window < 1 or a.rank < 1:
        p.error("threads, steps, seqs, windows, window and rank must be >= 1, warmup >= 0")
    if a.seq_len < a.window + 1:
        p.error("--seq-len must be at least --window + 1 (window starts are drawn from [1, N-L])")
    return a


ARGS = parse_args(sys.argv[1:])

# Thread counts must be fixed before torch (and the BLAS it loads) starts its
# pools; the environment only gets defaults the caller has not set.
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
# On a shared machine libgomp's default spin-waiting makes a 2-thread step
# collapse whenever the other thread is descheduled (measured: 3.5 s instead of
# 0.2 s per step at load 10 on 2 cores); sleeping waiters avoid that. A caller
# who wants the spinning default sets OMP_WAIT_POLICY=ACTIVE.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # one clear line, no traceback
    print(f"train-step-torch.py: PyTorch is not importable by {sys.executable} ({e}); run it with Debian's /usr/bin/python3 (python3-torch)", file=sys.stderr)
    sys.exit(2)

torch.set_num_threads(ARGS.threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass  # already set (only possible when imported twice)
torch.set_flush_denormal(True)


# ---- FLOP count --------------------------------------------------------------
def flops_per_slot(r, N, L):
    """
    Analytic FLOPs of the student's forward + backward for one slot (2 per
    multiply-add; elementwise work, norms, RoPE, softmax and AdamW not counted):

      per layer, over the 7 linears (in, out):
        frozen teacher weight:  forward 2*in*out, backward 2*in*out (input gradient only)
        LoRA (x A^T) B^T:       forward 2*r*(in+out), backward 4*r*(in+out) (dA, dB, dx)
      per layer, attention with k visible keys of which kw are the window's:
        forward  QK^T + PV:     4*H*hs*k
        backward dQ + dP:       4*H*hs*k,  dK + dV (window keys only): 4*H*hs*kw
      classifier [V, D] (frozen): forward 2*D*V, backward 2*D*V

      flops/slot = nL * (4*sum(in*out) + 6*r*sum(in+out) + 8*H*hs*kbar + 4*H*hs*kwbar) + 4*D*V

    with the mean over uniform starts s in [1, N-L] and j in [0, L): slot j sees
    k = s + j + 1 keys, kbar = N/2 + 1, and kw = j + 1, kwbar = (L+1)/2. These are
    the keys the math needs; the dense masked products compute more (reported
    separately as "computed").
    """
    sum_io = sum(i * o for i, o in LINEARS.values())
    sum_ipo = sum(i + o for i, o in LINEARS.values())
    kbar = N / 2 + 1
    kwbar = (L + 1) / 2
    per_layer = 4 * sum_io + 6 * r * sum_ipo + 8 * N_HEADS * HEAD * kbar + 4 * N_HEADS * HEAD * kwbar
    return N_LAYERS * per_layer + 4 * DIM * VOCAB


def computed_flops_per_slot(r, C, L):
    """The same count for what the batched pass actually multiplies: every slot against all C context columns and all L window columns."""
    sum_io = sum(i * o for i, o in LINEARS.values())
    sum_ipo = sum(i + o for i, o in LINEARS.values())
    per_layer = 4 * sum_io + 6 * r * sum_ipo + 8 * N_HEADS * HEAD * (C + L) + 4 * N_HEADS * HEAD * L
    return N_LAYERS * per_layer + 4 * DIM * VOCAB


# ---- model -------------------------------------------------------------------
class Teacher:
    """Frozen random weights with the stories260K shapes; same-input projections stored concatenated (wq|wk|wv, w1|w3)."""

    def __init__(self, gen):
        def w(out, inp):
            return torch.randn(out, inp, generator=gen) / math.sqrt(inp)

        self.emb = torch.randn(VOCAB, DIM, generator=gen)
        self.layers = []
        for _ in range(N_LAYERS):
            wq, wk, wv = w(DIM, DIM), w(KV_DIM, DIM), w(KV_DIM, DIM)
            w1, w3 = w(HIDDEN, DIM), w(HIDDEN, DIM)
            self.layers.append({
                "attn_norm": 1 + 0.1 * torch.randn(DIM, generator=gen),
                "ffn_norm": 1 + 0.1 * torch.randn(DIM, generator=gen),
                "wqkv": torch.cat([wq, wk, wv]).contiguous(),  # [DIM + 2*KV_DIM, DIM]
                "wo": w(DIM, DIM),
                "w13": torch.cat([w1, w3]).contiguous(),  # [2*HIDDEN, DIM]
                "w2": w(DIM, HIDDEN),
            })
        self.norm = 1 + 0.1 * torch.randn(DIM, generator=gen)
        self.cls = w(VOCAB, DIM)


class Student:
    """LoRA A [r, in], B [out, r] on all 7 linears of every layer, and the anchors [3, dim]; A's of same-input linears stored concatenated."""

    def __init__(self, gen, r):
        self.r = r
        self.scale = 1.0  # alpha / r with alpha = r
        self.anchors = (torch.randn(3, DIM, generator=gen) * 0.5).requires_grad_()
        self.layers = []
        for _ in range(N_LAYERS):
            def a(inp, rows):
                return (torch.randn(rows, inp, generator=gen) / math.sqrt(inp)).requires_grad_()

            def b(out):
                return (torch.randn(out, r, generator=gen) * 0.02).requires_grad_()

            self.layers.append({
                "a_qkv": a(DIM, 3 * r),  # rows [A_q; A_k; A_v]
                "b_q": b(DIM), "b_k": b(KV_DIM), "b_v": b(KV_DIM),
                "a_o": a(DIM, r), "b_o": b(DIM),
                "a_13": a(DIM, 2 * r),  # rows [A_1; A_3]
                "b_1": b(HIDDEN), "b_3": b(HIDDEN),
                "a_2": a(HIDDEN, r), "b_2": b(DIM),
            })

    def parameters(self):
        ps = [self.anchors]
        for l in self.layers:
            ps.extend(l.values())
        return ps


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope_tables(positions):
    """cos, sin [len(positions), HEAD/2] for dims (2i, 2i+1) rotated by pos * theta^(-2i/hs)."""
    inv = THETA ** (-torch.arange(0, HEAD, 2, dtype=torch.float64) / HEAD)
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope(x, cos, sin):
    """x [R, heads, HEAD] with per-row cos/sin [R, 1, HEAD/2]: interleaved pairs (x0, x1) -> (x0 c - x1 s, x0 s + x1 c)."""
    R, h, _ = x.shape
    p = x.view(R, h, HEAD // 2, 2)
    x0, x1 = p[..., 0], p[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).view(R, h, HEAD)


@torch.no_grad()
def teacher_context(t, tokens):
    """
    No-grad causal teacher forward over one sequence [N]; returns per layer the
    rotated keys and the values, each [KV_HEADS, N, HEAD]. The last layer stops
    after its K/V projections (nothing after them is used).
    """
    N = tokens.shape[0]
    x = t.emb[tokens]
    cos, sin = rope_tables(torch.arange(N))
    cos, sin = cos[:, None, :], sin[:, None, :]
    causal = torch.full((N, N), float("-inf")).triu_(1).repeat(GROUP, 1).expand(N_KV_HEADS, GROUP * N, N)  # rows (g, n)
    kv = []
    for li, l in enumerate(t.layers):
        h = rmsnorm(x, l["attn_norm"])
        if li == N_LAYERS - 1:
            kvp = F.linear(h, l["wqkv"][DIM:])
            k, v = kvp[:, :KV_DIM], kvp[:, KV_DIM:]
            k = rope(k.reshape(N, N_KV_HEADS, HEAD), cos, sin)
            kv.append((k.transpose(0, 1).contiguous(), v.reshape(N, N_KV_HEADS, HEAD).transpose(0, 1).contiguous()))
            break
        qkv = F.linear(h, l["wqkv"])
        q = rope(qkv[:, :DIM].reshape(N, N_HEADS, HEAD), cos, sin)
        k = rope(qkv[:, DIM:DIM + KV_DIM].reshape(N, N_KV_HEADS, HEAD), cos, sin)
        v = qkv[:, DIM + KV_DIM:].reshape(N, N_KV_HEADS, HEAD)
        kT = k.transpose(0, 1).contiguous()  # [KVH, N, hs]
        vT = v.transpose(0, 1).contiguous()
        kv.append((kT, vT))
        # GQA: query heads of one KV head as extra rows: [KVH, G*N, hs]
        qg = (q * (1.0 / math.sqrt(HEAD))).view(N, N_KV_HEADS, GROUP, HEAD).permute(1, 2, 0, 3).reshape(N_KV_HEADS, GROUP * N, HEAD)
        sc = torch.baddbmm(causal, qg, kT.transpose(1, 2))
        o = torch.bmm(torch.softmax(sc, -1), vT)  # [KVH, G*N, hs]
        o = o.view(N_KV_HEADS, GROUP, N, HEAD).permute(2, 0, 1, 3).reshape(N, DIM)
        x = x + F.linear(o, l["wo"])
        h = rmsnorm(x, l["ffn_norm"])
        g = F.linear(h, l["w13"])
        x = x + F.linear(F.silu(g[:, :HIDDEN]) * g[:, HIDDEN:], l["w2"])
    return kv


class StepLayout:
    """
    Everything a step's student pass needs that does not depend on the
    weights, built once per step. Slot rows are ordered (seq, window, slot);
    inside attention the rows of a sequence are (KV head, window, group head,
    slot), so the context scores of a sequence are one [W*G*L, hs] x [hs, C]
    product per KV head; the window scores ([G*L, hs] x [hs, L] per window and
    KV head) are a broadcast multiply-reduce.
    """

    def __init__(self, starts, us, S, W, L):
        # starts [S, W] (int64, in [1, N-L]), us [S, W, L] in [0, 1)
        self.S, self.W, self.L = S, W, L
        R = S * W * L
        self.C = C = int(starts.max())  # context columns the windows need
        j = torch.arange(L)
        pos = (starts[:, :, None] + j - 1).reshape(R)
        cos, sin = rope_tables(pos)
        self.cos, self.sin = cos[:, None, :], sin[:, None, :]
        # anchor interpolation as a constant [R, 3] mixing matrix: x = M @ anchors
        u = us.reshape(R)
        lo = (u >= 0.5).long()  # segment [0, 0.5) -> anchors 0,1; [0.5, 1) -> anchors 1,2
        t = (u - 0.5 * lo) * 2
        mix = torch.zeros(R, 3)
        rows = torch.arange(R)
        mix[rows, lo] = 1 - t
        mix[rows, lo + 1] = t
        self.mix = mix
        # additive mask [S, 1, W, 1, L, C + L]: context key c visible iff c < s_w; window key i iff i <= j
        ctx = torch.arange(C)[None, None, None, :] < starts[:, :, None, None]  # [S, W, 1, C]
        ctx = ctx.expand(S, W, L, C)
        win = (torch.arange(L)[None, :] <= j[:, None]).expand(S, W, L, L)  # [S, W, L(j), L(i)]
        vis = torch.cat([ctx, win], dim=-1)
        mask = torch.zeros(S, W, L, C + L).masked_fill_(~vis, float("-inf"))
        self.mask = mask[:, None, :, None, :, :]  # broadcast over KV heads and group heads


def attention(q, k, v, ctx_k, ctx_v, lay):
    """
    q [R, H, hs] (already scaled by 1/sqrt(hs)), k, v [R, KVH, hs] of the slot
    rows; ctx_k, ctx_v [S, KVH, C, hs] (constants). Returns [R, H*hs].
    """
    S, W, L, C = lay.S, lay.W, lay.L, lay.C
    # rows (s, w, j) x heads (kv, g) -> [S, KVH, W, G, L, hs]
    qh = q.view(S, W, L, N_KV_HEADS, GROUP, HEAD).permute(0, 3, 1, 4, 2, 5).contiguous()
    kh = k.view(S, W, L, N_KV_HEADS, HEAD).permute(0, 3, 1, 2, 4)[:, :, :, None, None]  # [S, KVH, W, 1, 1, L, hs]
    vh = v.view(S, W, L, N_KV_HEADS, HEAD).permute(0, 3, 1, 2, 4)[:, :, :, None, None]  # [S, KVH, W, 1, 1, L, hs]
    sc_ctx = torch.matmul(qh.view(S, N_KV_HEADS, W * GROUP * L, HEAD), ctx_k.transpose(-1, -2))  # [S, KVH, W*G*L, C]
    # The window part is S*KVH*W products of [G*L, hs] x [hs, L]: far too small for a GEMM each
    # (torch's CPU bmm calls BLAS once per batch entry), so broadcast-multiply and reduce over hs.
    sc_win = (qh[..., None, :] * kh).sum(-1)  # [S, KVH, W, G, L(j), L(i)]
    sc = torch.cat([sc_ctx.view(S, N_KV_HEADS, W, GROUP, L, C), sc_win], dim=-1)
    p_ctx, p_win = torch.split(torch.softmax(sc + lay.mask, dim=-1), [C, L], dim=-1)  # [S, KVH, W, G, L, C+L]
    o = torch.matmul(p_ctx.reshape(S, N_KV_HEADS, W * GROUP * L, C), ctx_v).view(S, N_KV_HEADS, W, GROUP * L, HEAD)
    o = o.view(S, N_KV_HEADS, W, GROUP, L, HEAD) + (p_win[..., None] * vh).sum(-2)
    # back to rows (s, w, j) x heads (kv, g)
    return o.view(S, N_KV_HEADS, W, GROUP, L, HEAD).permute(0, 2, 4, 1, 3, 5).reshape(S * W * L, DIM)


def student_loss(t, st, lay, ctx_kv, targets):
    """Mean cross-entropy of the student's slot rows. ctx_kv[layer] = (K, V) each [S, KVH, C, hs]."""
    R = lay.mix.shape[0]
    r = st.r
    x = lay.mix @ st.anchors  # [R, DIM] anchor interpolation
    qscale = 1.0 / math.sqrt(HEAD)
    for l, a in zip(t.layers, st.layers):
        h = rmsnorm(x, l["attn_norm"])
        # split (not slicing) so that backward concatenates the gradients instead of zero-filling per slice
        bq, bk, bv = F.linear(h, l["wqkv"]).split([DIM, KV_DIM, KV_DIM], dim=1)
        hq, hk, hv = F.linear(h, a["a_qkv"]).split(r, dim=1)  # x A^T for A_q, A_k, A_v
        q = torch.addmm(bq, hq, a["b_q"].t())
        k = torch.addmm(bk, hk, a["b_k"].t())
        v = torch.addmm(bv, hv, a["b_v"].t())
        q = rope(q.view(R, N_HEADS, HEAD), lay.cos, lay.sin) * qscale
        k = rope(k.view(R, N_KV_HEADS, HEAD), lay.cos, lay.sin)
        ck, cv = ctx_kv.pop(0)
        o = attention(q, k, v.view(R, N_KV_HEADS, HEAD), ck, cv, lay)
        x = x + torch.addmm(F.linear(o, l["wo"]), F.linear(o, a["a_o"]), a["b_o"].t())
        h = rmsnorm(x, l["ffn_norm"])
        b1, b3 = F.linear(h, l["w13"]).split(HIDDEN, dim=1)
        h1, h3 = F.linear(h, a["a_13"]).split(r, dim=1)
        g1 = torch.addmm(b1, h1, a["b_1"].t())
        g3 = torch.addmm(b3, h3, a["b_3"].t())
        m = F.silu(g1) * g3
        x = x + torch.addmm(F.linear(m, l["w2"]), F.linear(m, a["a_2"]), a["b_2"].t())
    logits = F.linear(rmsnorm(x, t.norm), t.cls)
    return F.cross_entropy(logits, targets)


def make_batch(gen, S, W, L, N):
    tokens = torch.randint(0, VOCAB, (S, N), generator=gen)
    starts = torch.randint(1, N - L + 1, (S, W), generator=gen)  # s in [1, N-L]
    us = torch.rand(S, W, L, generator=gen)
    targets = torch.randint(0, VOCAB, (S * W * L,), generator=gen)
    return tokens, starts, us, targets


def train_step(t, st, opt, batch, S, W, L):
    tokens, starts, us, targets = batch
    lay = StepLayout(starts, us, S, W, L)
    per_seq = [teacher_context(t, tokens[i]) for i in range(S)]
    C = lay.C
    ctx_kv = [(torch.stack([per_seq[i][li][0][:, :C] for i in range(S)]), torch.stack([per_seq[i][li][1][:, :C] for i in range(S)])) for li in range(N_LAYERS)]
    loss = student_loss(t, st, lay, ctx_kv, targets)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), C


def loaded_blas():
    """Paths of the BLAS libraries mapped into this process (read after a matmul has run)."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    path = parts[-1]
                    base = os.path.basename(path).lower()
                    if ("blas" in base or "mkl" in base) and path not in found:
                        found.append(path)
    except OSError:
        return "unknown (/proc/self/maps unreadable)"
    if not found:
        return "none mapped"
    desc = ", ".join(found)
    # OpenBLAS names the kernel set it picked (OPENBLAS_CORETYPE or its CPU detection)
    for path in found:
        if "openblas" in os.path.basename(path).lower():
            try:
                import ctypes
                lib = ctypes.CDLL(path)  # already mapped: the same handle
                lib.openblas_get_corename.restype = ctypes.c_char_p
                desc += f" (OpenBLAS core {lib.openblas_get_corename().decode()}, {lib.openblas_get_num_threads()} thread(s))"
            except (OSError, AttributeError):
                pass
            break
    return desc


# ---- self-test ---------------------------------------------------------------
def reference_loss(t, st, tokens, starts, us, targets, L):
    """Per-slot loops, float64, no batching: each slot's attention over the explicit list of keys it may see."""
    S, W = starts.shape
    d = torch.float64
    r = st.r
    anchors = st.anchors.to(d)

    def lin(x, w):
        return x @ w.to(d).t()

    def rope_one(vec, pos):  # vec [hs]
        out = vec.clone()
        for i in range(HEAD // 2):
            ang = pos * THETA ** (-2.0 * i / HEAD)
            c, s = math.cos(ang), math.sin(ang)
            out[2 * i] = vec[2 * i] * c - vec[2 * i + 1] * s
            out[2 * i + 1] = vec[2 * i] * s + vec[2 * i + 1] * c
        return out

    def norm(x, w):
        return x / torch.sqrt((x * x).mean() + EPS) * w.to(d)

    losses = []
    for si in range(S):
        ctx = teacher_context(t, tokens[si])
        for w in range(W):
            s = int(starts[si, w])
            xs = []
            for j in range(L):
                u = float(us[si, w, j])
                lo = 0 if u < 0.5 else 1
                f = (u - 0.5 * lo) * 2
                xs.append(anchors[lo] * (1 - f) + anchors[lo + 1] * f)
            for li, (l, a) in enumerate(zip(t.layers, st.layers)):
                wq, wk, wv = l["wqkv"][:DIM], l["wqkv"][DIM:DIM + KV_DIM], l["wqkv"][DIM + KV_DIM:]
                aq, ak, av = a["a_qkv"][:r], a["a_qkv"][r:2 * r], a["a_qkv"][2 * r:]
                qs, ks, vs = [], [], []
                for j in range(L):
                    h = norm(xs[j], l["attn_norm"])
                    qv = lin(h, wq) + lin(lin(h, aq), a["b_q"])
                    kv_ = lin(h, wk) + lin(lin(h, ak), a["b_k"])
                    vv = lin(h, wv) + lin(lin(h, av), a["b_v"])
                    pos = s + j - 1
                    qs.append(torch.stack([rope_one(qv[hh * HEAD:(hh + 1) * HEAD], pos) for hh in range(N_HEADS)]))
                    ks.append(torch.stack([rope_one(kv_[kh * HEAD:(kh + 1) * HEAD], pos) for kh in range(N_KV_HEADS)]))
                    vs.append(vv.view(N_KV_HEADS, HEAD))
                ck, cv = ctx[li]
                new = []
                for j in range(L):
                    heads = []
                    for hh in range(N_HEADS):
                        kh = hh // GROUP
                        keys = [ck[kh, c].to(d) for c in range(s)] + [ks[i][kh] for i in range(j + 1)]
                        vals = [cv[kh, c].to(d) for c in range(s)] + [vs[i][kh] for i in range(j + 1)]
                        sc = torch.stack([qs[j][hh] @ kk for kk in keys]) / math.sqrt(HEAD)
                        p = torch.softmax(sc, 0)
                        heads.append(sum(p[i] * vals[i] for i in range(len(vals))))
                    o = torch.cat(heads)
                    x = xs[j] + lin(o, l["wo"]) + lin(lin(o, a["a_o"]), a["b_o"])
                    h = norm(x, l["ffn_norm"])
                    g1 = lin(h, l["w13"][:HIDDEN]) + lin(lin(h, a["a_13"][:r]), a["b_1"])
                    g3 = lin(h, l["w13"][HIDDEN:]) + lin(lin(h, a["a_13"][r:]), a["b_3"])
                    m = g1 * torch.sigmoid(g1) * g3
                    new.append(x + lin(m, l["w2"]) + lin(lin(m, a["a_2"]), a["b_2"]))
                xs = new
            for j in range(L):
                logits = lin(norm(xs[j], t.norm), t.cls)
                tgt = int(targets[(si * W + w) * L + j])
                losses.append(torch.logsumexp(logits, 0) - logits[tgt])
    return torch.stack(losses).mean()


def self_test():
    gen = torch.Generator().manual_seed(1234)
    S, W, L, N, r = 2, 3, 4, 16, 4
    t = Teacher(gen)
    st = Student(gen, r)
    tokens, starts, us, targets = make_batch(gen, S, W, L, N)
    starts[0, 0] = 1  # extremes: one context key, and the last legal start
    starts[1, 2] = N - L
    lay = StepLayout(starts, us, S, W, L)
    C = lay.C
    ok = True

    # 1. batched masked attention vs a per-slot loop on random q, k, v and context
    R = S * W * L
    q = torch.randn(R, N_HEADS, HEAD, generator=gen)
    k = torch.randn(R, N_KV_HEADS, HEAD, generator=gen)
    v = torch.randn(R, N_KV_HEADS, HEAD, generator=gen)
    ck = torch.randn(S, N_KV_HEADS, C, HEAD, generator=gen)
    cv = torch.randn(S, N_KV_HEADS, C, HEAD, generator=gen)
    got = attention(q, k, v, ck, cv, lay)
    want = torch.empty(R, DIM)
    for si in range(S):
        for w in range(W):
            s = int(starts[si, w])
            for j in range(L):
                row = (si * W + w) * L + j
                for hh in range(N_HEADS):
                    kh = hh // GROUP
                    keys = torch.cat([ck[si, kh, :s], k[(si * W + w) * L:row + 1, kh]])
                    vals = torch.cat([cv[si, kh, :s], v[(si * W + w) * L:row + 1, kh]])
                    p = torch.softmax(keys @ q[row, hh], 0)
                    want[row, hh * HEAD:(hh + 1) * HEAD] = p @ vals
    err = (got - want).abs().max().item()
    print(f"check attention: max |batched - per-slot loop| = {err:.2e} (tolerance 1e-5)")
    ok &= err <= 1e-5

    # 2. student loss and gradients vs a float64 per-slot reference
    per_seq = [teacher_context(t, tokens[i]) for i in range(S)]
    ctx_kv = [(torch.stack([per_seq[i][li][0][:, :C] for i in range(S)]), torch.stack([per_seq[i][li][1][:, :C] for i in range(S)])) for li in range(N_LAYERS)]
    loss = student_loss(t, st, lay, ctx_kv, targets)
    grads = torch.autograd.grad(loss, st.parameters())
    ref = reference_loss(t, st, tokens, starts, us, targets, L)
    ref_grads = torch.autograd.grad(ref, st.parameters())
    lerr = abs(loss.item() - ref.item())
    gerr = max(((g.double() - rg).abs().max() / (rg.abs().max() + 1e-12)).item() for g, rg in zip(grads, ref_grads))
    zero = [i for i, g in enumerate(grads) if g.abs().max().item() == 0]
    print(f"check student: loss {loss.item():.6f} vs reference {ref.item():.6f}, |diff| = {lerr:.2e} (tolerance 1e-5); max relative gradient error {gerr:.2e} (tolerance 1e-4); all-zero gradients: {len(zero)}")
    ok &= lerr <= 1e-5 and gerr <= 1e-4 and not zero

    # 3. the teacher context K/V vs a float64 per-position loop
    tok = tokens[0]
    kv = teacher_context(t, tok)
    d = torch.float64
    x = t.emb[tok].to(d)
    pos = torch.arange(N, dtype=d)[:, None]
    ang = pos * torch.tensor([THETA ** (-2.0 * i / HEAD) for i in range(HEAD // 2)], dtype=d)[None, :]
    c, sn = torch.cos(ang), torch.sin(ang)  # [N, HEAD/2]

    def rot(m):  # m [N, heads*HEAD], pairs (2i, 2i+1) of each head
        m = m.view(N, -1, HEAD // 2, 2)
        a0, a1 = m[..., 0], m[..., 1]
        return torch.stack((a0 * c[:, None] - a1 * sn[:, None], a0 * sn[:, None] + a1 * c[:, None]), -1).view(N, -1, HEAD)

    kerr = 0.0
    for li, l in enumerate(t.layers):
        hn = x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * l["attn_norm"].to(d)
        wqkv = l["wqkv"].to(d)
        qq = rot(hn @ wqkv[:DIM].t())
        kk = rot(hn @ wqkv[DIM:DIM + KV_DIM].t())
        vv = (hn @ wqkv[DIM + KV_DIM:].t()).view(N, N_KV_HEADS, HEAD)
        kerr = max(kerr, (kv[li][0].to(d) - kk.transpose(0, 1)).abs().max().item(), (kv[li][1].to(d) - vv.transpose(0, 1)).abs().max().item())
        o = torch.zeros(N, N_HEADS, HEAD, dtype=d)
        for n in range(N):
            for hh in range(N_HEADS):
                pr = torch.softmax(kk[:n + 1, hh // GROUP] @ qq[n, hh] / math.sqrt(HEAD), 0)
                o[n, hh] = pr @ vv[:n + 1, hh // GROUP]
        x = x + o.view(N, DIM) @ l["wo"].to(d).t()
        hn = x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * l["ffn_norm"].to(d)
        g1, g3 = hn @ l["w13"][:HIDDEN].to(d).t(), hn @ l["w13"][HIDDEN:].to(d).t()
        x = x + (g1 * torch.sigmoid(g1) * g3) @ l["w2"].to(d).t()
    print(f"check teacher context K/V: max |batched - per-position loop| = {kerr:.2e} (tolerance 1e-5)")
    ok &= kerr <= 1e-5

    # 4. the anchor mix rows
    ok_mix = bool(torch.allclose(lay.mix.sum(1), torch.ones(R)))
    print(f"check anchor mix rows sum to 1: {ok_mix}")
    ok &= ok_mix
    print("check: PASS" if ok else "check: FAIL")
    return 0 if ok else 1


# ---- benchmark ---------------------------------------------------------------
def main():
    a = ARGS
    if a.check:
        sys.exit(self_test())
    S, W, L, N, r = a.seqs, a.windows, a.window, a.seq_len, a.rank
    gen = torch.Generator().manual_seed(a.seed)
    t = Teacher(gen)
    st = Student(gen, r)
    opt = torch.optim.AdamW(st.parameters(), lr=1e-3, foreach=True)
    batches = [make_batch(gen, S, W, L, N) for _ in range(a.warmup + a.steps)]

    times, cpu_times, computed = [], [], []
    blas = None
    for i, batch in enumerate(batches):
        c0, t0 = time.process_time(), time.perf_counter()
        loss, C = train_step(t, st, opt, batch, S, W, L)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if blas is None:
            blas = loaded_blas()
        if not math.isfinite(loss.item()):
            print(f"train-step-torch.py: non-finite loss at step {i}", file=sys.stderr)
            sys.exit(1)
        if i >= a.warmup:
            times.append(dt)
            cpu_times.append(dc)
            computed.append(C)

    R = S * W * L
    med = statistics.median(times)
    fps = flops_per_slot(r, N, L)
    result = {
        "threads": a.threads,
        "slotsPerStep": R,
        "stepsTimed": len(times),
        "medianStepSeconds": med,
        "slotsPerSecond": R / med,
        "gflopsPerSecond": fps * R / med / 1e9,
        "flopsPerSlot": fps,
        "blas": blas,
        "openblasCoretype": os.environ.get("OPENBLAS_CORETYPE"),
        "torch": torch.__version__,
    }
    if a.json:
        print(json.dumps(result))
        return
    cfps = statistics.mean(computed_flops_per_slot(r, c, L) for c in computed)
    print(f"PTP train step (O-PTP gated LoRA r={r}, stories260K shapes), PyTorch {torch.__version__}, {a.threads} thread(s)")
    print(f"  BLAS: {blas}; OPENBLAS_CORETYPE={result['openblasCoretype']}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print(f"  step: {S} seqs x {W} windows x {L} slots = {R} slots, seq len {N}; {len(times)} timed steps after {a.warmup} warmup")
    print(f"  median step {med * 1e3:.1f} ms (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}); {R / med:.0f} slots/s")
    print(f"  {fps / 1e6:.3f} MFLOP/slot (needed keys) -> {result['gflopsPerSecond']:.2f} GFLOP/s; "
          f"as computed (dense masked attention, mean C={statistics.mean(computed):.0f}): {cfps / 1e6:.3f} MFLOP/slot -> {cfps * R / med / 1e9:.2f} GFLOP/s")
    print(f"  median process CPU time per step {statistics.median(cpu_times) * 1e3:.1f} ms (all threads; below the wall time when the machine is shared)")
    print("  (step time includes the teacher context forward and AdamW; FLOPs count the student forward+backward only)")


if __name__ == "__main__":
    main()

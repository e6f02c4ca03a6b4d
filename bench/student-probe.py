#!/usr/bin/env python3
"""
A PyTorch probe of query C-PTP students of a llama2.c teacher (stories260K):
questions about what a student could learn, answered on CPU in minutes
without touching the TypeScript training engine. Not part of the library,
and its figures are teacher-forced estimates, not decoder runs
(bench/ptp-eval.ts gives those).

The student: the query layout of spec/ptp.md 2.2 (slot 0 is the teacher's
own row at the last known token; slot j >= 1 takes the anchor embedding of
u_{s+j-1}, or with --variant O also a second anchor table's embedding of its
own u_{s+j}), a gated LoRA on the teacher's 7 linears of every layer for the
slot rows, and optionally --extra E Llama blocks (the teacher's width) after
the teacher's layers, run by every row (context rows give them keys and
values; slot 0's logits stay the teacher's; with --extra-lite only the slot
rows run them and the context rows give them keys and values projected from
their final teacher state, as the library's extra blocks do, spec/ptp.md
2.4). --ctx-kv-rank R gives the context rows' keys and values, as the slot
rows see them, a rank-R LoRA of their own; --ctx-stream runs the context rows
a second time with a LoRA of their own and lets the slots see those keys and
values instead of the teacher's. With --extra-lite, --feedback table adds to
slot 1, before the extra blocks, a learned table's row for t_s (the
library's pick feedback, spec/ptp.md 2.5); --feedback gain uses a learned
[dim] gain on the teacher's embedding of t_s instead, --feedback table-all
adds the table's row to every slot of the window, --feedback chain adds to
every slot j >= 1 the row of t_{s+j-1} (the library's chained pick feedback:
in a call the draft of slot j - 1, the data's token whenever the slots
before were right, so the teacher-forced evaluation is exact for it too).
--skip-teacher (with those) lets the slot rows skip the teacher's layers: the
extra blocks become a draft head beside the teacher, whose wall-clock cost
would not grow with the teacher's. --train-records N trains
on the first N records only. --init starts from a student
adapter (ptp-student safetensors, query slot input, anchors; no extra
blocks).

Training: windows of the teacher's samples in a `ptp pregenerate` dataset,
each token's u drawn uniformly in its stored bin; C-PTP: KL to the
teacher's distribution at T; O-PTP: cross-entropy on the sampled token;
slot j weighted gamma^(j-1); AdamW with warm-up and cosine decay.

Evaluation (--held, a dataset of held-out prompts): a window at every
position of every completion, slot j's draft against the sampled token,
per --rule: "pick" (Pick(u, Q) at T), "tauX" (Pick(u, Q at temperature X))
or "argmax"; tokens per verify step = 2 + the leading correct slots 1..L-1
(L + 1 when all are right), and each slot's accuracy given the slots before
it were right. With RULES=r1,r2,... in the environment it only evaluates
--init under each rule and exits. With SPLIT=1 each evaluation also
prints slot 1's accuracy split by whether the token before it, t_s, was
the teacher's greedy token (a u-blind student can only be right after a
greedy one, and only as far as it predicts two tokens ahead). ALSO_RULES=r1,r2
adds each evaluation's tokens per verify step under those draft rules too;
a rule s1A/B drafts slot 1 by rule A and the later slots by rule B.

--order sorted asks whether the order of Pick's inverse CDF matters to a
student: every sampled token's u is drawn in its bin of the teacher's CDF
by descending probability (ties by lower id) instead of the library's
token-id order, and drafts pick in that order too. The samples are the
teacher's either way (any fixed inverse-CDF rule samples P exactly); only
which u picks which token changes. Those bins take the teacher over every
record (minutes); SORTED_CACHE=FILE keeps them for the next run.

  /usr/bin/python3 bench/student-probe.py --init demo/stories260K-student.safetensors \
    --train train8.ptpd --held held.ptpd [--extra E [--extra-init teacher] [--extra-lite [--feedback gain|table|table-all|chain]]] \
    [--ctx-kv-rank R | --ctx-stream] [--train-records N] \
    [--variant O --rule argmax] [--slot1-lora] \
    [--order id|sorted] [--steps N] [--lr LR] [--threads T] [--log FILE.jsonl]
"""
import argparse, json, math, os, struct, sys, time

from bench_args import parse_strict

ap = argparse.ArgumentParser(allow_abbrev=False)
ap.add_argument("--train", help="training dataset (ptp pregenerate); not needed with RULES")
ap.add_argument("--held", required=True, help="held-out dataset (ptp pregenerate) to evaluate on")
ap.add_argument("--model", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/models/stories260K.bin"))
ap.add_argument("--init", default=None, help="student safetensors to start from (LoRA + anchors)")
ap.add_argument("--extra", type=int, default=0)
ap.add_argument("--extra-hidden", type=int, default=172)
ap.add_argument("--extra-init", default="random")
ap.add_argument("--extra-lite", action="store_true", help="the extra blocks run on the slot rows only; the context rows give them keys and values projected from their final teacher state (no residual update)")
ap.add_argument("--window", type=int, default=8)
ap.add_argument("--windows", type=int, default=32)
ap.add_argument("--batch", type=int, default=2)
ap.add_argument("--rank", type=int, default=32)
ap.add_argument("--lr", type=float, default=2e-3)
ap.add_argument("--lr-extra", type=float, default=None)
ap.add_argument("--gamma", type=float, default=0.9)
ap.add_argument("--steps", type=int, default=2000)
ap.add_argument("--minutes", type=float, default=1e9)
ap.add_argument("--eval-every", type=int, default=1000)
ap.add_argument("--eval-windows", type=int, default=4000)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--temperature", type=float, default=0.7)
ap.add_argument("--no-lora", action="store_true", help="train only the anchors and extra blocks")
ap.add_argument("--log", default=None)
ap.add_argument("--variant", default="C")
ap.add_argument("--rule", default="pick")
ap.add_argument("--order", default="id", choices=["id", "sorted"], help="the order of Pick's inverse CDF: token id (the library's) or probability, descending (ties by id)")
ap.add_argument("--ctx-kv-rank", type=int, default=0, help="the context rows' keys and values as the slot rows see them get a LoRA of this rank (a side cache; the teacher's own rows are unchanged)")
ap.add_argument("--ctx-stream", action="store_true", help="the context rows run a second pass of the teacher with a LoRA of their own; the slot rows attend to its keys and values")
ap.add_argument("--train-records", type=int, default=0, help="train on the first N records of --train only (0: all), to see what more data would give")
ap.add_argument("--feedback", default=None, choices=["gain", "table", "table-all", "chain"], help="with --extra-lite: slot 1's row also reads t_s (the window's first pick, exact in a query student's call) before the extra blocks: gain * the teacher's embedding of t_s, or a learned table (zero to start); chain: every slot j >= 1 reads t_{s+j-1} through the table")
ap.add_argument("--skip-teacher", action="store_true", help="with --extra-lite and --feedback chain: the slot rows skip the teacher's layers (and so its LoRA) and go straight into the extra blocks, which read the context rows' final teacher states: a draft head that runs beside the teacher, not inside its call; the feedback table starts as the teacher's token embedding")
ap.add_argument("--slot1-lora", action="store_true", help="slot 1 gets a LoRA of its own (a copy of --init's to start), the other slots keep theirs")
A = parse_strict(ap, sys.argv[1:])
os.environ.setdefault("OMP_NUM_THREADS", str(A.threads))
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(A.threads)
torch.manual_seed(A.seed)
rng = np.random.default_rng(A.seed)
T = A.temperature


# ---- teacher ----------------------------------------------------------------
def load_llama2c(path):
    b = open(path, "rb").read()
    dim, hidden, nl, nh, nkv, vocab, seq = struct.unpack("<7i", b[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    a = np.frombuffer(b, dtype=np.float32, offset=28)
    o = 0

    def take(*shape):
        nonlocal o
        n = int(np.prod(shape))
        t = torch.from_numpy(a[o:o + n].copy()).view(*shape)
        o += n
        return t

    hs = dim // nh
    kvd = nkv * hs
    W = {"emb": take(vocab, dim), "att_norm": take(nl, dim), "wq": take(nl, dim, dim), "wk": take(nl, kvd, dim),
         "wv": take(nl, kvd, dim), "wo": take(nl, dim, dim), "ffn_norm": take(nl, dim), "w1": take(nl, hidden, dim),
         "w2": take(nl, dim, hidden), "w3": take(nl, hidden, dim), "norm": take(dim)}
    o += seq * hs // 2 * 2
    W["cls"] = W["emb"] if shared else take(vocab, dim)
    cfg = dict(dim=dim, hidden=hidden, nl=nl, nh=nh, nkv=nkv, vocab=vocab, seq=seq, hs=hs, kvd=kvd)
    return cfg, W


C, TW = load_llama2c(A.model)
D, H, KVH, HS = C["dim"], C["nh"], C["nkv"], C["hs"]
EPS = 1e-5


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope_tables(pos):
    inv = 10000.0 ** (-torch.arange(0, HS, 2, dtype=torch.float64) / HS)
    ang = pos.to(torch.float64)[..., None] * inv
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope(x, cos, sin):  # x [B, R, h, HS], cos [B, R, 1, HS/2]
    p = x.view(*x.shape[:-1], HS // 2, 2)
    x0, x1 = p[..., 0], p[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).view(x.shape)


def attend(q, k, v, mask):
    """q [B, R, H, HS], k/v [B, Rk, KVH, HS], mask bool [B, R, Rk] -> [B, R, D]."""
    B, R = q.shape[:2]
    k = k.repeat_interleave(H // KVH, dim=2)
    v = v.repeat_interleave(H // KVH, dim=2)
    sc = torch.einsum("brhd,bkhd->bhrk", q, k) / math.sqrt(HS)
    sc = sc.masked_fill(~mask[:, None], float("-inf"))
    p = torch.softmax(sc, -1)
    return torch.einsum("bhrk,bkhd->brhd", p, v).reshape(B, R, D)


def block(x, W, l, cos, sin, mask, kv_prefix=None, lora=None, gate=None, lora2=None, gate2=None):
    """One Llama block over rows x [B, R, D]. kv_prefix: (K, V) of earlier rows prepended (mask covers them).
    lora: dict name -> (A, B) applied where gate [B, R, 1] is 1. Returns (x, K, V) with this call's K/V."""

    def lin(name, h):
        y = h @ W[name][l].t()
        if lora is not None and name in lora:
            a, b = lora[name]
            y = y + gate * ((h @ a.t()) @ b.t())
        if lora2 is not None and name in lora2:
            a, b = lora2[name]
            y = y + gate2 * ((h @ a.t()) @ b.t())
        return y

    Bsz, R = x.shape[:2]
    h = rmsnorm(x, W["att_norm"][l])
    q = rope(lin("wq", h).view(Bsz, R, H, HS), cos, sin)
    k = rope(lin("wk", h).view(Bsz, R, KVH, HS), cos, sin)
    v = lin("wv", h).view(Bsz, R, KVH, HS)
    K, V = k, v
    if kv_prefix is not None:
        K = torch.cat([kv_prefix[0], k], 1)
        V = torch.cat([kv_prefix[1], v], 1)
    o = attend(q, K, V, mask)
    x = x + lin("wo", o)
    h = rmsnorm(x, W["ffn_norm"][l])
    m = F.silu(lin("w1", h)) * lin("w3", h)
    x = x + lin("w2", m)
    return x, k, v


# ---- data -------------------------------------------------------------------
def read_ptpd(path):
    b = open(path, "rb").read()
    assert b[:8] == b"PTP-DATA"
    n_meta = struct.unpack("<I", b[12:16])[0]
    o = 20 + n_meta
    recs = []
    while o < len(b):
        assert b[o:o + 4] == b"PTPR", o
        idx, p, n = struct.unpack("<3I", b[o + 4:o + 16])
        toks = np.frombuffer(b, np.int32, n, o + 16)
        left = np.frombuffer(b, np.float32, n - p, o + 16 + 4 * n)
        right = np.frombuffer(b, np.float32, n - p, o + 16 + 8 * n - 4 * p)
        recs.append((p, toks.astype(np.int64), left.copy(), right.copy()))
        o += 20 + 12 * n - 8 * p
    return recs


# ---- student ----------------------------------------------------------------
NAMES = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
SHAPE = {"wq": (D, D), "wk": (C["kvd"], D), "wv": (C["kvd"], D), "wo": (D, D), "w1": (C["hidden"], D), "w2": (D, C["hidden"]), "w3": (C["hidden"], D)}


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(b, np.float32, (e - s) // 4, 8 + n + s).copy()).view(*v["shape"])
    return out, h.get("__metadata__", {})


params_lora, params_extra = [], []
lora = [{} for _ in range(C["nl"])]
anchors = (torch.randn(3, D) * 0.5)
if A.init:
    st, meta = read_safetensors(A.init)
    assert meta["slot_input"] == "query" and meta["aux_kind"] == "anchors"
    scale = float(meta["alpha"]) / float(meta["rank"])
    anchors = st["aux.anchors"].clone()
    for l in range(C["nl"]):
        for nm in NAMES:
            lora[l][nm] = [st[f"layers.{l}.{nm}.lora_A"].clone(), st[f"layers.{l}.{nm}.lora_B"].clone() * scale]
else:
    for l in range(C["nl"]):
        for nm in NAMES:
            o, i = SHAPE[nm]
            lora[l][nm] = [torch.randn(A.rank, i) / math.sqrt(i), torch.zeros(o, A.rank)]
anchors.requires_grad_()
anchors_own = torch.zeros(3, D, requires_grad=True)
for l in range(C["nl"]):
    for nm in NAMES:
        for t in lora[l][nm]:
            t.requires_grad_(not A.no_lora)
            if not A.no_lora:
                params_lora.append(t)
LORA1 = None
if A.slot1_lora:
    LORA1 = [{nm: [t.detach().clone().requires_grad_() for t in lora[l][nm]] for nm in NAMES} for l in range(C["nl"])]
    for l in range(C["nl"]):
        for nm in NAMES:
            params_lora.extend(LORA1[l][nm])
params_lora.append(anchors)
if A.variant == "O":
    params_lora.append(anchors_own)

CKV = None
if A.ctx_kv_rank:
    r = A.ctx_kv_rank
    CKV = [{nm: [(torch.randn(r, D) / math.sqrt(D)).requires_grad_(), torch.zeros(C["kvd"], r, requires_grad=True)] for nm in ("wk", "wv")}
           for _ in range(C["nl"])]
    params_lora.extend(t for l in range(C["nl"]) for nm in ("wk", "wv") for t in CKV[l][nm])
CST = None
if A.ctx_stream:
    CST = [{nm: [(torch.randn(A.rank, SHAPE[nm][1]) / math.sqrt(SHAPE[nm][1])).requires_grad_(), torch.zeros(SHAPE[nm][0], A.rank, requires_grad=True)]
            for nm in NAMES} for _ in range(C["nl"])]
    params_lora.extend(t for l in range(C["nl"]) for nm in NAMES for t in CST[l][nm])

XW = None
if A.extra:
    hid = A.extra_hidden
    E = A.extra

    def rnd(*s):
        return (torch.randn(*s) / math.sqrt(s[-1])).requires_grad_()

    XW = {"att_norm": torch.ones(E, D).requires_grad_(), "ffn_norm": torch.ones(E, D).requires_grad_(),
          "wq": rnd(E, D, D), "wk": rnd(E, C["kvd"], D), "wv": rnd(E, C["kvd"], D), "wo": torch.zeros(E, D, D).requires_grad_(),
          "w1": rnd(E, hid, D), "w3": rnd(E, hid, D), "w2": torch.zeros(E, D, hid).requires_grad_()}
    if A.extra_init == "teacher":
        with torch.no_grad():
            for e in range(E):
                for nm in ["att_norm", "ffn_norm", "wq", "wk", "wv", "w1", "w3"]:
                    XW[nm][e].copy_(TW[nm][e % C["nl"]])
    params_extra = list(XW.values())
FB = None
if A.feedback == "gain":
    FB = torch.zeros(D, requires_grad=True)
elif A.feedback in ("table", "table-all", "chain"):
    FB = torch.zeros(C["vocab"], D, requires_grad=True)
if A.skip_teacher:
    if not (A.extra and A.extra_lite and A.feedback == "chain"):
        sys.exit("--skip-teacher needs --extra E, --extra-lite and --feedback chain (a slot row must read its token)")
    with torch.no_grad():
        FB.copy_(TW["emb"])
if FB is not None:
    params_extra.append(FB)

groups = [{"params": params_lora, "lr": A.lr}]
if params_extra:
    groups.append({"params": params_extra, "lr": A.lr_extra or A.lr})
opt = torch.optim.AdamW(groups, weight_decay=0.0)
for g in opt.param_groups:
    g["base_lr"] = g["lr"]


def embed_u(u, an=None):  # u [..] -> [.., D]
    an = anchors if an is None else an
    hi = (u >= 0.5).long()
    t = ((u - 0.5 * hi) * 2)[..., None]
    return an[hi] + t * (an[hi + 1] - an[hi])


# ---- one batch of windows ---------------------------------------------------
def build(recs, idxs, W, L, starts_fn):
    """Returns the tensors of a batch: context tokens, slot u inputs, targets, masks."""
    B = len(idxs)
    seqs = [recs[i] for i in idxs]
    N = max(len(s[1]) for s in seqs)
    S = W * (L - 1)
    tok = torch.zeros(B, N, dtype=torch.long)
    ctx_valid = torch.zeros(B, N, dtype=torch.bool)
    starts = torch.zeros(B, W, dtype=torch.long)
    uin = torch.zeros(B, W, L - 1)  # slot j (1..L-1) input u_{s+j-1}
    upick = torch.zeros(B, W, L - 1)  # slot j's own u_{s+j}
    tgt = torch.zeros(B, W, L - 1, dtype=torch.long)
    for b, (p, toks, left, right) in enumerate(seqs):
        n = len(toks)
        tok[b, :n] = torch.from_numpy(toks)
        ctx_valid[b, :n] = True
        u = np.zeros(n, np.float32)
        u[p:] = left + (right - left) * rng.random(n - p).astype(np.float32)
        u[p:] = np.minimum(u[p:], np.nextafter(right, 0, dtype=np.float32))
        u[p:] = np.maximum(u[p:], left)
        ss = starts_fn(p, n, W, L)
        for w, s in enumerate(ss):
            starts[b, w] = s
            for j in range(1, L):
                uin[b, w, j - 1] = float(u[s + j - 1])
                upick[b, w, j - 1] = float(u[s + j])
                tgt[b, w, j - 1] = int(toks[s + j])
    # masks
    ar = torch.arange(N)
    ctx_mask = (ar[None, :] <= ar[:, None])[None] & ctx_valid[:, None, :]  # [B, N, N]
    ctx_mask = ctx_mask | torch.eye(N, dtype=torch.bool)[None]
    jj = torch.arange(1, L)
    # slot rows ordered (w, j)
    s_flat = starts[:, :, None].expand(B, W, L - 1)  # [B, W, L-1]
    slot_ctx = ar[None, None, None, :] <= (s_flat[..., None] - 1)  # sees context [0, s-1]
    slot_ctx = slot_ctx.reshape(B, S, N)
    wsame = torch.eye(W, dtype=torch.bool)[:, None, :, None]  # [W,1,W,1]
    jle = (jj[None, :] <= jj[:, None])[None, :, None, :]  # [1, L-1(j), 1, L-1(i)]
    slot_slot = (wsame & jle).reshape(S, S)[None].expand(B, S, S)
    pos_slot = (s_flat - 1 + jj[None, None, :]).reshape(B, S)
    return dict(B=B, N=N, S=S, W=W, L=L, tok=tok, ctx_mask=ctx_mask, slot_ctx=slot_ctx, slot_slot=slot_slot,
                pos_slot=pos_slot, uin=uin.reshape(B, S), upick=upick.reshape(B, S), tgt=tgt.reshape(B, S), starts=starts)


def forward(bt):
    """Slot logits [B, S, V] and the teacher's logits at the slots' positions [B, S, V] (targets)."""
    B, N, S = bt["B"], bt["N"], bt["S"]
    pos_ctx = torch.arange(N)[None].expand(B, N)
    cc, sc_ = rope_tables(pos_ctx)
    cc, sc_ = cc[:, :, None], sc_[:, :, None]
    cs, ss = rope_tables(bt["pos_slot"])
    cs, ss = cs[:, :, None], ss[:, :, None]
    with torch.no_grad():
        x = TW["emb"][bt["tok"]]
        x0 = x
        kvs, xin = [], []
        for l in range(C["nl"]):
            xin.append(x)
            x, k, v = block(x, TW, l, cc, sc_, bt["ctx_mask"])
            kvs.append((k, v))
        x_ctx = x
        t_logits = rmsnorm(x, TW["norm"]) @ TW["cls"].t()  # [B, N, V]
    # teacher targets: P(t_{s+j}) is the row at position s+j-1
    tpos = bt["pos_slot"]
    tgt_logits = torch.gather(t_logits, 1, tpos[..., None].expand(B, S, t_logits.shape[-1]))
    xs = embed_u(bt["uin"])
    if A.variant == "O":
        xs = xs + embed_u(bt["upick"], anchors_own)
    gate = torch.ones(B, S, 1)
    gate1 = None
    if LORA1 is not None:
        # Rows are ordered (window, slot j = 1 .. L-1): slot 1 takes LORA1, the others the shared one.
        first = (torch.arange(S) % (bt["L"] - 1) == 0).float()[None, :, None].expand(B, S, 1)
        gate, gate1 = 1 - first, first
    mask_s = torch.cat([bt["slot_ctx"], bt["slot_slot"]], -1)
    if CKV is not None:  # side keys and values of the context rows, for the slot rows only
        side = []
        for l in range(C["nl"]):
            h = rmsnorm(xin[l], TW["att_norm"][l])
            a, b_ = CKV[l]["wk"]
            dk = rope(((h @ a.t()) @ b_.t()).view(B, N, KVH, HS), cc, sc_)
            a, b_ = CKV[l]["wv"]
            dv = ((h @ a.t()) @ b_.t()).view(B, N, KVH, HS)
            side.append((kvs[l][0] + dk, kvs[l][1] + dv))
        kvs = side
    if CST is not None:  # a second, trainable pass of the context rows; the slot rows see its keys and values
        side, xc = [], x0
        g1 = torch.ones(B, N, 1)
        for l in range(C["nl"]):
            xc, k, v = block(xc, TW, l, cc, sc_, bt["ctx_mask"], lora=CST[l], gate=g1)
            side.append((k, v))
        kvs = side
    for l in range(0 if A.skip_teacher else C["nl"]):
        xs, _, _ = block(xs, TW, l, cs, ss, mask_s, kv_prefix=kvs[l], lora={k: v for k, v in lora[l].items()}, gate=gate,
                         lora2=None if LORA1 is None else LORA1[l], gate2=gate1)
    if XW is not None and A.extra_lite:
        if FB is not None:  # slot 1 of each window reads t_s, the token at the window's start
            ts_tok = torch.gather(bt["tok"], 1, bt["starts"])  # [B, W]
            fb = TW["emb"][ts_tok] * FB if FB.dim() == 1 else FB[ts_tok]
            add = torch.zeros(B, bt["W"], bt["L"] - 1, D)
            if A.feedback == "table-all":  # every slot of the window reads t_s
                add[:] = fb[:, :, None]
            elif A.feedback == "chain":  # slot j reads t_{s+j-1}: the data's token, which is the call's draft whenever slots < j were right
                prev = bt["starts"][:, :, None] + torch.arange(bt["L"] - 1)[None, None, :]  # [B, W, L-1]
                add = FB[torch.gather(bt["tok"], 1, prev.reshape(B, -1)).view(B, bt["W"], bt["L"] - 1)]
            else:
                add[:, :, 0] = fb
            xs = xs + add.reshape(B, S, D)
        for e in range(A.extra):
            h = rmsnorm(x_ctx, XW["att_norm"][e])
            kc = rope((h @ XW["wk"][e].t()).view(B, N, KVH, HS), cc, sc_)
            vc = (h @ XW["wv"][e].t()).view(B, N, KVH, HS)
            xs, _, _ = block(xs, XW, e, cs, ss, mask_s, kv_prefix=(kc, vc))
    elif XW is not None:
        xa = torch.cat([x_ctx, xs], 1)
        ca, sa = torch.cat([cc, cs], 1), torch.cat([sc_, ss], 1)
        top = torch.cat([bt["ctx_mask"], torch.zeros(B, N, S, dtype=torch.bool)], -1)
        mask_a = torch.cat([top, mask_s], 1)
        for e in range(A.extra):
            xa, _, _ = block(xa, XW, e, ca, sa, mask_a)
        xs = xa[:, N:]
    logits = rmsnorm(xs, TW["norm"]) @ TW["cls"].t()
    return logits, tgt_logits, t_logits


def pick(u, probs):  # float32 CDF in --order, first i with u < F_i
    if A.order == "sorted":
        sp, perm = torch.sort(probs, dim=-1, descending=True, stable=True)
        cdf = torch.cumsum(sp, -1)
        r = torch.searchsorted(cdf, u[..., None], right=True).clamp(max=probs.shape[-1] - 1)
        return torch.gather(perm, -1, r).squeeze(-1)
    cdf = torch.cumsum(probs, -1)  # float32 sequential-ish; fine for a probe
    idx = torch.searchsorted(cdf, u[..., None], right=True).squeeze(-1)
    return idx.clamp(max=probs.shape[-1] - 1)


def sorted_bins(recs):
    """--order sorted: each sampled token's bin in the teacher's CDF by descending probability (the samples are the
    teacher's either way; only which u's pick them changes), replacing the dataset's token-id-order bins."""
    out = []
    with torch.no_grad():
        for p, toks, left, right in recs:
            n = len(toks)
            t = torch.from_numpy(toks[:n - 1])[None]
            pos = torch.arange(n - 1)[None]
            c, s = rope_tables(pos)
            x = TW["emb"][t]
            m = (torch.arange(n - 1)[None, :] <= torch.arange(n - 1)[:, None])[None]
            for l in range(C["nl"]):
                x, _, _ = block(x, TW, l, c[:, :, None], s[:, :, None], m)
            probs = torch.softmax(rmsnorm(x, TW["norm"]) @ TW["cls"].t() / T, -1)[0, p - 1:]  # P_k for k = p .. n-1
            sp, perm = torch.sort(probs, dim=-1, descending=True, stable=True)
            cdf = torch.cumsum(sp, -1)
            rank = (perm == torch.from_numpy(toks[p:])[:, None]).float().argmax(-1)
            r = torch.gather(cdf, 1, rank[:, None]).squeeze(1)
            lft = torch.where(rank > 0, torch.gather(cdf, 1, (rank - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(r))
            out.append((p, toks, lft.numpy().astype(np.float32), r.numpy().astype(np.float32)))
    return out


def rule_ok(logits, bt, rule=None):
    rule = rule or RULE
    if rule.startswith("s1"):  # s1A/B: slot 1 drafts by rule A, the later slots by rule B (e.g. s1pick/tau0.28)
        a, b = rule[2:].split("/")
        first = (torch.arange(logits.shape[1]) % (bt["L"] - 1) == 0)[None, :]
        return torch.where(first, rule_ok(logits, bt, a), rule_ok(logits, bt, b))
    if rule == "argmax":
        d = logits.argmax(-1)
    else:
        tau = T if rule == "pick" else float(rule[3:])
        d = pick(bt["upick"], torch.softmax(logits / tau, -1))
    return d == bt["tgt"]


RULE = A.rule


def train_starts(p, n, W, L):
    hi = n - L  # s + L - 1 <= n - 1
    if hi < p:
        return [p] * W  # too short: degenerate (masked by tgt range below)
    return list(rng.integers(p, hi + 1, size=W))


def evaluate(held):
    L = A.window
    tot_steps, tot_tok = 0, 0.0
    corr = np.zeros(L)
    seen = np.zeros(L)
    # Slot 1 split by whether the token before it, t_s, was the teacher's greedy token there (does the student read u_s?).
    split = {True: [0, 0], False: [0, 0]}
    cnt = 0
    with torch.no_grad():
        for i in range(len(held)):
            p, toks, _, _ = held[i]
            n = len(toks)
            if n - L < p:
                continue
            allst = list(range(p, n - L + 1))
            for c0 in range(0, len(allst), 64):
                chunk = allst[c0:c0 + 64]
                bt = build(held, [i], len(chunk), L, lambda p_, n_, W_, L_: chunk)
                logits, _, t_logits = forward(bt)
                ok = rule_ok(logits, bt).view(len(chunk), L - 1).numpy()
                greedy = t_logits[0].argmax(-1).numpy()  # greedy[k]: the teacher's greedy token for position k + 1
                for w, s in enumerate(chunk):
                    g = bool(greedy[s - 1] == toks[s])
                    split[g][0] += int(ok[w, 0])
                    split[g][1] += 1
                for w in range(len(chunk)):
                    lead = 0
                    for j in range(L - 1):
                        seen[j + 1] += 1
                        if ok[w, j]:
                            corr[j + 1] += 1
                            lead += 1
                        else:
                            break
                    tot_tok += 2 + lead if lead < L - 1 else L + 1
                    cnt += 1
            if cnt >= A.eval_windows:
                break
    cond = [round(float(corr[j] / max(seen[j], 1)), 3) for j in range(1, L)]
    if os.environ.get("SPLIT"):
        for g in (True, False):
            c, n_ = split[g]
            print(f"slot 1 after a {'greedy' if g else 'non-greedy'} t_s: {c}/{n_} = {c / max(n_, 1):.3f}", flush=True)
    return tot_tok / cnt, cond, cnt


if os.environ.get("RULES"):
    held = read_ptpd(A.held)
    if A.order == "sorted":
        held = sorted_bins(held)
    for r in os.environ["RULES"].split(","):
        RULE = r
        print(r, evaluate(held), flush=True)
    sys.exit(0)
if not A.train:
    sys.exit("student-probe.py: --train DATASET is required to train (or set RULES to only evaluate)")
train = [r for r in read_ptpd(A.train) if len(r[1]) - A.window >= r[0]]
if A.train_records:
    train = train[:A.train_records]
held = read_ptpd(A.held)
if A.order == "sorted":
    tb = time.time()
    import pickle
    cache = os.environ.get("SORTED_CACHE")  # a pickle of both, reused across runs on the same files
    key = [os.path.abspath(A.train), os.path.getmtime(A.train), os.path.abspath(A.held), os.path.getmtime(A.held), A.window, A.model, T]
    got = pickle.load(open(cache, "rb")) if cache and os.path.exists(cache) else None
    if got is not None and got[0] == key:
        train, held = got[1], got[2]
    else:
        train, held = sorted_bins(train), sorted_bins(held)
        if cache:
            pickle.dump((key, train, held), open(cache, "wb"))
    print(f"sorted bins in {time.time() - tb:.0f} s", flush=True)
print(f"train {len(train)} records, held {len(held)}", flush=True)
logf = open(A.log, "w") if A.log else None
t0 = time.time()
v, cond, cnt = evaluate(held)
print(json.dumps({"step": 0, "minutes": 0, "verify": round(v, 3), "cond": cond, "windows": cnt}), flush=True)
if logf:
    logf.write(json.dumps({"step": 0, "minutes": 0, "verify": v, "cond": cond}) + "\n")
    logf.flush()
L = A.window
wts = torch.tensor([A.gamma ** j for j in range(L - 1)])
wts = wts / wts.sum()
train_min = 0.0
for step in range(1, A.steps + 1):
    ts = time.time()
    frac = step / A.steps
    for g in opt.param_groups:
        warm = min(1.0, step / 100)
        g["lr"] = g["base_lr"] * warm * 0.5 * (1 + math.cos(math.pi * frac))
    idxs = rng.integers(0, len(train), size=A.batch)
    bt = build(train, idxs, A.windows, L, train_starts)
    logits, tl, _ = forward(bt)
    lp_t = torch.log_softmax(tl / T, -1)
    lp_s = torch.log_softmax(logits / T, -1)
    if A.variant == "O":
        kl = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), bt["tgt"].reshape(-1), reduction="none").view(A.batch, A.windows, L - 1)
    else:
        kl = (lp_t.exp() * (lp_t - lp_s)).sum(-1).view(A.batch, A.windows, L - 1)
    loss = (kl.mean((0, 1)) * wts).sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    train_min += (time.time() - ts) / 60
    if step % 100 == 0:
        print(f"step {step} loss {loss.item():.4f} train-min {train_min:.2f}", flush=True)
    if step % A.eval_every == 0 or step == A.steps or train_min >= A.minutes:
        v, cond, cnt = evaluate(held)
        rec = {"step": step, "minutes": round(train_min, 2), "verify": round(v, 3), "cond": cond, "windows": cnt}
        for r in filter(None, os.environ.get("ALSO_RULES", "").split(",")):  # the same student under other draft rules
            main_rule, RULE = RULE, r
            rec[r] = round(evaluate(held)[0], 3)
            RULE = main_rule
        print(json.dumps(rec), flush=True)
        if logf:
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
    if train_min >= A.minutes:
        break

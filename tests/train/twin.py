#!/usr/bin/python3
"""The PyTorch twin of fvlm's network (train/net.c), written from the method.

It reads the weights and one batch that the C side writes (safetensors, the
names of train/net.c's parameter table), builds the same model in PyTorch the
idiomatic way (batched towers, padded texts with a key mask, autograd), and

  fixtures TEST_TWIN_BIN [OUT_DIR]
      runs `TEST_TWIN_BIN --dump OUT_DIR`, then writes the loss, the logits
      of each group, the features and every parameter's gradient, computed in
      float64, for each loss mode: the fixtures tests/train/test_twin.c
      compares the float32 C network with (committed, so CI needs no torch);
  step IN --threads N --reps K [--warmup W]
      times one training step (forward, backward, AdamW update) in float32
      on the batch of IN, and prints one JSON line (seconds per step, the
      loss, peak resident memory): the peer of bench/bench_train.c.

Debian's python3 (torch 1.13, numpy); no other package is needed: the
safetensors format is read and written here.
"""
import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "U8": np.uint8,
          "U64": np.uint64, "I64": np.int64, "I16": np.int16}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
MODES = ["global", "fine", "fine-fn", "fine-fn-disease"]


def st_read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[base + a:base + b],
                                  dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
    return out, meta


def st_write(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    # larger elements first, then by name (as lib/safetensors.c): every
    # tensor starts aligned for its type
    for name in sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k)):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


class Twin:
    """fvlm's network in PyTorch. p: parameters by checkpoint name."""

    def __init__(self, cfg, tensors, dtype):
        self.cfg = cfg
        self.dtype = dtype
        self.p = {k: torch.tensor(v, dtype=dtype, requires_grad=True)
                  for k, v in tensors.items() if not k.startswith("batch.")}

    # ---- one pre-LN transformer block over (S, L, C) with a key mask (S, L)
    def block(self, pre, x, heads, keymask=None):
        p = self.p
        S, L, C = x.shape
        dh = C // heads
        h = F.layer_norm(x, (C,), p[pre + "ln1.weight"], p[pre + "ln1.bias"], 1e-5)
        qkv = F.linear(h, p[pre + "attn.qkv.weight"], p[pre + "attn.qkv.bias"])
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(S, L, heads, dh).transpose(1, 2)
        k = k.view(S, L, heads, dh).transpose(1, 2)
        v = v.view(S, L, heads, dh).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / (dh ** 0.5)
        if keymask is not None:
            s = s.masked_fill(~keymask[:, None, None, :], float("-inf"))
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(S, L, C)
        x = x + F.linear(a, p[pre + "attn.proj.weight"], p[pre + "attn.proj.bias"])
        h = F.layer_norm(x, (C,), p[pre + "ln2.weight"], p[pre + "ln2.bias"], 1e-5)
        h = F.gelu(F.linear(h, p[pre + "mlp.fc1.weight"], p[pre + "mlp.fc1.bias"]))
        return x + F.linear(h, p[pre + "mlp.fc2.weight"], p[pre + "mlp.fc2.bias"])

    def vision(self, img):
        c, p = self.cfg, self.p
        B = img.shape[0]
        Ci = c.get("in_c", 1)
        Z, Y, X = c["in_z"], c["in_y"], c["in_x"]
        pz, py, px = c["patch_z"], c["patch_y"], c["patch_x"]
        # (B, Ci, Z, Y, X) -> (B, T, P): tokens (tz, ty, tx), patch (ci, dz, dy, dx)
        t = img.reshape(B, Ci, Z // pz, pz, Y // py, py, X // px, px)
        t = t.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(B, -1, Ci * pz * py * px)
        x = F.linear(t, p["vis.patch.weight"], p["vis.patch.bias"]) + p["vis.pos"]
        outs = []
        for l in range(c["depth"]):
            x = self.block("vis.blocks.%d." % l, x, c["heads"])
            outs.append(x)
        return outs

    def text(self, toff, tids):
        c, p = self.cfg, self.p
        U = len(toff) - 1
        lens = toff[1:] - toff[:-1]
        L = int(lens.max())
        ids = torch.zeros(U, L, dtype=torch.long)
        mask = torch.zeros(U, L, dtype=torch.bool)
        for s in range(U):
            ids[s, :lens[s]] = torch.as_tensor(tids[toff[s]:toff[s + 1]].astype(np.int64))
            mask[s, :lens[s]] = True
        x = p["txt.tok"][ids] + p["txt.pos"][:L]
        for l in range(c["text_depth"]):
            x = self.block("txt.blocks.%d." % l, x, c["text_heads"], mask)
        if c.get("text_mean"):
            m = mask.to(x.dtype)[:, :, None]
            pooled = (x * m).sum(1) / m.sum(1)
        else:
            pooled = x[:, 0]
        cls = F.layer_norm(pooled, (c["text_width"],), p["txt.ln_f.weight"],
                           p["txt.ln_f.bias"], 1e-5)
        return F.normalize(F.linear(cls, p["txt.proj.weight"], p["txt.proj.bias"]), dim=-1,
                           eps=1e-12)

    def image_features(self, bt, order, goff):
        """Features of pooled rows `order` (groups one after another)."""
        c, p = self.cfg, self.p
        img = torch.as_tensor(bt["batch.img"]).to(self.dtype)
        outs = self.vision(img)
        C = c["width"]
        lnf = lambda x: F.layer_norm(x, (C,), p["vis.ln_f.weight"], p["vis.ln_f.bias"], 1e-5)
        rb = torch.as_tensor(bt["batch.rb"].astype(np.int64))
        if c["loss"] == "global":
            mean = lnf(outs[-1]).mean(1)
            f = F.linear(mean[rb[order]], p["vis.proj.weight"], p["vis.proj.bias"])
            return F.normalize(f, dim=-1, eps=1e-12)
        kept = torch.cat([lnf(outs[k - 1]) for k in c["keep"]], dim=1)   # (B, M, C)
        B, M, _ = kept.shape
        H = c["pool_heads"]
        dh = C // H
        A = c["n_anat"]
        q = F.linear(p["pool.query"], p["pool.q.weight"], p["pool.q.bias"]).view(A, H, dh)
        k = F.linear(kept, p["pool.k.weight"], p["pool.k.bias"]).view(B, M, H, dh)
        v = F.linear(kept, p["pool.v.weight"], p["pool.v.bias"]).view(B, M, H, dh)
        s = torch.einsum("ahd,bmhd->bham", q, k) / (dh ** 0.5)
        bias = torch.as_tensor(bt["batch.tokbias"]).to(self.dtype)      # (B, A, T)
        bias = bias.repeat(1, 1, len(c["keep"]))                        # key m -> token m mod T
        held = torch.isfinite(bias)
        # added where the token holds the anatomy; elsewhere a large negative,
        # not -inf, so a (study, anatomy) without tokens gives a finite
        # (unused) row instead of NaN
        s = (s + torch.where(held, bias, torch.zeros_like(bias))[:, None]).masked_fill(
            ~held[:, None], -1e30)
        pooled = torch.einsum("bham,bmhd->bahd", s.softmax(-1), v).reshape(B, A, C)
        ra = torch.as_tensor(bt["batch.ra"].astype(np.int64))
        rows = pooled[rb, ra]                                            # (R, C)
        rows = F.linear(rows, p["pool.out.weight"], p["pool.out.bias"])
        feats = []
        for g in range(len(goff) - 1):
            sel = order[goff[g]:goff[g + 1]]
            a = int(ra[sel[0]])   # a group is one anatomy
            feats.append(F.linear(rows[sel], p["anat.proj.weight"][a], p["anat.proj.bias"][a]))
        return F.normalize(torch.cat(feats), dim=-1, eps=1e-12)


def targets(mode, abn, text, dis):
    """Soft targets before normalisation, from the method's rules."""
    n = len(text)
    t = np.eye(n)
    for i in range(n):
        for j in range(n):
            if i == j or mode in ("global", "fine"):
                continue
            if (not abn[i] and not abn[j]) or text[i] == text[j]:
                t[i, j] = 1.0
            elif mode == "fine-fn-disease" and abn[i] and abn[j]:
                a = {(w, b) for w in range(dis.shape[1]) for b in range(64)
                     if (int(dis[i, w]) >> b) & 1}
                c = {(w, b) for w in range(dis.shape[1]) for b in range(64)
                     if (int(dis[j, w]) >> b) & 1}
                t[i, j] = len(a & c) / len(a | c) if (a | c) else 0.0
    return t


def forward(model, bt, mode):
    goff, grow = bt["batch.goff"], bt["batch.grow"]
    order = torch.as_tensor(grow.astype(np.int64))
    img = model.image_features(bt, order, goff)
    txt = model.text(bt["batch.toff"].astype(np.int64), bt["batch.tids"])
    rtext = bt["batch.rtext"].astype(np.int64)
    abn = bt.get("batch.rabn", np.zeros(len(rtext), np.uint8))
    dis = bt.get("batch.rdis", np.zeros((len(rtext), 1), np.uint64))
    temp = model.p["temp"][0]
    loss, logits = 0.0, []
    for g in range(len(goff) - 1):
        rows = grow[goff[g]:goff[g + 1]]
        i = img[goff[g]:goff[g + 1]]
        t = txt[torch.as_tensor(rtext[rows])]
        tg = torch.as_tensor(targets(mode, abn[rows], rtext[rows], dis[rows]), dtype=img.dtype)
        s = i @ t.T / temp
        l_i2t = -(tg / tg.sum(1, keepdim=True) * s.log_softmax(1)).sum(1).mean()
        l_t2i = -(tg.T / tg.T.sum(1, keepdim=True) * s.T.log_softmax(1)).sum(1).mean()
        loss = loss + (l_i2t + l_t2i) / 2
        logits.append(s)
    return loss, logits, img, txt


def make_fixtures(binary, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run([binary, "--dump", out_dir], check=True)
    for mode in MODES:
        src = "global" if mode == "global" else "fine"
        tensors, meta = st_read(os.path.join(out_dir, "twin_%s_in.safetensors" % src))
        cfg = json.loads(meta["fvlm.net"])
        cfg["loss"] = mode
        model = Twin(cfg, tensors, torch.float64)
        bt = {k: v for k, v in tensors.items() if k.startswith("batch.")}
        loss, logits, img, txt = forward(model, bt, mode)
        loss.backward()
        out = {"loss": np.array([loss.item()], np.float64),
               "img_feat": img.detach().numpy().astype(np.float64),
               "txt_feat": txt.detach().numpy().astype(np.float64)}
        for g, s in enumerate(logits):
            out["logits.%d" % g] = s.detach().numpy().astype(np.float64)
        for name, p in model.p.items():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            out["grad." + name] = g.numpy().astype(np.float32)
        st_write(os.path.join(out_dir, "twin_%s_out.safetensors" % mode), out,
                 {"fvlm.twin": "torch %s float64" % torch.__version__})
        print("%s: loss %.7f" % (mode, loss.item()))


def time_step(path, threads, reps, warmup):
    torch.set_num_threads(threads)
    tensors, meta = st_read(path)
    cfg = json.loads(meta["fvlm.net"])
    mode = cfg["loss"]
    model = Twin(cfg, tensors, torch.float32)
    bt = {k: v for k, v in tensors.items() if k.startswith("batch.")}
    wd = [p for n, p in model.p.items() if meta.get("decay." + n) == "1"]
    nd = [p for n, p in model.p.items() if meta.get("decay." + n) != "1"]
    opt = torch.optim.AdamW([{"params": wd, "weight_decay": 0.01},
                             {"params": nd, "weight_decay": 0.0}], lr=1e-4)
    times, loss, first = [], None, None
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss, _, _, _ = forward(model, bt, mode)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.p.values()), 1.0)
        opt.step()
        with torch.no_grad():
            model.p["temp"].clamp_(0.001, 0.5)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        if first is None:
            first = float(loss)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": sorted(times)[len(times) // 2], "min_seconds": min(times),
                      "loss": first, "peak_rss_bytes": rss, "threads": threads,
                      "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixtures")
    f.add_argument("binary")
    f.add_argument("out_dir", nargs="?",
                   default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    s = sub.add_parser("step")
    s.add_argument("input")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--reps", type=int, default=5)
    s.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    if a.cmd == "fixtures":
        make_fixtures(a.binary, a.out_dir)
    else:
        time_step(a.input, a.threads, a.reps, a.warmup)


if __name__ == "__main__":
    sys.exit(main())

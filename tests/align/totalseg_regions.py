#!/usr/bin/python3
"""Regions of a real TotalSegmentator mask, cross-checked with nibabel.

Reads ../shared/data/totalseg-example/example_seg.nii.gz with nibabel, puts
it in a corpus database the way ingest stores masks (uint8 ids, (z, y, x),
canonical RAS, in a safetensors shard under <db>.tensors/), runs
`fvlm align`, and checks every region row against numpy on the same array:
voxel count per anatomy (TotalSegmentator ids merged as schemas/anatomy.tsv
says, `region_of` unions for anatomies without a mask), bounding box,
volume in ml, whole, and the crop box of the anatomies that carry tasks.
With --ingest the corpus comes from `fvlm ingest` of the CT and its mask on
a 3 mm grid (the end-to-end check: reader, reorientation, shard, align).

Exit codes: 0 ok, 1 a difference, 77 skipped (data or numpy/nibabel absent).
"""
import argparse
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile

try:
    import nibabel as nib
    import numpy as np
except ImportError:
    print("SKIP: numpy/nibabel are not available")
    sys.exit(77)



def schema_version(source_root):
    """FVLM_SCHEMA_VERSION from lib/db.h: the version corpus.sql is at."""
    with open(os.path.join(source_root, "lib", "db.h"), encoding="utf-8") as f:
        return int(re.search(r"#define FVLM_SCHEMA_VERSION (\d+)", f.read()).group(1))

def write_safetensors(path, name, arr):
    data = np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    header = {name: {"dtype": "U8", "shape": list(arr.shape), "data_offsets": [0, len(data)]}}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(data)


def anatomy_table(source_root):
    """id -> (ts ids, region_of ids, main)."""
    out = {}
    with open(os.path.join(source_root, "schemas", "anatomy.tsv"), encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
    head = rows[0]
    for r in rows[1:]:
        rec = dict(zip(head, r))
        ids = []
        if rec["ts_ids"] != "-":
            for part in rec["ts_ids"].split(","):
                lo, _, hi = part.partition("-")
                ids += list(range(int(lo), int(hi or lo) + 1))
        region_of = [] if rec["region_of"] == "-" else rec["region_of"].split(",")
        out[rec["id"]] = (ids, region_of, rec["main"] == "1")
    return out


def box_of(sel):
    zz, yy, xx = np.nonzero(sel)
    return [int(zz.min()), int(zz.max()) + 1, int(yy.min()), int(yy.max()) + 1,
            int(xx.min()), int(xx.max()) + 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("FVLM_BIN"))
    ap.add_argument("--source-root", default=os.environ.get("FVLM_SOURCE_ROOT", "."))
    ap.add_argument("--shared", default=os.environ.get("FVLM_SHARED"))
    ap.add_argument("--ingest", action="store_true",
                    help="build the corpus with fvlm ingest instead of writing the shard directly")
    a = ap.parse_args()
    shared = a.shared or os.path.join(a.source_root, "..", "shared")
    seg_path = os.path.join(shared, "data", "totalseg-example", "example_seg.nii.gz")
    if not os.path.exists(seg_path):
        print("SKIP: %s is absent" % seg_path)
        sys.exit(77)
    img = nib.as_closest_canonical(nib.load(seg_path))
    # nibabel gives (x, y, z); the corpus stores (z, y, x).
    arr = np.asarray(img.dataobj).astype(np.uint8).transpose(2, 1, 0)
    sx, sy, sz = (float(v) for v in img.header.get_zooms()[:3])
    nz, ny, nx = arr.shape

    fails = []
    tmp = tempfile.mkdtemp(prefix="fvlm-totalseg-regions.")
    try:
        db = os.path.join(tmp, "corpus.db")
        if a.ingest:
            # The CT and its mask through fvlm ingest, on a 3 mm grid (the
            # example's own), so the mask is reoriented but not resampled.
            src = os.path.join(tmp, "in")
            os.makedirs(src)
            for name in ("example_ct_sm.nii.gz", "example_seg.nii.gz"):
                shutil.copy(os.path.join(os.path.dirname(seg_path), name), src)
            env = dict(os.environ, FVLM_DEID_KEY="totalseg-regions-test-key")
            p = subprocess.run([a.bin, "ingest", "--quiet", "--db", db, "--set", "ingest.spacing=3,3,3",
                                src], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            if p.returncode != 0:
                sys.exit("fvlm ingest failed: %s" % p.stderr)
        else:
            os.makedirs(db + ".tensors")
            write_safetensors(os.path.join(db + ".tensors", "masks-0.safetensors"), "seg", arr)
            con = sqlite3.connect(db)
            with open(os.path.join(a.source_root, "schemas", "corpus.sql"), encoding="utf-8") as f:
                con.executescript(f.read())
            con.execute("PRAGMA user_version = %d" % schema_version(a.source_root))
            con.execute("INSERT INTO studies (id, study_key) VALUES (1, 'totalseg-example')")
            con.execute("INSERT INTO volumes (id, study_id, sha256, source, src_dims, src_spacing,"
                        " src_affine, src_orient, src_dtype, nz, ny, nx, sz, sy, sx, affine, shard, tensor)"
                        " VALUES (1, 1, '-', 'example_ct_sm.nii.gz', '[]', '[]', '[]', 'RAS', 'int16',"
                        " ?, ?, ?, ?, ?, ?, '[]', '-', '-')", (nz, ny, nx, sz, sy, sx))
            con.execute("INSERT INTO masks (study_id, volume_id, sha256, source, shard, tensor) VALUES"
                        " (1, 1, '-', 'example_seg.nii.gz', 'masks-0.safetensors', 'seg')")
            con.commit()
            con.close()
        p = subprocess.run([a.bin, "align", "--quiet", "--db", db], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit("fvlm align failed: %s" % p.stderr)
        con = sqlite3.connect(db)
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT anatomy, voxels, volume_ml, z0, z1, y0, y1, x0, x1, whole FROM regions")}
        n_studies = con.execute("SELECT count(*) FROM studies").fetchone()[0]
        con.close()
        if n_studies != 1:
            fails.append("%d studies in the corpus, expected 1" % n_studies)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    table = anatomy_table(a.source_root)
    voxel_ml = sx * sy * sz / 1000.0
    dims = (nz, ny, nx)

    def expect(name, sel):
        n = int(sel.sum())
        got = rows.get(name)
        if n == 0:
            if got is not None:
                fails.append("%s: region row with %d voxels, the mask has none" % (name, got[0]))
            return
        if got is None:
            fails.append("%s: no region row, the mask has %d voxels" % (name, n))
            return
        box = box_of(sel)
        whole = int(box[0] > 0 and box[1] < dims[0] and box[2] > 0 and box[3] < dims[1]
                    and box[4] > 0 and box[5] < dims[2])
        if got[0] != n:
            fails.append("%s: %d voxels, nibabel counts %d" % (name, got[0], n))
        if abs(got[1] - n * voxel_ml) > 1e-6 * max(1.0, n * voxel_ml):
            fails.append("%s: %.4f ml, expected %.4f" % (name, got[1], n * voxel_ml))
        if name != "_union" and list(got[2:8]) != box:
            fails.append("%s: box %s, nibabel %s" % (name, list(got[2:8]), box))
        if got[8] != whole:
            fails.append("%s: whole %d, expected %d" % (name, got[8], whole))
        return box

    own = {}
    checked = 0
    for anat, (ids, region_of, main) in table.items():
        if ids:
            own[anat] = np.isin(arr, ids)
    for anat, (ids, region_of, main) in table.items():
        sel = own.get(anat)
        if sel is None and region_of:
            sel = np.zeros(arr.shape, dtype=bool)
            for part in region_of:
                if part in own:
                    sel |= own[part]
        if sel is None:
            continue
        expect(anat, sel)
        checked += int(sel.any())
    # The crop box: anatomies with tasks (and the parts of those without a
    # mask), widened by 15 mm in z and 20 mm in y, x, clipped to the volume.
    union = np.zeros(arr.shape, dtype=bool)
    for anat, (ids, region_of, main) in table.items():
        if not main:
            continue
        if ids:
            union |= own[anat]
        for part in region_of:
            if part in own:
                union |= own[part]
    box = expect("_union", union)
    if box is not None and "_union" in rows:
        m = [round(15 / sz), round(20 / sy), round(20 / sx)]
        want = [max(0, box[0] - m[0]), min(nz, box[1] + m[0]), max(0, box[2] - m[1]),
                min(ny, box[3] + m[1]), max(0, box[4] - m[2]), min(nx, box[5] + m[2])]
        if list(rows["_union"][2:8]) != want:
            fails.append("_union: crop box %s, expected %s" % (list(rows["_union"][2:8]), want))
    extra = set(rows) - set(table) - {"_union"}
    if extra:
        fails.append("region rows for unknown anatomies: %s" % sorted(extra))
    print("totalseg-example (%s): mask %dx%dx%d (z, y, x) at %.1f x %.1f x %.1f mm; %d labels; "
          "%d anatomy regions and the crop box checked against nibabel" %
          ("fvlm ingest" if a.ingest else "shard written here", nz, ny, nx, sz, sy, sx, len(np.unique(arr)) - 1, checked))
    for f in fails:
        print("FAILED: " + f)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()

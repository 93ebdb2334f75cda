#!/usr/bin/python3
"""Cross-checks fvlm's readers against Debian's nibabel and pydicom.

For real files (../shared/data/totalseg-example when present, the samples
shipped with python3-nibabel and python3-pydicom, and the committed
fixtures): `fvlm inspect --tensor` must give the same shape, spacing,
affine and voxel values (HU within 1e-3) as nibabel / pydicom; and the
corpus tensor that `fvlm ingest` stores at the source's own spacing must
equal nibabel's as_closest_canonical array (the documented RAS contract).
Exit 77 (skip) when numpy, nibabel or pydicom are missing.
"""
import json
import time
import os
import struct
import subprocess
import sys
import tempfile

try:
    import nibabel as nib
    import numpy as np
    import pydicom
except ImportError as exc:  # the oracles are optional for a build
    print(f"skip: {exc}")
    sys.exit(77)

BIN = os.environ["FVLM_BIN"]
ROOT = os.environ["FVLM_SOURCE_ROOT"]
FX = os.path.join(ROOT, "tests", "ingest", "fixtures")
NIB = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
DCM = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
SHARED = os.environ.get("FVLM_SHARED", os.path.join(ROOT, "..", "shared"))
TMP = tempfile.mkdtemp(prefix="fvlm-crosscheck-")
failures = []
checks = 0


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print("FAILED:", msg, file=sys.stderr)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    meta = head.pop("__metadata__", {})
    out = {}
    for name, t in head.items():
        dt = {"F32": np.float32, "I16": np.int16, "U8": np.uint8}[t["dtype"]]
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dt).reshape(t["shape"])
    return out, meta


def inspect(path, mask=False):
    out = os.path.join(TMP, "t.safetensors")
    if os.path.exists(out):
        os.remove(out)
    cmd = [BIN, "inspect", path, "--tensor", out] + (["--mask"] if mask else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    info = json.loads(r.stdout) if r.stdout.strip() else {"items": []}
    if r.returncode != 0:
        return info, None, None, r.stderr
    t, meta = read_safetensors(out)
    return info, t["volume"], np.array(json.loads(meta["affine"])), r.stderr


def first_volume_item(info):
    for it in info["items"]:
        if "geometry" in it:
            return it
    return None


def compare_nifti(path, mask=False):
    img = nib.load(path)
    name = os.path.relpath(path, ROOT) if path.startswith(ROOT) else os.path.basename(path)
    info, vol, aff, err = inspect(path, mask)
    if len(img.shape) > 3 and img.shape[3] > 1:
        why = json.dumps(info)
        check(vol is None and "volumes: a CT is one 3-D volume" in why,
              f"{name}: 4-D data not refused: {why[:300]}")
        return
    check(vol is not None, f"{name}: fvlm could not read it: {err}")
    if vol is None:
        return
    it = first_volume_item(info)
    want = np.asanyarray(img.dataobj) if mask else img.get_fdata()
    want = want.reshape(want.shape[:3] + (1,) * (3 - want.ndim)) if want.ndim < 3 else want[..., 0] if want.ndim > 3 else want
    want = np.nan_to_num(np.transpose(want, (2, 1, 0)), nan=0, posinf=0, neginf=0)
    check(vol.shape == want.shape, f"{name}: shape {vol.shape} != nibabel {want.shape}")
    if vol.shape == want.shape:
        tol = 1e-3 + 1e-6 * np.abs(want).max()
        d = np.abs(vol.astype(np.float64) - want).max()
        check(d <= tol, f"{name}: voxels differ by {d} (tolerance {tol})")
    check(np.allclose(aff, img.affine, atol=1e-4), f"{name}: affine\n{aff}\n!= nibabel\n{img.affine}")
    zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
    check(np.allclose(it["geometry"]["spacing_mm"], zooms, atol=1e-5),
          f"{name}: spacing {it['geometry']['spacing_mm']} != {zooms}")
    code = "".join(nib.aff2axcodes(img.affine))
    check(it["geometry"]["orientation"] == code,
          f"{name}: orientation {it['geometry']['orientation']} != nibabel {code}")


def dicom_affine(ds):
    iop = np.array(ds.ImageOrientationPatient, float)
    ipp = np.array(ds.ImagePositionPatient, float)
    ps = np.array(ds.PixelSpacing, float)
    r, c = iop[:3], iop[3:]
    n = np.cross(r, c)
    step = float(getattr(ds, "SliceThickness", 1) or 1)
    lps = np.eye(4)
    lps[:3, 0] = r * ps[1]
    lps[:3, 1] = c * ps[0]
    lps[:3, 2] = n * step
    lps[:3, 3] = ipp
    return np.diag([-1, -1, 1, 1]) @ lps


def compare_dicom(path, reference=None):
    name = os.path.basename(path)
    ds = pydicom.dcmread(reference or path)
    info, vol, aff, err = inspect(path)
    check(vol is not None, f"{name}: fvlm could not read it: {err}")
    if vol is None:
        return
    px = ds.pixel_array.astype(np.float64)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
    want = (px * slope + inter)[None]
    check(vol.shape == want.shape, f"{name}: shape {vol.shape} != pydicom {want.shape}")
    if vol.shape == want.shape:
        d = np.abs(vol - want).max()
        check(d <= 1e-3, f"{name}: HU differ by {d}")
    if "ImagePositionPatient" in ds and "PixelSpacing" in ds:
        check(np.allclose(aff, dicom_affine(ds), atol=1e-4),
              f"{name}: affine\n{aff}\n!= DICOM geometry\n{dicom_affine(ds)}")
        it = first_volume_item(info)
        ps = [float(x) for x in ds.PixelSpacing]
        check(np.allclose(it["geometry"]["spacing_mm"][:2], [ps[1], ps[0]], rtol=1e-4),
              f"{name}: spacing {it['geometry']['spacing_mm']} vs PixelSpacing {ps}")


def frame_attr(ds, k, seq, attr):
    """A functional-group attribute of frame k: per-frame, else shared."""
    for groups, idx in (("PerFrameFunctionalGroupsSequence", k),
                        ("SharedFunctionalGroupsSequence", 0)):
        g = getattr(ds, groups, None)
        if g is not None and len(g) > idx and seq in g[idx]:
            item = getattr(g[idx], seq)[0]
            if attr in item:
                return getattr(item, attr)
    return None


def compare_enhanced(path):
    """An Enhanced CT multi-frame file: every frame placed by its own
    PlanePositionSequence and rescaled by its PixelValueTransformation
    (per frame or shared), stacked along the normal, as pydicom reads it."""
    name = os.path.relpath(path, ROOT)
    ds = pydicom.dcmread(path)
    info, vol, aff, err = inspect(path)
    check(vol is not None, f"{name}: fvlm could not read it: {err}")
    if vol is None:
        return
    px = ds.pixel_array.astype(np.float64)
    iop = np.array(frame_attr(ds, 0, "PlaneOrientationSequence", "ImageOrientationPatient"), float)
    normal = np.cross(iop[:3], iop[3:])
    frames = []
    for k in range(int(ds.NumberOfFrames)):
        ipp = np.array(frame_attr(ds, k, "PlanePositionSequence", "ImagePositionPatient"), float)
        slope = float(frame_attr(ds, k, "PixelValueTransformationSequence", "RescaleSlope") or 1)
        inter = float(frame_attr(ds, k, "PixelValueTransformationSequence", "RescaleIntercept") or 0)
        frames.append((float(ipp @ normal), px[k] * slope + inter, ipp))
    frames.sort(key=lambda f: f[0])
    want = np.stack([f[1] for f in frames])
    check(vol.shape == want.shape, f"{name}: shape {vol.shape} != pydicom {want.shape}")
    if vol.shape == want.shape:
        d = np.abs(vol - want).max()
        check(d <= 1e-3, f"{name}: HU differ by {d}")
    ps = np.array(frame_attr(ds, 0, "PixelMeasuresSequence", "PixelSpacing"), float)
    lps = np.eye(4)
    lps[:3, 0] = iop[:3] * ps[1]
    lps[:3, 1] = iop[3:] * ps[0]
    lps[:3, 2] = (frames[1][2] - frames[0][2]) if len(frames) > 1 else normal
    lps[:3, 3] = frames[0][2]
    want_aff = np.diag([-1, -1, 1, 1]) @ lps
    check(np.allclose(aff, want_aff, atol=1e-4), f"{name}: affine\n{aff}\n!= frames'\n{want_aff}")


def ingest_native(path, spacing, mask_path=None):
    """Ingest at the source spacing with the HU clip wide open: the corpus
    tensors must be nibabel's canonical arrays."""
    db = os.path.join(TMP, f"native{len(os.listdir(TMP))}.db")
    env = dict(os.environ, FVLM_DEID_KEY="crosscheck-key-123")
    r = subprocess.run([BIN, "ingest", "--quiet", "--db", db,
                        "--set", "ingest.spacing=%g,%g,%g" % tuple(spacing),
                        "--set", "ingest.hu_clip=-32768,32767", path],
                       capture_output=True, text=True, env=env)
    check(r.returncode == 0, f"ingest {path}: {r.stderr}")
    import sqlite3
    con = sqlite3.connect(db)
    rows = con.execute("SELECT shard FROM volumes").fetchall()
    mrows = con.execute("SELECT shard FROM masks").fetchall()
    con.close()
    check(len(rows) == 1, f"ingest {path}: {len(rows)} volumes")
    out = {}
    if rows:
        out["ct"] = read_safetensors(os.path.join(db + ".tensors", rows[0][0]))
    if mrows:
        out["mask"] = read_safetensors(os.path.join(db + ".tensors", mrows[0][0]))
    return out


def main():
    # NIfTI samples of python3-nibabel, and the fixtures' datatypes.
    for f in ["anatomical.nii", "example_nifti2.nii.gz", "standard.nii.gz",
              "reoriented_anat_moved.nii", "resampled_anat_moved.nii", "example4d.nii.gz"]:
        p = os.path.join(NIB, f)
        if os.path.exists(p):
            compare_nifti(p)
    for f in sorted(os.listdir(os.path.join(FX, "nifti"))):
        compare_nifti(os.path.join(FX, "nifti", f))
    compare_nifti(os.path.join(FX, "same", "nifti_pair", "ct.hdr"))
    compare_nifti(os.path.join(FX, "hospital", "study1", "seg.nii.gz"), mask=True)
    # DICOM samples of python3-pydicom: uncompressed, big endian, implicit,
    # deflated, RLE, JPEG 2000; JPEG-LS against its uncompressed original.
    for f in ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
              "MR_small_expb.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
              "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm", "JPEG2000.dcm", "image_dfl.dcm"]:
        p = os.path.join(DCM, f)
        if os.path.exists(p):
            try:
                pydicom.dcmread(p).pixel_array
            except Exception as exc:  # no pydicom decoder for it here
                print(f"note: pydicom cannot decode {f} ({exc}); skipped")
                continue
            compare_dicom(p)
    p = os.path.join(DCM, "MR_small_jpeg_ls_lossless.dcm")
    if os.path.exists(p):
        compare_dicom(p, reference=os.path.join(DCM, "MR_small.dcm"))
    # Enhanced CT multi-frame (tests/ingest/make_multiframe.py): shared and
    # per-frame rescale; RT Dose is refused as not a CT volume.
    mf = os.path.join(FX, "multiframe")
    for f in ["enhanced_ct", "enhanced_ct_perframe"]:
        compare_enhanced(os.path.join(mf, f, "ct.dcm"))
    info, vol, aff, err = inspect(os.path.join(mf, "rtdose", "dose.dcm"))
    msg = json.dumps(info)
    check(vol is None and "not a CT volume (modality RTDOSE" in msg,
          f"rtdose: not refused as not a CT volume: {msg[:300]}")
    # Refusals with a reason.
    for f, why in [("JPEG-lossy.dcm", "unsupported transfer syntax 1.2.840.10008.1.2.4.51"),
                   ("MR_truncated.dcm", "truncated")]:
        p = os.path.join(DCM, f)
        if os.path.exists(p):
            info, vol, aff, err = inspect(p)
            msg = json.dumps(info)
            check(vol is None and why in msg, f"{f}: expected '{why}' in {msg[:300]}")
    # A JPEG-LS frame cut short (no end-of-image marker) is refused at once:
    # CharLS 2.4 spends ~14 s of CPU decoding one (found by tests/fuzz).
    p = os.path.join(DCM, "MR_small_jpeg_ls_lossless.dcm")
    if os.path.exists(p):
        from pydicom.encaps import encapsulate, generate_pixel_data_frame
        ds = pydicom.dcmread(p)
        frame = next(generate_pixel_data_frame(ds.PixelData, 1))
        ds.PixelData = encapsulate([frame[: len(frame) // 4]])
        cut = os.path.join(TMP, "jpegls_cut.dcm")
        ds.save_as(cut)
        t0 = time.monotonic()
        info, vol, aff, err = inspect(cut)
        took = time.monotonic() - t0
        msg = json.dumps(info)
        check(vol is None and "end-of-image" in msg and took < 5,
              f"truncated JPEG-LS: {took:.1f} s, {msg[:300]}")
    # A JPEG 2000 codestream declaring a far larger image than Rows x Columns
    # is refused before openjpeg allocates it (found by tests/fuzz).
    p = os.path.join(DCM, "693_J2KI.dcm")
    if os.path.exists(p):
        from pydicom.encaps import encapsulate, generate_pixel_data_frame
        ds = pydicom.dcmread(p)
        frame = bytearray(next(generate_pixel_data_frame(ds.PixelData, 1)))
        siz = frame.find(b"\xff\x51")
        if siz >= 0:
            frame[siz + 6:siz + 14] = struct.pack(">II", 60000, 60000)  # Xsiz, Ysiz
            ds.PixelData = encapsulate([bytes(frame)])
            big = os.path.join(TMP, "j2k_huge.dcm")
            ds.save_as(big)
            t0 = time.monotonic()
            info, vol, aff, err = inspect(big)
            took = time.monotonic() - t0
            msg = json.dumps(info)
            check(vol is None and "header says" in msg and took < 5,
                  f"JPEG 2000 declaring 60000 x 60000: {took:.1f} s, {msg[:300]}")
    # The corpus contract: at native spacing, ingest stores nibabel's
    # as_closest_canonical array, CT and mask.
    ts = os.path.join(SHARED, "data", "totalseg-example")
    cases = [(os.path.join(FX, "same", "nifti_lps"), os.path.join(FX, "same", "nifti_lps", "ct.nii.gz"), None)]
    if os.path.exists(os.path.join(ts, "example_ct_sm.nii.gz")):
        study = os.path.join(TMP, "totalseg_study")
        os.makedirs(study)
        os.symlink(os.path.join(ts, "example_ct_sm.nii.gz"), os.path.join(study, "ct.nii.gz"))
        os.symlink(os.path.join(ts, "example_seg.nii.gz"), os.path.join(study, "seg.nii.gz"))
        cases.append((study, os.path.join(ts, "example_ct_sm.nii.gz"),
                      os.path.join(ts, "example_seg.nii.gz")))
        compare_nifti(os.path.join(ts, "example_ct_sm.nii.gz"))
        compare_nifti(os.path.join(ts, "example_seg.nii.gz"), mask=True)
    else:
        print("note: ../shared/data/totalseg-example absent: real CT cross-check skipped")
    for folder, ct, seg in cases:
        img = nib.load(ct)
        zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
        got = ingest_native(folder, zooms)
        can = nib.as_closest_canonical(img)
        want = np.rint(np.transpose(can.get_fdata(), (2, 1, 0))).astype(np.int16)
        if "ct" in got:
            t, meta = got["ct"]
            check(t["ct"].shape == want.shape and np.array_equal(t["ct"], want),
                  f"{ct}: corpus CT is not nibabel's canonical array")
            check(np.allclose(np.array(json.loads(meta["affine"])), can.affine, atol=1e-4),
                  f"{ct}: corpus affine != canonical affine")
        if seg:
            mcan = nib.as_closest_canonical(nib.load(seg))
            mw = np.transpose(np.asanyarray(mcan.dataobj), (2, 1, 0)).astype(np.uint8)
            check("mask" in got and np.array_equal(got["mask"][0]["mask"], mw),
                  f"{seg}: corpus mask is not nibabel's canonical array")
    print(f"{checks - len(failures)} of {checks} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    rc = main()
    if rc == 0:
        import shutil
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)

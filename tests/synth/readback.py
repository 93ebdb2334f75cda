#!/usr/bin/python3
"""Reads a corpus written by `fvlm synth` back with Debian's nibabel and pydicom
and checks it against the truth file: geometry (dims, affine, orientation) as
written, HU in range, mask labels in the 117-id space on the CT's grid, report
encodings, and the CT-RATE csv files.

usage: readback.py CORPUS_DIR   check a corpus
       readback.py --generate    write corpora with $FVLM_BIN (both layouts, Chinese hospital
                                 reports, the small size) into a temporary folder and check them
exit 0 ok, 1 failed, 77 when nibabel/pydicom are missing.
"""
import csv
import gzip
import io
import json
import os
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
import zipfile

try:
    import numpy as np
    import nibabel as nib
    import pydicom
except ImportError as exc:  # the test needs Debian's python3 with these
    print(f"skip: {exc}")
    sys.exit(77)

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAILED:", msg, file=sys.stderr)


def close(a, b, tol=1e-3):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), atol=tol)


def load_nifti(data, tmpdir, name):
    path = os.path.join(tmpdir, name.replace("/", "_"))
    with open(path, "wb") as f:
        f.write(data)
    img = nib.load(path)
    img.get_fdata()  # force the read while the file exists
    return img


def canonical(data, affine):
    """(array, affine) reoriented to RAS the way nibabel does it."""
    img = nib.Nifti1Image(np.asarray(data), affine)
    c = nib.as_closest_canonical(img)
    return np.asarray(c.dataobj), c.affine


def check_geometry(tag, geo, shape, affine):
    if list(shape) != list(geo["dims"]):
        fail(f"{tag}: dims {list(shape)} != truth {geo['dims']}")
    if not close(affine, geo["affine"]):
        fail(f"{tag}: affine\n{np.round(affine, 3)}\n!= truth\n{np.round(np.array(geo['affine']), 3)}")
    code = "".join(nib.aff2axcodes(affine))
    if code != geo["orientation"]:
        fail(f"{tag}: orientation {code} != truth {geo['orientation']}")


def read_archive(path):
    members = {}
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    members[info.filename] = z.read(info)
    else:
        with tarfile.open(path, "r:gz") as t:
            for m in t.getmembers():
                if m.isfile():
                    members[m.name] = t.extractfile(m).read()
    return members


def check_label_table(tag, img):
    exts = img.header.extensions
    if not exts:
        fail(f"{tag}: multi-label mask has no header extension")
        return
    root = ET.fromstring(exts[0].get_content().decode("utf-8").strip())
    keys = {int(l.get("Key")): l.text for l in root.iter("Label")}
    if len(keys) != 117 or keys.get(5) != "liver" or keys.get(51) != "heart":
        fail(f"{tag}: label table has {len(keys)} labels, liver={keys.get(5)} heart={keys.get(51)}")


def check_hospital(root, st, tmpdir, ts_names):
    sid = st["study_id"]
    members = read_archive(os.path.join(root, st["path"]))
    dcm = []
    for n, b in members.items():
        if not n.startswith("dicom/"):
            continue
        d = pydicom.dcmread(io.BytesIO(b), force=True)
        if "TransferSyntaxUID" not in d.file_meta:
            # a bare dataset (no preamble, no meta): implicit VR little endian by definition
            if b[128:132] == b"DICM":
                fail(f"{n}: has a meta header pydicom did not read")
            d.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        dcm.append(d)
    axial = [d for d in dcm if "LOCALIZER" not in list(d.ImageType)]
    scouts = [d for d in dcm if "LOCALIZER" in list(d.ImageType)]
    if (st["geometry"]["scout"] != "none") != bool(scouts):
        fail(f"{sid}: scout in archive = {bool(scouts)}, truth says {st['geometry']['scout']}")
    axial.sort(key=lambda d: int(d.InstanceNumber))
    d0 = axial[0]
    if d0.StudyInstanceUID != sid:
        fail(f"{sid}: StudyInstanceUID {d0.StudyInstanceUID} != study_id")
    if d0.Modality != "CT" or d0.SOPClassUID != "1.2.840.10008.5.1.4.1.1.2":
        fail(f"{sid}: not CT Image Storage")
    phi = st["scan"]["phi"]
    if str(d0.PatientID) != phi["patient_id"] or str(d0.AccessionNumber) != phi["accession"]:
        fail(f"{sid}: PatientID/AccessionNumber differ from the truth's phi")
    if not str(d0.PatientName).startswith(phi["dicom_name"].split("=")[0]):
        fail(f"{sid}: PatientName {d0.PatientName} != {phi['dicom_name']}")
    iop = np.array([float(v) for v in d0.ImageOrientationPatient])
    rows, cols, n = int(d0.Rows), int(d0.Columns), len(axial)
    ipp = np.array([[float(v) for v in d.ImagePositionPatient] for d in axial])
    sp = [float(v) for v in d0.PixelSpacing]  # row spacing, column spacing
    step = (ipp[-1] - ipp[0]) / (n - 1)
    lps = np.eye(4)
    lps[:3, 0] = iop[:3] * sp[1]
    lps[:3, 1] = iop[3:] * sp[0]
    lps[:3, 2] = step
    lps[:3, 3] = ipp[0]
    ras = np.diag([-1, -1, 1, 1]) @ lps
    check_geometry(f"{sid} dicom", st["geometry"], (cols, rows, n), ras)
    vol = np.stack([d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                    for d in axial], axis=-1)  # (rows, cols, n)
    vol = vol.transpose(1, 0, 2)  # (cols, rows, n): the truth's voxel order
    if vol.min() < -1024 or vol.max() > 3071:
        fail(f"{sid}: HU range {vol.min()}..{vol.max()} outside -1024..3071")
    if np.percentile(vol, 5) > -900:
        fail(f"{sid}: no air around the patient (5th percentile {np.percentile(vol, 5)})")
    # the mask, on the same grid
    mask = st["mask"]
    if mask["format"] == "multilabel":
        img = load_nifti(members["seg.nii.gz"], tmpdir, sid + "_seg.nii.gz")
        check_label_table(sid, img)
        lab = np.asarray(img.dataobj)
        maff = img.affine
    else:
        lab = None
        for i, name in enumerate(ts_names, start=1):
            key = f"seg/{name}.nii.gz"
            if key not in members:
                fail(f"{sid}: per-class mask lacks {key}")
                continue
            img = load_nifti(members[key], tmpdir, sid + "_" + name + ".nii.gz")
            b = np.asarray(img.dataobj)
            if b.dtype != np.uint8 or b.max() > 1:
                fail(f"{sid}: {key} is not uint8 0/1")
            if lab is None:
                lab = np.zeros(b.shape, np.uint8)
                maff = img.affine
            if (lab[b > 0] != 0).any():
                fail(f"{sid}: {key} overlaps another class")
            lab[b > 0] = i
    if img.get_data_dtype() != np.uint8:
        fail(f"{sid}: mask dtype {img.get_data_dtype()}")
    check_geometry(f"{sid} mask", mask["geometry"], lab.shape, maff)
    if lab.max() > 117:
        fail(f"{sid}: mask label {lab.max()} outside the 117-id space")
    cv, ca = canonical(vol, ras)
    cl, cla = canonical(lab, maff)
    if cv.shape != cl.shape or not close(ca, cla):
        fail(f"{sid}: CT and mask grids differ after reorientation")
    # lungs are air-like, bones dense
    lung = np.isin(cl, [10, 11, 12, 13, 14])
    if lung.sum() > 20 and np.median(cv[lung]) > -500:
        fail(f"{sid}: lung median HU {np.median(cv[lung])}")
    # the report
    raw = members["report.txt"]
    enc = st["report_encoding"]
    if enc == "gb18030":
        try:
            raw.decode("utf-8")
            fail(f"{sid}: report said to be GB18030 decodes as UTF-8")
        except UnicodeDecodeError:
            pass
        text = raw.decode("gb18030")
    elif enc == "utf-8-bom":
        if not raw.startswith(b"\xef\xbb\xbf"):
            fail(f"{sid}: report lacks its BOM")
        text = raw[3:].decode("utf-8")
    else:
        text = raw.decode("utf-8")
    if st["language"] == "zh" and not any("\u4e00" <= ch <= "\u9fff" for ch in text):
        fail(f"{sid}: Chinese report without Chinese")
    if phi["name"] not in text and "Name" not in text and "姓名" not in text:
        fail(f"{sid}: report lacks its personal header")
    return enc


def check_ctrate(root, st, meta, tmpdir):
    sid = st["study_id"]
    img = load_nifti(open(os.path.join(root, st["path"]), "rb").read(), tmpdir, sid + ".nii.gz")
    geo = st["geometry"]
    h = img.header
    vname = os.path.basename(st["path"])
    m = meta[vname]
    xy = json.loads(m["XYSpacing"])
    ipp = json.loads(m["ImagePositionPatient"])
    iop = json.loads(m["ImageOrientationPatient"])
    z = float(m["ZSpacing"])
    lps = np.eye(4)
    lps[:3, 0] = np.array(iop[:3]) * xy[0]
    lps[:3, 1] = np.array(iop[3:]) * xy[1]
    lps[:3, 2] = np.cross(iop[:3], iop[3:]) * z
    lps[:3, 3] = ipp
    meta_ras = np.diag([-1, -1, 1, 1]) @ lps
    if geo["header"] == "blank":
        if int(h["qform_code"]) or int(h["sform_code"]) or not close(h["pixdim"][1:4], [1, 1, 1]):
            fail(f"{sid}: blank header has orientation or spacing")
        if not close(meta_ras, geo["affine_true"]):
            fail(f"{sid}: metadata.csv does not rebuild the true affine")
        if list(img.shape) != geo["dims"]:
            fail(f"{sid}: dims {img.shape} != {geo['dims']}")
        hu = np.asarray(img.dataobj).astype(float) * float(m["RescaleSlope"]) + float(m["RescaleIntercept"])
        affine = geo["affine_true"]
    else:
        want = {"sform": (0, 2), "qform": (1, 0), "both": (1, 1)}[geo["header"]]
        if (int(h["qform_code"]), int(h["sform_code"])) != want:
            fail(f"{sid}: qform/sform codes {(int(h['qform_code']), int(h['sform_code']))} for {geo['header']}")
        check_geometry(f"{sid} ct", geo, img.shape, img.affine)
        # whichever of qform/sform is present must give the same affine
        if geo["header"] == "both" and not close(img.get_qform(), img.get_sform()):
            fail(f"{sid}: qform and sform disagree")
        # metadata.csv describes the same voxels in DICOM order
        c1, a1 = canonical(np.zeros(img.shape, np.uint8), img.affine)
        c2, a2 = canonical(np.zeros(img.shape, np.uint8), meta_ras)
        if not close(a1, a2):
            fail(f"{sid}: metadata.csv geometry differs from the header's")
        hu = img.get_fdata()
        affine = img.affine
    if hu.min() < -1024 or hu.max() > 3071:
        fail(f"{sid}: HU range {hu.min()}..{hu.max()}")
    mimg = load_nifti(open(os.path.join(root, st["mask_path"]), "rb").read(), tmpdir, sid + "_mask.nii.gz")
    check_label_table(sid, mimg)
    lab = np.asarray(mimg.dataobj)
    if lab.shape != img.shape or lab.max() > 117:
        fail(f"{sid}: mask shape {lab.shape} or labels up to {lab.max()}")
    maff = mimg.affine if geo["header"] != "blank" else affine
    if not close(maff, affine):
        fail(f"{sid}: mask affine differs from the CT's")


def check(root):
    src = os.environ.get("FVLM_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    tasks = []
    for line in open(os.path.join(src, "schemas", "findings.tsv"), encoding="utf-8"):
        if line.startswith("#") or line.startswith("id\t"):
            continue
        tasks.append(line.split("\t")[0])
    ts_names = []
    for line in open(os.path.join(src, "schemas", "totalseg_classes.tsv"), encoding="utf-8"):
        if line.startswith("id\t"):
            continue
        ts_names.append(line.rstrip("\n").split("\t")[1])
    studies = [json.loads(l) for l in open(os.path.join(root, "truth", "studies.jsonl"), encoding="utf-8")]
    # truth/labels.csv against studies.jsonl
    with open(os.path.join(root, "truth", "labels.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if rows[0] != ["study_id"] + tasks:
        fail("truth/labels.csv header is not study_id + the tasks of findings.tsv in order")
    for row, st in zip(rows[1:], studies):
        if row[0] != st["study_id"] or [int(v) for v in row[1:]] != [st["labels_image"][t] for t in tasks]:
            fail(f"truth/labels.csv row of {st['study_id']} differs from studies.jsonl")
    if len(rows) - 1 != len(studies):
        fail("truth/labels.csv and studies.jsonl have different study counts")
    ids = [s["study_id"] for s in studies]
    if len(set(ids)) != len(ids):
        fail("duplicate study ids")
    # report statements and anatomy status agree
    present = reported = 0
    anat_of = {}
    for line in open(os.path.join(src, "schemas", "findings.tsv"), encoding="utf-8"):
        if line.startswith("#") or line.startswith("id\t"):
            continue
        f = line.split("\t")
        anat_of[f[0]] = f[1]
    main_anat = set()
    for line in open(os.path.join(src, "schemas", "anatomy.tsv"), encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        if not line.startswith("#") and f[0] != "id" and len(f) > 4 and f[4] == "1":
            main_anat.add(f[0])
    for st in studies:
        rep = st["labels_reported"]
        # align's rule: normal exactly where the mask covers a main anatomy that is not abnormal
        for a in main_anat:
            s = st["anatomy_status"].get(a)
            if s == "normal" and a not in st["covered"]:
                fail(f"{st['study_id']}: anatomy {a} is normal but the mask does not cover it")
            if s is None and a in st["covered"]:
                fail(f"{st['study_id']}: anatomy {a} is covered but has no status")
        for t, v in st["labels_image"].items():
            if v:
                present += 1
                reported += rep.get(t) in (1, -1)
        for a, s in st["anatomy_status"].items():
            abn = any(rep.get(t) in (1, -1) for t in tasks if anat_of[t] == a)
            if (s == "abnormal") != abn:
                fail(f"{st['study_id']}: anatomy {a} is {s} but its reported findings say {abn}")
        for les in st["lesions"]:
            if st["labels_image"][les["task"]] != 1:
                fail(f"{st['study_id']}: lesion of {les['task']} but labels_image is 0")
    if present and reported / present < 0.85:
        fail(f"only {reported}/{present} present findings are reported")
    meta = {}
    ct = [s for s in studies if s["layout"] == "ctrate"]
    if ct:
        with open(os.path.join(root, "ctrate", "reports.csv"), newline="", encoding="utf-8") as f:
            rr = list(csv.reader(f))
        if rr[0] != ["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN"]:
            fail(f"reports.csv header {rr[0]}")
        if any(len(r) != 5 for r in rr) or len(rr) - 1 != len(ct):
            fail("reports.csv rows are not 5 fields, one per CT-RATE study")
        with open(os.path.join(root, "ctrate", "labels.csv"), newline="", encoding="utf-8") as f:
            lr = list(csv.reader(f))
        ref = os.path.join(src, "..", "shared", "reference", "ctrate_labels.tsv")
        if os.path.exists(ref):
            want = [l.split("\t")[0] for l in open(ref, encoding="utf-8").read().splitlines()[1:] if l]
            if lr[0][1:] != want:
                fail(f"labels.csv columns {lr[0][1:]} != CT-RATE's {want}")
        if any(len(r) != 19 or any(v not in ("0", "1") for v in r[1:]) for r in lr[1:]):
            fail("labels.csv rows are not VolumeName + 18 binary labels")
        with open(os.path.join(root, "ctrate", "metadata.csv"), newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                meta[row["VolumeName"]] = row
        names = {os.path.basename(s["path"]) for s in ct}
        if set(meta) != names or {r[0] for r in rr[1:]} != names:
            fail("CT-RATE csv volume names do not match the volumes")
    encodings = set()
    with tempfile.TemporaryDirectory() as tmp:
        for st in studies:
            if st["layout"] == "hospital":
                encodings.add(check_hospital(root, st, tmp, ts_names))
            else:
                check_ctrate(root, st, meta, tmp)
    print(f"read back {len(studies)} studies ({len(ct)} CT-RATE); report encodings {sorted(encodings)}")
    return encodings


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] != "--generate":
        check(sys.argv[1])
    else:
        import subprocess
        fvlm = os.environ["FVLM_BIN"]
        runs = [
            ["--studies", "24", "--seed", "11", "--size", "tiny", "--layout", "both"],
            ["--studies", "12", "--seed", "5", "--size", "tiny", "--layout", "hospital", "--lang", "zh"],
            ["--studies", "3", "--seed", "2", "--size", "small", "--layout", "both"],
        ]
        seen = set()
        with tempfile.TemporaryDirectory() as tmp:
            for i, args in enumerate(runs):
                out = os.path.join(tmp, f"c{i}")
                subprocess.run([fvlm, "synth", "--out", out, "--quiet"] + args, check=True)
                seen |= check(out)
        if "gb18030" not in seen or "utf-8-bom" not in seen:
            fail(f"the corpora lack a report encoding: saw {sorted(seen)}")
    if FAILS:
        print(f"{len(FAILS)} failures", file=sys.stderr)
        sys.exit(1)


main()

#!/usr/bin/python3
"""Writes the ingest test fixtures (small files, committed) into a folder.

Run with Debian's python3 (numpy, nibabel, pydicom):
    /usr/bin/python3 tests/ingest/make_fixtures.py tests/ingest/fixtures

Everything is derived from one phantom CT: a (z, y, x) = (10, 16, 20) int16
array on a RAS grid of 0.75 x 0.75 x 2.5 mm whose value at every voxel is
distinct, written in many orientations and formats. Ingest must turn every
variant into the same corpus tensor. The folder layout:

  same/<variant>/...            one study each; expected: identical tensors
  nifti/<name>                  datatypes, byte orders, qform/sform/neither,
                                extensions, NIfTI-2, .hdr/.img pairs
  hospital/study1/              DICOM series (shuffled, with a scout, a
                                duplicate, a gap), seg.nii.gz, report.txt
  reports/                      encodings: utf-8, utf-8 BOM, GB18030, Latin-1
  bad/<case>/...                every hostile input of the issue
  ctrate/                       CT-RATE layout (blank headers + metadata.csv)
  phi.json                      the identifying values put into DICOM headers
"""
import gzip
import json
import os
import random
import shutil
import struct
import sys

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, generate_uid)

try:
    from pydicom.uid import DeflatedExplicitVRLittleEndian
except ImportError:  # older name
    from pydicom.uid import DeflatedExplicitVRLittleEndian  # noqa

try:
    from pydicom.uid import RLELossless
except ImportError:
    RLELossless = None

NZ, NY, NX = 10, 16, 20
SP = (0.75, 0.75, 2.5)            # x, y, z mm: exact in float32
ORIGIN = (-7.5, 12.25, 30.0)      # RAS mm of voxel (0, 0, 0): exact in float32
PHI = {
    "patient_name": "DOE^JOHN",
    "patient_id": "PID-8842731",
    "birth_date": "19650304",
    "accession": "ACC20210304",
    "referring": "SMITH^ALICE",
    "address": "42 Harbour Road, Springfield",
    "phone": "555-867-5309",
}


def phantom():
    z, y, x = np.meshgrid(np.arange(NZ), np.arange(NY), np.arange(NX), indexing="ij")
    a = -1000 + 7 * x + 130 * y + 290 * z          # distinct per voxel, HU-like
    r2 = (x - 9.5) ** 2 + (y - 7.5) ** 2 + ((z - 4.5) * 3.3) ** 2
    a = np.where(r2 < 25, a + 1500, a)
    return a.astype(np.int16)


def ras_affine():
    aff = np.diag([SP[0], SP[1], SP[2], 1.0])
    aff[:3, 3] = ORIGIN
    return aff


def seg_of(a):
    m = np.zeros(a.shape, np.uint8)
    m[a > 0] = 5                 # liver
    m[2:4, 3:6, 4:9] = 51        # heart
    m[6:8, 10:14, 2:5] = 10      # lung upper lobe left
    return m


def save_nifti(path, arr_zyx, affine, dtype=None, qform=True, sform=True, big=False,
               version=1, slope=None, inter=None, ext=None):
    """arr_zyx: (z, y, x); NIfTI stores (x, y, z)."""
    data = np.ascontiguousarray(np.transpose(arr_zyx, (2, 1, 0)))
    if dtype is not None:
        data = data.astype(dtype)
    cls = nib.Nifti2Image if version == 2 else nib.Nifti1Image
    img = cls(data, affine, dtype=data.dtype)
    hdr = img.header
    if big:
        hdr = hdr.as_byteswapped(">")
        img = cls(data, affine, header=hdr)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    img.set_qform(affine if qform else None, code=1 if qform else 0)
    img.set_sform(affine if sform else None, code=1 if sform else 0)
    if ext is not None:
        img.header.extensions.append(ext)
    nib.save(img, path)


def label_table_ext(labels):
    xml = ['<?xml version="1.0" encoding="UTF-8"?>', "<CaretExtension>",
           '<VolumeInformation Index="0">', "<LabelTable>"]
    for k, name in labels:
        xml.append(f'<Label Key="{k}" Red="1" Green="0" Blue="0" Alpha="1"><![CDATA[{name}]]></Label>')
    xml += ["</LabelTable>", "</VolumeInformation>", "</CaretExtension>"]
    return nib.nifti1.Nifti1Extension(0, "\n".join(xml).encode())


# ---------------------------------------------------------------- DICOM

def dicom_slices(a, study_uid, series_uid, ts, start_instance=1, rows_cols=None):
    """One dataset per z slice of the RAS phantom, in DICOM LPS order."""
    out = []
    for k in range(a.shape[0]):
        # DICOM column index -> LPS +x (RAS -x); row index -> LPS +y (RAS -y).
        px = a[k, ::-1, ::-1]
        ras = (ORIGIN[0] + (NX - 1) * SP[0], ORIGIN[1] + (NY - 1) * SP[1], ORIGIN[2] + k * SP[2])
        ipp = [-ras[0], -ras[1], ras[2]]
        out.append(make_ds(px, ipp, [1, 0, 0, 0, 1, 0], study_uid, series_uid,
                           start_instance + k, ts))
    return out


_uid_counter = [0]


def next_uid():
    """Deterministic UIDs, so regenerating the fixtures gives the same bytes."""
    _uid_counter[0] += 1
    return f"1.2.826.0.1.3680043.8.498.77.{_uid_counter[0]}"


def make_ds(px, ipp, iop, study_uid, series_uid, instance, ts, modality="CT",
            image_type="ORIGINAL\\PRIMARY\\AXIAL", intercept=-1024, slope=1):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = next_uid()
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.77"
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.ImageType = image_type
    ds.PatientName = PHI["patient_name"]
    ds.PatientID = PHI["patient_id"]
    ds.PatientBirthDate = PHI["birth_date"]
    ds.AccessionNumber = PHI["accession"]
    ds.ReferringPhysicianName = PHI["referring"]
    ds.PatientAddress = PHI["address"]
    ds.PatientTelephoneNumbers = PHI["phone"]
    ds.StudyDate = "20210304"
    ds.SeriesNumber = 2
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in ipp]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.PixelSpacing = [SP[1], SP[0]]     # between rows, between columns
    ds.SliceThickness = SP[2]
    ds.Rows, ds.Columns = px.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    stored = ((px.astype(np.int32) - intercept) // slope).astype(np.int16)
    big = ts == ExplicitVRBigEndian
    ds.is_little_endian = not big
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.PixelData = stored.astype(">i2" if big else "<i2").tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def write_series(folder, dss, shuffle_seed=None):
    os.makedirs(folder, exist_ok=True)
    order = list(range(len(dss)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    for n, i in enumerate(order):
        dss[i].save_as(os.path.join(folder, f"IM{n:04d}.dcm"), write_like_original=False)


# ---------------------------------------------------------------- main

def main(out):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    random.seed(1)
    _uid_counter[0] = 0
    a = phantom()
    aff = ras_affine()
    study = "1.2.826.0.1.3680043.8.498.1001"
    series = "1.2.826.0.1.3680043.8.498.1001.2"

    # ---- same study, many orientations and formats -> one tensor
    same = os.path.join(out, "same")
    d = os.path.join(same, "nifti_ras")
    os.makedirs(d)
    save_nifti(os.path.join(d, "ct.nii.gz"), a, aff)
    # LPS: x and y flipped in the array, affine columns negated.
    d = os.path.join(same, "nifti_lps")
    os.makedirs(d)
    lps = aff.copy()
    lps[:, 0] *= -1
    lps[:, 1] *= -1
    lps[0, 3] = ORIGIN[0] + (NX - 1) * SP[0]
    lps[1, 3] = ORIGIN[1] + (NY - 1) * SP[1]
    save_nifti(os.path.join(d, "ct.nii.gz"), a[:, ::-1, ::-1], lps, sform=False)  # qform only
    # Superior to inferior slices.
    d = os.path.join(same, "nifti_zflip")
    os.makedirs(d)
    zf = aff.copy()
    zf[:, 2] *= -1
    zf[2, 3] = ORIGIN[2] + (NZ - 1) * SP[2]
    save_nifti(os.path.join(d, "ct.nii"), a[::-1], zf, qform=False)  # sform only
    # Axes permuted: stored (x, z, y) order -> array (y, z, x) ... affine columns follow.
    d = os.path.join(same, "nifti_permuted")
    os.makedirs(d)
    perm = np.transpose(a, (1, 0, 2))              # (y, z, x) as (z', y', x')
    pa = np.zeros((4, 4))
    pa[:, 0] = aff[:, 0]                          # x' = x
    pa[:, 1] = aff[:, 2]                          # y' = z
    pa[:, 2] = aff[:, 1]                          # z' = y
    pa[:, 3] = aff[:, 3]
    save_nifti(os.path.join(d, "ct.nii.gz"), perm, pa, qform=False)
    # Big-endian float32 NIfTI-2.
    d = os.path.join(same, "nifti2_big_float")
    os.makedirs(d)
    save_nifti(os.path.join(d, "ct.nii.gz"), a, aff, dtype=np.float32, big=True, version=2)
    # Scaled uint16: stored = HU + 1024.
    d = os.path.join(same, "nifti_scaled_uint16")
    os.makedirs(d)
    img = nib.Nifti1Image(np.transpose((a.astype(np.int32) + 1024).astype(np.uint16), (2, 1, 0)), aff)
    img.header.set_data_dtype(np.uint16)
    img.header.set_slope_inter(1.0, -1024.0)
    img.set_sform(aff, 1)
    img.set_qform(aff, 1)
    nib.save(img, os.path.join(d, "ct.nii.gz"))
    # .hdr/.img pair.
    d = os.path.join(same, "nifti_pair")
    os.makedirs(d)
    pair = nib.Nifti1Pair(np.transpose(a, (2, 1, 0)), aff)
    nib.save(pair, os.path.join(d, "ct.img"))
    # DICOM in four encodings, shuffled file order.
    for name, ts in [("dicom_explicit", ExplicitVRLittleEndian),
                     ("dicom_implicit", ImplicitVRLittleEndian),
                     ("dicom_bigendian", ExplicitVRBigEndian),
                     ("dicom_deflated", DeflatedExplicitVRLittleEndian)]:
        write_series(os.path.join(same, name), dicom_slices(a, study, series, ts), 7)
    if RLELossless is not None:
        dss = dicom_slices(a, study, series, ExplicitVRLittleEndian)
        ok = True
        for ds in dss:
            try:
                ds.compress(RLELossless)
            except Exception:  # encoder unavailable
                ok = False
                break
        if ok:
            write_series(os.path.join(same, "dicom_rle"), dss, 3)

    # ---- NIfTI datatypes and header variants
    nd = os.path.join(out, "nifti")
    os.makedirs(nd)
    small = a[:3, :4, :5]
    sa = ras_affine()
    for dt in [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
               np.float32, np.float64]:
        v = small.astype(np.int64)
        if dt in (np.uint8, np.uint16, np.uint32):
            v = v - v.min()
        if dt in (np.uint8, np.int8):
            v = v % 100
        name = np.dtype(dt).name
        save_nifti(os.path.join(nd, f"dtype_{name}.nii"), v.astype(dt), sa, dtype=dt)
        save_nifti(os.path.join(nd, f"dtype_{name}_be.nii"), v.astype(dt), sa, dtype=dt, big=True)
    save_nifti(os.path.join(nd, "neither_form.nii"), small, sa, qform=False, sform=False)
    rot = np.eye(4)
    c, s_ = np.cos(0.3), np.sin(0.3)
    rot[:3, :3] = [[c, -s_, 0], [s_, c, 0], [0, 0, 1]]
    obl = rot @ sa
    save_nifti(os.path.join(nd, "oblique_qform.nii.gz"), small, obl, sform=False)
    save_nifti(os.path.join(nd, "scaled_float.nii"), small, sa, dtype=np.int16, slope=0.5, inter=10)
    ext = nib.nifti1.Nifti1Extension(6, b"fvlm fixture comment extension")
    save_nifti(os.path.join(nd, "with_extension.nii"), small, sa, ext=ext)
    save_nifti(os.path.join(nd, "nifti2.nii"), small, sa, version=2)

    # ---- a hospital study: DICOM with scout, duplicate, gap; mask; report
    hs = os.path.join(out, "hospital", "study1")
    dss = dicom_slices(a, study, series, ExplicitVRLittleEndian)
    dup = dicom_slices(a[4:5], study, series, ExplicitVRLittleEndian, start_instance=50)
    # the duplicate must sit where slice 4 sits: rebuild from slice 4
    dss_dup = pydicom.dcmread(pydicom.filebase.DicomBytesIO(_bytes(dss[4])), force=True)
    dss_dup.SOPInstanceUID = next_uid()
    dss_dup.InstanceNumber = 99
    del dup
    gap = [ds for k, ds in enumerate(dss) if k != 6]              # slice 6 missing
    scout = make_ds(np.full((NZ * 2, NX), 100, np.int16), [-30.0, 0.0, 60.0], [1, 0, 0, 0, 0, -1],
                    study, series, 0, ExplicitVRLittleEndian, image_type="ORIGINAL\\PRIMARY\\LOCALIZER")
    write_series(os.path.join(hs, "dicom"), gap + [dss_dup, scout], 11)
    ext = label_table_ext([(1, "liver"), (2, "heart"), (3, "lung_upper_lobe_left")])
    m = seg_of(a)
    remapped = np.zeros_like(m)
    remapped[m == 5] = 1
    remapped[m == 51] = 2
    remapped[m == 10] = 3
    save_nifti(os.path.join(hs, "seg.nii.gz"), remapped, aff, dtype=np.uint8, ext=ext)
    with open(os.path.join(hs, "report.txt"), "w", encoding="utf-8") as f:
        f.write("Patient: John Doe\nPatient ID: PID-8842731\nDOB: 1965-03-04\n"
                "Phone: 555-867-5309\n\nFindings: The liver measures 15.2 cm. A 3 mm nodule in "
                "segment 7. Mr. Doe was seen on 03/04/2021.\n\nImpression: No acute findings.\n")

    # ---- per-class masks
    pc = os.path.join(out, "perclass", "study2")
    os.makedirs(os.path.join(pc, "seg"))
    save_nifti(os.path.join(pc, "ct.nii.gz"), a, aff)
    for name, lab in [("liver", 5), ("heart", 51), ("lung_upper_lobe_left", 10)]:
        save_nifti(os.path.join(pc, "seg", f"{name}.nii.gz"), (m == lab).astype(np.uint8), aff,
                   dtype=np.uint8)

    # ---- reports in several encodings (Chinese in GB18030 and UTF-8 BOM)
    rd = os.path.join(out, "reports")
    zh = ("姓名：张三\n住院号：20210304\n检查日期：2021年3月4日\n电话：13812345678\n\n"
          "检查所见：肝脏大小形态正常，肝内见一直径约3mm低密度灶。\n诊断意见：肝脏小囊肿可能。\n")
    for n, (name, enc, text) in enumerate([("zh_gb18030", "gb18030", zh), ("zh_bom", "utf-8-sig", zh),
                                           ("en_utf8", "utf-8", "Findings: Normal lungs.\n\nImpression: Normal.\n")]):
        d = os.path.join(rd, name)
        os.makedirs(d)
        save_nifti(os.path.join(d, "ct.nii.gz"), a[:2] + n, aff)
        with open(os.path.join(d, "report.txt"), "wb") as f:
            f.write(text.encode(enc))

    # ---- hostile inputs, one folder (unit) each
    bad = os.path.join(out, "bad")
    os.makedirs(bad)

    def hdr_bytes(dim=(3, NX, NY, NZ), datatype=4, vox_offset=352.0, bitpix=16):
        h = bytearray(352)
        struct.pack_into("<i", h, 0, 348)
        dims = list(dim) + [1] * (8 - len(dim))
        struct.pack_into("<8h", h, 40, *dims)
        struct.pack_into("<h", h, 70, datatype)
        struct.pack_into("<h", h, 72, bitpix)
        struct.pack_into("<8f", h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
        struct.pack_into("<f", h, 108, vox_offset)
        h[344:348] = b"n+1\0"
        return bytes(h)

    def put(case, name, data):
        d = os.path.join(bad, case)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    put("negative_dim", "ct.nii", hdr_bytes(dim=(3, NX, -3, NZ)) + b"\0" * 64)
    put("absurd_dims", "ct.nii", hdr_bytes(dim=(3, 32000, 32000, 32000)) + b"\0" * 64)
    put("vox_offset_past_end", "ct.nii", hdr_bytes(vox_offset=1e6) + b"\0" * (NX * NY * NZ * 2))
    put("unknown_datatype", "ct.nii", hdr_bytes(datatype=999) + b"\0" * (NX * NY * NZ * 2))
    good = hdr_bytes() + a.tobytes()
    gz = gzip.compress(good, mtime=0)
    put("truncated_gzip", "ct.nii.gz", gz[: len(gz) // 2])
    cor = bytearray(gz)
    for i in range(len(cor) // 3, len(cor) // 3 + 40):
        cor[i] ^= 0x5A
    put("corrupt_gzip", "ct.nii.gz", bytes(cor))
    ds = dicom_slices(a[:1], study + ".7", series + ".7", ExplicitVRLittleEndian)[0]
    del ds.PixelData
    put("dicom_no_pixels", "IM0001.dcm", _bytes(ds))
    full = _bytes(dicom_slices(a[:1], study + ".8", series + ".8", ExplicitVRLittleEndian)[0])
    put("dicom_truncated", "IM0001.dcm", full[: len(full) - 200])
    inc = dicom_slices(a, study + ".9", series + ".9", ExplicitVRLittleEndian)
    odd = make_ds(np.zeros((8, 8), np.int16), inc[3].ImagePositionPatient, [1, 0, 0, 0, 1, 0],
                  study + ".9", series + ".9", 77, ExplicitVRLittleEndian)
    odd.ImagePositionPatient = [inc[3].ImagePositionPatient[0], inc[3].ImagePositionPatient[1],
                                float(inc[3].ImagePositionPatient[2]) + 1.0]
    write_series(os.path.join(bad, "series_inconsistent", "dicom"), inc + [odd], 5)
    put("over_limit", "ct.nii.gz", gzip.compress(hdr_bytes(dim=(3, 300, 300, 300)) + b"\0" * 64, mtime=0))
    put("report_unknown_encoding", "report.txt",
        "Befund: Läsion im Segment VII, größter Durchmesser 12 mm. Beurteilung: unauffällig, "
        "keine Änderung gegenüber der Voruntersuchung.\n".encode("latin-1"))
    # A valid study in the bad folder: the run must still store it.
    os.makedirs(os.path.join(bad, "good_one"))
    save_nifti(os.path.join(bad, "good_one", "ct.nii.gz"), a, aff)

    # ---- CT-RATE layout: blank headers rebuilt from metadata.csv
    ct = os.path.join(out, "ctrate")
    vols = []
    for n, (split, pid, scan, recon) in enumerate([("train", 1, "a", 1), ("train", 1, "a", 2),
                                                   ("valid", 3, "b", 1)]):
        name = f"{split}_{pid}_{scan}_{recon}"
        d = os.path.join(ct, split, f"{split}_{pid}", f"{split}_{pid}_{scan}")
        os.makedirs(d, exist_ok=True)
        stored = np.transpose(a[:, ::-1, ::-1].astype(np.int32) + 1024 + n, (2, 1, 0)).astype(np.int16)
        img = nib.Nifti1Image(stored, np.eye(4))
        img.set_qform(None, code=0)
        img.set_sform(None, code=0)
        img.header["pixdim"][1:4] = 1
        nib.save(img, os.path.join(d, name + ".nii.gz"))
        vols.append(name)
    with open(os.path.join(ct, "metadata.csv"), "w") as f:
        f.write("VolumeName,Manufacturer,XYSpacing,ZSpacing,RescaleIntercept,RescaleSlope,"
                "ImagePositionPatient,ImageOrientationPatient\n")
        for v in vols:
            ipp = [-(ORIGIN[0] + (NX - 1) * SP[0]), -(ORIGIN[1] + (NY - 1) * SP[1]), ORIGIN[2]]
            f.write(f'{v}.nii.gz,ACME,"[{SP[0]}, {SP[1]}]",{SP[2]},-1024,1,'
                    f'"[{ipp[0]}, {ipp[1]}, {ipp[2]}]","[1, 0, 0, 0, 1, 0]"\n')
    with open(os.path.join(ct, "reports.csv"), "w") as f:
        f.write("VolumeName,ClinicalInformation_EN,Technique_EN,Findings_EN,Impressions_EN\n")
        f.write('train_1_a_1.nii.gz,Not given.,"Chest CT, non-contrast.","Trachea is midline, '
                'lungs are clear. No nodule.",No acute findings.\n')
        f.write('train_1_a_2.nii.gz,Not given.,"Chest CT, non-contrast.","Trachea is midline, '
                'lungs are clear. No nodule.",No acute findings.\n')
        f.write('valid_3_b_1.nii.gz,Cough.,Not given.,"Bilateral ""ground-glass"" opacities,\n'
                'more on the right.",Not given.\n')
        f.write('bogus_name.nii.gz,x,x,x,x\n')
    with open(os.path.join(ct, "labels.csv"), "w") as f:
        f.write("VolumeName,Emphysema\ntrain_1_a_1.nii.gz,0\n")
    os.makedirs(os.path.join(ct, "masks"))
    mk = np.transpose(seg_of(a)[:, ::-1, ::-1], (2, 1, 0))
    mimg = nib.Nifti1Image(mk, np.eye(4))
    mimg.set_qform(None, code=0)
    mimg.set_sform(None, code=0)
    nib.save(mimg, os.path.join(ct, "masks", "train_1_a_1.nii.gz"))

    with open(os.path.join(out, "phi.json"), "w") as f:
        json.dump(PHI, f, indent=1)
    expect = {"shape_zyx": [NZ, NY, NX], "spacing_xyz": SP, "origin_ras": ORIGIN,
              "grid_zyx": [int(round(NZ * SP[2] / 3)), int(round(NY * SP[1])),
                           int(round(NX * SP[0]))]}
    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump(expect, f, indent=1)
    np.save(os.path.join(out, "phantom.npy"), a)


def _bytes(ds):
    bio = pydicom.filebase.DicomBytesIO()
    ds.save_as(bio, write_like_original=False)
    return bio.getvalue()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures")

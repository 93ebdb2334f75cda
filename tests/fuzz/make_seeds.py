#!/usr/bin/python3
"""make_seeds.py: writes the fuzzers' seed corpora (tests/fuzz/corpus/<name>/)
from the tests' fixtures, the parser's golden cases, the presets, and a few
DICOM samples of Debian's python3-pydicom (when installed). Run once by hand
after fixtures change; the output is committed (each seed a few KiB).

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import gzip
import io
import json
import os
import struct
import tarfile
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FX = os.path.join(ROOT, "tests", "ingest", "fixtures")
OUT = os.path.join(HERE, "corpus")
MAX_SEED = 8192  # bytes: seeds stay small, libFuzzer grows them


def put(name, fname, data):
    if len(data) > MAX_SEED:
        return
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


def files_under(*parts):
    base = os.path.join(FX, *parts)
    for dirpath, _, names in sorted(os.walk(base)):
        for n in sorted(names):
            yield os.path.join(dirpath, n)


def two_per_folder(paths):
    """A series' slices differ in little but their position: two are enough."""
    seen = {}
    for p in paths:
        d = os.path.dirname(p)
        seen[d] = seen.get(d, 0) + 1
        if seen[d] <= 2 or not p.endswith(".dcm"):
            yield p


def read(p):
    with open(p, "rb") as f:
        return f.read()


def slug(p):
    return os.path.relpath(p, FX).replace(os.sep, "_")


def pydicom_files():
    try:
        import pydicom
    except ImportError:
        return None, {}
    d = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
    want = ["693_J2KI.dcm", "JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm",
            "rtdose_rle_1frame.dcm", "image_dfl.dcm", "CT_small.dcm", "MR_small_bigendian.dcm",
            "MR_small_implicit.dcm", "SC_rgb_rle.dcm"]
    return pydicom, {w: os.path.join(d, w) for w in want if os.path.exists(os.path.join(d, w))}


def codec_seed(ds, frames):
    """The codec harness's prefix (see dcm_fuzz_wrap) and the frames' bytes."""
    bits = {8: 0, 16: 1, 32: 3}[int(ds.BitsAllocated)]
    pre = struct.pack("<HHBBBB", int(ds.Rows), int(ds.Columns), bits, int(ds.BitsStored),
                      int(ds.PixelRepresentation), len(frames) - 1)
    return pre + b"".join(frames)


def dataset_after_meta(raw):
    """The dataset bytes of a Part 10 file (after the group-0002 meta)."""
    if raw[128:132] != b"DICM":
        return None
    glen = struct.unpack("<I", raw[140:144])[0]
    return raw[144 + glen:]


def main():
    # Regenerated from scratch, except the regression inputs the fuzzers found
    # (regress_*) and the README.
    for dirpath, _, names in os.walk(OUT):
        for n in names:
            if not n.startswith("regress_") and n != "README.md":
                os.unlink(os.path.join(dirpath, n))
    # NIfTI: every fixture (.nii, .nii.gz, .hdr), good and bad.
    for p in files_under():
        if p.endswith((".nii", ".nii.gz", ".hdr")):
            put("nifti", slug(p), read(p))
    # gzip: the compressed NIfTI fixtures, and a two-member stream.
    for p in files_under():
        if p.endswith(".gz"):
            put("gzip", slug(p), read(p))
    put("gzip", "two_members.gz", gzip.compress(b"first ", mtime=0) + gzip.compress(b"second", mtime=0))
    # DICOM: the fixtures' files, and pydicom's codec samples.
    for p in two_per_folder(files_under()):
        if p.endswith(".dcm"):
            put("dicom", slug(p), read(p))
    pydicom, samples = pydicom_files()
    for n, p in samples.items():
        put("dicom", "pydicom_" + n, read(p))
    if pydicom:
        from pydicom.encaps import generate_pixel_data_frame
        for n, p in samples.items():
            ds = pydicom.dcmread(p)
            ts = str(ds.file_meta.TransferSyntaxUID)
            name = {"1.2.840.10008.1.2.5": "dicom_rle", "1.2.840.10008.1.2.4.90": "dicom_j2k",
                    "1.2.840.10008.1.2.4.91": "dicom_j2k", "1.2.840.10008.1.2.4.80": "dicom_jpegls",
                    "1.2.840.10008.1.2.4.81": "dicom_jpegls"}.get(ts)
            if name:
                nf = int(getattr(ds, "NumberOfFrames", 1) or 1)
                frames = list(generate_pixel_data_frame(ds.PixelData, nf))[:3]
                put(name, n.replace(".dcm", ".bin"), codec_seed(ds, frames))
    for p in two_per_folder(files_under("same", "dicom_rle")):
        if pydicom:
            ds = pydicom.dcmread(p)
            from pydicom.encaps import generate_pixel_data_frame
            frames = list(generate_pixel_data_frame(ds.PixelData, 1))
            put("dicom_rle", slug(p).replace(".dcm", ".bin"), codec_seed(ds, frames))
    # Deflated datasets: the raw deflate stream of native explicit-VR files.
    for p in two_per_folder(list(files_under("hospital")) + list(files_under("same", "dicom_explicit"))):
        if p.endswith(".dcm"):
            body = dataset_after_meta(read(p))
            if body:
                c = zlib.compressobj(9, zlib.DEFLATED, -15)
                put("dicom_deflate", slug(p) + ".deflate", c.compress(body) + c.flush())
    # Archives: tar, tar.gz, zip of a small study; and the walker's seeds
    # also hold the gzip fixtures (a lone .gz is a filter over a raw member).
    study = [(os.path.relpath(p, os.path.join(FX, "hospital")), read(p))
             for p in files_under("hospital", "study1")][:4]
    for mode, fname in [("w", "study.tar"), ("w:gz", "study.tar.gz"), ("w:bz2", "study.tar.bz2"),
                        ("w:xz", "study.tar.xz")]:
        b = io.BytesIO()
        # the same bytes every time: entries and the gzip header dated 0
        fo = gzip.GzipFile(fileobj=b, mode="wb", mtime=0) if mode == "w:gz" else b
        with tarfile.open(fileobj=fo, mode="w" if mode == "w:gz" else mode,
                          format=tarfile.PAX_FORMAT if "xz" in mode else tarfile.GNU_FORMAT) as t:
            for n, data in study[:2]:
                ti = tarfile.TarInfo(n)
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        if fo is not b:
            fo.close()
        put("archive", fname, b.getvalue())
    for comp, fname in [(zipfile.ZIP_STORED, "study_stored.zip"),
                        (zipfile.ZIP_DEFLATED, "study_deflated.zip")]:
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", comp) as z:
            for n, data in study[:2]:
                z.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), data, comp)
        put("archive", fname, b.getvalue())
    # CSV: CT-RATE's tables.
    for p in files_under("ctrate"):
        if p.endswith(".csv"):
            put("csv", slug(p), read(p))
    put("csv", "quoted.csv", b'a,"b ""q""",c\r\n1,"multi\nline",3\n')
    # Report files in every encoding the decoder knows.
    for p in files_under("reports"):
        put("report_text", slug(p), read(p))
    zh = "检查所见：双肺纹理清晰，未见明确结节。肝脏大小形态正常。\n印象：未见异常。\n"
    put("report_text", "zh_utf16le.txt", b"\xff\xfe" + zh.encode("utf-16-le"))
    put("report_text", "zh_utf16be.txt", b"\xfe\xff" + zh.encode("utf-16-be"))
    put("report_text", "zh_gb18030.txt", zh.encode("gb18030"))
    put("report_text", "en_crlf.txt", b"Findings: no nodule.\r\nImpression: normal.\r\n")
    # The report parser: the golden cases' texts (first byte: 0 auto, 1 zh, 2 en).
    for lang, code in [("en", 2), ("zh", 1)]:
        with open(os.path.join(ROOT, "tests", "parse", "golden_%s.tsv" % lang), encoding="utf-8") as f:
            rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
        for r in rows[1::6]:  # a sixth of the cases: enough variety, a small corpus
            if len(r) >= 2:
                text = r[1].replace("\\n", "\n")
                put("parse", r[0] + ".txt", bytes([code]) + text.encode("utf-8"))
    for p in files_under("reports"):
        raw = read(p)
        try:
            put("parse", "report_" + slug(p), b"\0" + raw.decode("utf-8-sig").encode("utf-8"))
        except UnicodeDecodeError:
            pass
    # JSON: the fixtures' JSON, a safetensors header, JSON-lines report rows.
    for p in files_under():
        if p.endswith(".json"):
            put("json", slug(p), read(p))
    put("json", "jsonl_row.json", json.dumps({"study": "s1", "findings": "肺内未见结节",
                                              "lang": "zh", "n": [1, 2.5e-3, -0.0, True, None]},
                                             ensure_ascii=False).encode())
    put("json", "escapes.json", rb'["\u00e9\ud83d\ude00\n\t\"\\\/", 1e308, -9223372036854775808]')
    # safetensors: small files of each kind fvlm writes.
    def st(tensors, meta):
        hdr, blob = {}, b""
        if meta:
            hdr["__metadata__"] = meta
        for name, dtype, shape, data in tensors:
            hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
            blob += data
        h = json.dumps(hdr, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        return struct.pack("<Q", len(h)) + h + blob
    put("safetensors", "volume.safetensors",
        st([("volume", "I16", [2, 3, 4], struct.pack("<24h", *range(-12, 12)))],
           {"format": "fvlm-ingest-1", "kind": "volume", "affine": "[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]"}))
    put("safetensors", "mask.safetensors", st([("mask", "U8", [2, 2, 2], bytes(range(8)))], {"kind": "mask"}))
    put("safetensors", "ckpt.safetensors",
        st([("w", "F32", [2, 2], struct.pack("<4f", 1, -2, 3.5, 0)),
            ("b", "F32", [2], struct.pack("<2f", 0.5, 0.25))],
           {"fvlm.config": "[model]\npreset = tiny\n", "fvlm.vocab": "[\"a\",\"b\"]"}))
    # Config files: the presets, and one with every stage's sections.
    for p in sorted(os.listdir(os.path.join(ROOT, "schemas"))):
        if p.endswith(".ini"):
            put("config", p, read(os.path.join(ROOT, "schemas", p)))
    put("config", "stages.ini", b"seed = 7\n[ingest]\nspacing = 1.5, 1.5, 3.0\ndeid_key = env:HOME\n"
        b"[train]\nsteps = 10 # comment\nlr=3e-4\n[eval]\nbootstrap = 100\n")


if __name__ == "__main__":
    main()

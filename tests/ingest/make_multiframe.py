#!/usr/bin/python3
"""Writes the multi-frame DICOM fixtures (tests/ingest/fixtures/multiframe):

  enhanced_ct/ct.dcm            Enhanced CT Image Storage, 5 frames of 6 x 8,
                                PlanePositionSequence per frame (frames stored in
                                shuffled order), orientation, pixel measures and
                                rescale (slope 2, intercept -1024) shared
  enhanced_ct_perframe/ct.dcm   the same with PixelValueTransformationSequence
                                per frame (a different intercept each)
  rtdose/dose.dcm               RT Dose Storage, 3 frames, GridFrameOffsetVector:
                                not a CT volume

Run with Debian's python3 and pydicom: /usr/bin/python3 make_multiframe.py.
Deterministic (fixed UIDs, values, dates), so the files only change when
this script does.
"""
import os

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "multiframe")
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
ROWS, COLS, NF = 6, 8, 5


def base(sop_class, modality, study, series):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = series + ".1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = series + ".1"
    ds.Modality = modality
    ds.PatientName = "MULTI^FRAME"
    ds.PatientID = "MF-0001"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = 3
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = ROWS, COLS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.NumberOfFrames = NF
    return ds


def frames():
    """(NF, ROWS, COLS) int16 stored values, distinct per frame and pixel."""
    f = np.arange(NF * ROWS * COLS, dtype=np.int16).reshape(NF, ROWS, COLS)
    return (f * 3 + 100).astype(np.int16)


def item(**kw):
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def enhanced(path, per_frame_rescale):
    study = "1.2.826.0.1.3680043.8.498." + ("7003" if per_frame_rescale else "7001")
    ds = base(ENHANCED_CT, "CT", study, study + ".1")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    shared = item(
        PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
        PixelMeasuresSequence=Sequence([item(PixelSpacing=[0.7, 0.6], SliceThickness=2.5)]))
    if not per_frame_rescale:
        shared.PixelValueTransformationSequence = Sequence(
            [item(RescaleSlope=2, RescaleIntercept=-1024, RescaleType="HU")])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    # Frames stored out of order: z = 10 + 2.5 * order[k]
    order = [2, 0, 4, 1, 3]
    per = []
    for k in range(NF):
        fg = item(PlanePositionSequence=Sequence(
            [item(ImagePositionPatient=[-20.0, -30.0, 10 + 2.5 * order[k]])]))
        if per_frame_rescale:
            fg.PixelValueTransformationSequence = Sequence(
                [item(RescaleSlope=1, RescaleIntercept=-1000 - 10 * k, RescaleType="HU")])
        per.append(fg)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = frames().tobytes()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, write_like_original=False)


def rtdose(path):
    ds = base(RT_DOSE, "RTDOSE", "1.2.826.0.1.3680043.8.498.7002",
              "1.2.826.0.1.3680043.8.498.7002.1")
    ds.NumberOfFrames = 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.ImagePositionPatient = [-20, -30, 10]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [2, 2]
    ds.GridFrameOffsetVector = [0, 3, 6]
    ds.FrameIncrementPointer = (0x3004, 0x000C)
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseGridScaling = 0.001
    ds.PixelData = np.arange(3 * ROWS * COLS, dtype=np.uint16).tobytes()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, write_like_original=False)


if __name__ == "__main__":
    enhanced(os.path.join(OUT, "enhanced_ct", "ct.dcm"), False)
    enhanced(os.path.join(OUT, "enhanced_ct_perframe", "ct.dcm"), True)
    rtdose(os.path.join(OUT, "rtdose", "dose.dcm"))

-- Version 5: the identifiers a user may type to find a study, as keyed hashes
-- only (deid_pseudonym(key, kind, identifier)), so `fvlm key`, `--accession`
-- and the audit search find a study by the hospital's AccessionNumber, the
-- archive or study-folder name, the StudyInstanceUID or a CT-RATE volume
-- name, without the corpus ever holding one of them. kind: accession (DICOM
-- (0008,0050)), study_uid (DICOM (0020,000D)), source (an archive or
-- study-folder name without extension, a file stem, a CT-RATE study or
-- volume name). One identifier may name several studies (an archive holding
-- a prior), and a study has several identifiers. Corpora ingested before
-- version 5 have no rows here: their studies are still found by the study
-- key (the hash of the source study id).
CREATE TABLE study_ids (
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  kind        TEXT NOT NULL,               -- accession, study_uid or source
  id_hash     TEXT NOT NULL,               -- HMAC-SHA256(key, "<kind>:<identifier>"), hex
  PRIMARY KEY (kind, id_hash, study_id)
);
